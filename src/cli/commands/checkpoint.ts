import { parseCommand } from '../args.js';
import { positionalsAtMost, usageGuard } from '../common.js';
import { releaseOnInterrupt } from '../interrupt.js';
import { bytes } from '../format.js';
import { StoreReader } from '../../storage/store-reader.js';
import { MODULE_HELP, loadMachines, refuseForeignDatabase, requireMachine, startOffline } from '../machines.js';

export const summary = 'snapshot machines now (offline; a running server is checkpointed over HTTP)';

const USAGE = `Usage: ssm checkpoint [--db PATH] [MACHINE] [--module PATH]

Snapshots every machine (or MACHINE) now, so the next start replays no log. It takes the
writer role: the machines are started offline (state rebuilt from snapshot + log) and each
changed one is snapshotted. It only adds snapshots; it deletes neither log nor snapshots
(ssm compact does). A database held by a running server is refused: use the server's
POST /v1/checkpoint instead.

Options:
  --db PATH      database file (default storage/ssm.db)
  MACHINE        only this machine
${MODULE_HELP}`;

export const SERVER_HINT = 'the server holding it checkpoints itself: use POST /v1/checkpoint on the running server (ssm serve), or stop it first';

export async function run(argv: string[]): Promise<number> {
  return usageGuard('checkpoint', async () => {
    const { values, positionals } = parseCommand(argv, { db: { type: 'string' }, module: { type: 'string' } }, USAGE);
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    positionalsAtMost(positionals, 1, USAGE);
    const only = positionals[0];
    const resolveMachine = await loadMachines(values.module);
    const reader = StoreReader.open(values.db);
    let names: string[];
    let keep: number;
    try {
      if (only !== undefined) requireMachine(reader, only);
      names = reader.knownMachineNames();
      refuseForeignDatabase(reader, values.module, names);
      // Keep every existing snapshot: this command only adds.
      keep = reader.mostSnapshotsOfAMachine() + 1;
    } finally {
      reader.close();
    }
    if (names.length === 0) {
      console.log(`no machines in ${reader.path}`);
      return 0;
    }
    const app = await releaseOnInterrupt(startOffline(reader.path, names, resolveMachine, SERVER_HINT, { keepSnapshots: keep, retainLog: true }), (started) => started.stop());
    try {
      const written = await app.checkpoint(only);
      const byName = new Map(written.map((s) => [s.machine, s]));
      let unchangedEntities = 0;
      for (const name of only !== undefined ? [only] : names) {
        const s = byName.get(name);
        // Entities unchanged are counted, not listed: a family may hold millions.
        if (!s && only === undefined && name.includes('/')) unchangedEntities++;
        else console.log(s ? `${name}: snapshot at seq ${s.seq} (${bytes(s.size)})` : `${name}: unchanged since its last snapshot`);
      }
      if (unchangedEntities > 0) console.log(`${unchangedEntities} entit${unchangedEntities === 1 ? 'y' : 'ies'} unchanged since ${unchangedEntities === 1 ? 'its' : 'their'} last snapshot`);
    } finally {
      await app.stop();
    }
    return 0;
  });
}
