import { statSync } from 'node:fs';
import { Store } from '../../storage/store.js';
import { StoreReader } from '../../storage/store-reader.js';
import { intFlag, parseCommand } from '../args.js';
import { positionalsAtMost, usageGuard } from '../common.js';
import { releaseOnInterrupt } from '../interrupt.js';
import { bytes } from '../format.js';
import { explainNothingPruned } from '../compact-explain.js';
import { MODULE_HELP, loadMachines, refuseForeignDatabase, startOffline } from '../machines.js';
import { SERVER_HINT } from './checkpoint.js';
import { ConfigError } from '../../errors.js';

export const summary = 'checkpoint every machine, prune the log and old snapshots, and VACUUM the file';

const USAGE = `Usage: ssm compact [--db PATH] [--keep N] [--module PATH]

Shrinks a database: snapshots every machine (as ssm checkpoint), deletes quarantined (corrupt) snapshots and all but the newest
--keep snapshots of each machine and the log entries those snapshots cover (the history that
ssm inspect --at and ssm log read), then VACUUMs the file. Prints the size before and after.
Needs the writer role: stop the server first.

Options:
  --db PATH      database file (default storage/ssm.db)
  --keep N       snapshots kept per machine (default 2; older ones are fall-backs if the
                 newest is ever corrupt). While a machine has fewer than N snapshots its whole
                 log is kept (init stays a fall-back), so on a young database the default
                 removes nothing: compact then says why, and --keep 1 is what frees the log
${MODULE_HELP}`;

/** Bytes of a database file plus its WAL. */
export function sizeOnDisk(path: string): number {
  let total = 0;
  for (const p of [path, `${path}-wal`]) {
    try {
      total += statSync(p).size;
    } catch {
      // no WAL file: nothing to add
    }
  }
  return total;
}

export async function run(argv: string[]): Promise<number> {
  return usageGuard('compact', async () => {
    const { values, positionals } = parseCommand(argv, { db: { type: 'string' }, keep: { type: 'string' }, module: { type: 'string' } }, USAGE, false);
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    positionalsAtMost(positionals, 0, USAGE);
    const keep = intFlag('keep', values.keep) ?? 2;
    if (keep < 1) throw new ConfigError('--keep must be at least 1');
    const resolveMachine = await loadMachines(values.module);
    const reader = StoreReader.open(values.db);
    const path = reader.path;
    let names: string[];
    try {
      names = reader.knownMachineNames();
      refuseForeignDatabase(reader, values.module, names);
    } finally {
      reader.close();
    }
    const before = sizeOnDisk(path);
    let newSnapshotBytes = 0;

    if (names.length > 0) {
      const app = await releaseOnInterrupt(startOffline(path, names, resolveMachine, SERVER_HINT, { keepSnapshots: keep }), (started) => started.stop());
      try {
        const written = await app.checkpoint();
        newSnapshotBytes = written.reduce((n, w) => n + w.size, 0);
        console.log(`snapshots written: ${written.length} (machines already up to date: ${names.length - written.length})`);
      } finally {
        await app.stop();
      }
    }

    const store = await releaseOnInterrupt(Promise.resolve(Store.open(path)), (opened) => opened.close());
    let logRows = 0;
    let snapshots = 0;
    try {
      ({ snapshots, logRows } = store.compact(names, keep));
      store.checkpointWal();
      store.vacuum();
    } finally {
      store.close();
    }
    const after = sizeOnDisk(path);
    console.log(`pruned ${logRows} log row${logRows === 1 ? '' : 's'} and ${snapshots} old snapshot${snapshots === 1 ? '' : 's'}`);
    console.log(`size before: ${bytes(before)} (${before} bytes), after: ${bytes(after)} (${after} bytes), saved ${bytes(Math.max(0, before - after))}`);
    // Not a leak: the retention rule keeps the newest --keep snapshots, so a machine that had
    // fewer keeps its old ones (and their log) beside the one compact just wrote.
    if (after > before) console.log(`grew by ${bytes(after - before)}: the snapshots just written (${bytes(newSnapshotBytes)}) are kept beside the older ones until a machine has more than --keep ${keep}; nothing older could be pruned yet`);
    if (logRows === 0 && snapshots === 0) {
      // Read once the writer has closed, so the sizes are those of the file as it stays.
      const explained = StoreReader.open(path);
      try {
        for (const line of explainNothingPruned(explained, names, keep, after)) console.log(line);
      } finally {
        explained.close();
      }
    }
    return 0;
  });
}
