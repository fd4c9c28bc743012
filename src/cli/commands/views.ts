import { cbor, decodeCbor } from '../../encoding/cbor.js';
import { toJson } from '../../encoding/json.js';
import { renderedEntries, renderedState } from '../../engine/readable-state.js';
import { DatabaseLockedError, SsmError } from '../../errors.js';
import { Store } from '../../storage/store.js';
import { parseCommand } from '../args.js';
import { positionalsAtMost, usageGuard } from '../common.js';
import { releaseOnInterrupt } from '../interrupt.js';
import { MODULE_HELP, loadMachines, rebuild, refuseForeignDatabase } from '../machines.js';

export const summary = 'rebuild the readable tables (kv_entries, machine_states, request JSON) from the CBOR';

const USAGE = `Usage: ssm views --rebuild [--db PATH] [--off] [--module PATH]

The readable tables (kv_entries, machine_states, and the JSON behind the requests and
failed_inputs views) are derived from the CBOR that recovery reads, written in every commit and
brought up to date at start. --rebuild recomputes all of them from the CBOR: each machine's state
is recovered (snapshot + log) and its rows rewritten, and every log row's and failed input's JSON
redone; --off removes them instead (for a database served with readable: false). It takes the
writer role: a database held by a running server is refused.

Options:
  --db PATH      database file (default storage/ssm.db)
  --rebuild      recompute every readable table
  --off          remove them
${MODULE_HELP}`;

/** The JSON of a log row's CBOR sequence (or of one failed input). */
function render(bytes: Uint8Array, sequence: boolean): string | null {
  try {
    return sequence ? `[${(cbor.decodeMultiple(bytes) as unknown[]).map((v) => toJson(v)).join(',')}]` : toJson(decodeCbor(bytes));
  } catch {
    return null;
  }
}

export async function run(argv: string[]): Promise<number> {
  return usageGuard('views', async () => {
    const { values, positionals } = parseCommand(argv, { db: { type: 'string' }, rebuild: { type: 'boolean' }, off: { type: 'boolean' }, module: { type: 'string' } }, USAGE);
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    positionalsAtMost(positionals, 0, USAGE);
    if (values.rebuild === values.off) {
      console.error(USAGE);
      return 2;
    }
    const resolveMachine = await loadMachines(values.module);
    let store: Store;
    try {
      store = await releaseOnInterrupt(Promise.resolve(Store.open(values.db, { create: false })), (s) => s.close());
    } catch (err) {
      if (err instanceof DatabaseLockedError) throw new SsmError(err.code, `${err.message}; the server keeps its readable tables itself (stop it to rebuild them)`);
      throw err;
    }
    try {
      const names = store.knownMachineNames();
      if (!values.off) refuseForeignDatabase(store, values.module, names);
      for (const name of names) {
        if (values.off) {
          store.rebuildEntries(name, [], null);
          store.writeReadableState(name, 0, null);
          store.rebuildRequestJson(name, null);
          console.log(`${name}: readable tables removed`);
          continue;
        }
        const machine = resolveMachine(name);
        const { state, report } = rebuild(store, name, machine);
        if (machine.entries) store.rebuildEntries(name, renderedEntries(machine, state), report.seq);
        store.writeReadableState(name, report.seq, renderedState(machine, state));
        const rows = store.rebuildRequestJson(name, render);
        console.log(`${name}: rebuilt as of seq ${report.seq} (${machine.entries ? 'kv_entries, ' : ''}machine_states, JSON of ${rows} log row${rows === 1 ? '' : 's'})`);
      }
      return 0;
    } finally {
      store.close();
    }
  });
}
