import { isMapLike } from '../../encoding/sharded-map.js';
import { ConfigError, RecoveryError, SsmError } from '../../errors.js';
import { StoreReader } from '../../storage/store-reader.js';
import { intFlag, parseCommand } from '../args.js';
import { positionalsAtMost, positiveFlag, usageGuard } from '../common.js';
import { entryLines, stateText } from '../format.js';
import { countText, moreText, pageMap, type PageOptions } from '../paging.js';
import { toJsonValue } from '../../encoding/json.js';
import { MODULE_HELP, loadMachines, rebuild, refuseForeignDatabase, requireMachine } from '../machines.js';

export const summary = "show machines' current state (or as of a sequence number), decoded from snapshot + log";

const USAGE = `Usage: ssm inspect [--db PATH] [MACHINE] [--at SEQ] [--limit N] [--offset N] [--prefix P] [--json] [--module PATH]

Rebuilds each machine's state the way a restart would (newest valid snapshot, then the request
log replayed through the machine's step) and prints it. Read-only: safe while a server runs.

Options:
  --db PATH      database file (default storage/ssm.db)
  MACHINE        only this machine (default: every machine in the database)
  --at SEQ       time travel: the state as of sequence number SEQ (needs MACHINE). Possible
                 for any SEQ from a retained snapshot onwards, or from 0 if the whole log is
                 retained; run the application with snapshot: { retainLog: true } to keep it.
  --limit N      Map states (the KV store's): show at most N entries per machine, in key
                 order (default 100 in text, all with --json); a line says how many more
  --offset N     skip the first N (matching) entries (default 0)
  --prefix P     only entries whose key starts with P
  --json         one JSON document instead of text (Maps with string keys become objects,
                 other Maps [key, value] arrays; bigint -> string, bytes -> base64, Date -> ISO);
                 a Map state also gets "page": {"total", "matched", "offset", "limit",
                 "prefix", "shown"}, its entries sorted by key and paged as above
${MODULE_HELP}`;

interface Inspected {
  name: string;
  status: string;
  restarts: number;
  seq: number;
  lastSeq: number;
  snapshotSeq: number;
  replayed: number;
  state: unknown;
}

/** Entries shown per machine in text mode when --limit is not given. */
export const DEFAULT_TEXT_LIMIT = 100;

/** The earliest sequence number whose state can be rebuilt from what the database retains. */
function earliestRetained(store: StoreReader, name: string): number {
  const firstLogged = store.firstLoggedSeq(name);
  const oldestSnapshot = store.oldestSnapshotSeq(name);
  if (firstLogged !== null && firstLogged <= 1) return 0;
  return oldestSnapshot ?? (firstLogged === null ? 0 : firstLogged - 1);
}

function notRetained(store: StoreReader, name: string, at: number): SsmError {
  const from = earliestRetained(store, name);
  return new SsmError(
    'NOT_RETAINED',
    `the state of ${name} as of seq ${at} is not retained: the log up to seq ${from} was pruned, so the earliest state that can be rebuilt is seq ${from}; to keep history for --at, run the application with snapshot: { retainLog: true } (and more keepSnapshots)`,
  );
}

export async function run(argv: string[]): Promise<number> {
  return usageGuard('inspect', async () => {
    const { values, positionals } = parseCommand(
      argv,
      { db: { type: 'string' }, at: { type: 'string' }, json: { type: 'boolean' }, module: { type: 'string' }, limit: { type: 'string' }, offset: { type: 'string' }, prefix: { type: 'string' } },
      USAGE,
    );
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    positionalsAtMost(positionals, 1, USAGE);
    const only = positionals[0];
    const at = intFlag('at', values.at);
    if (at !== undefined && only === undefined) throw new ConfigError('--at needs a MACHINE: sequence numbers are per machine (usage: ssm inspect MACHINE --at SEQ)');
    const paging: PageOptions = { limit: positiveFlag('limit', values.limit), offset: intFlag('offset', values.offset), prefix: values.prefix };
    const resolveMachine = await loadMachines(values.module);
    const store = StoreReader.open(values.db);
    try {
      // One read transaction: a server snapshotting and pruning meanwhile cannot pull the log
      // out from under the replay.
      return store.consistentRead(() => {
        if (only !== undefined) requireMachine(store, only);
        const rows = new Map(store.machines().map((m) => [m.name, m]));
        const names = only !== undefined ? [only] : store.knownMachineNames();
        refuseForeignDatabase(store, values.module, names);
        const out: Inspected[] = [];
        for (const name of names) {
          const machine = resolveMachine(name);
          const lastSeq = store.lastSeq(name);
          if (at !== undefined && at > lastSeq) throw new SsmError('NOT_RETAINED', `${name} has only reached seq ${lastSeq}; --at ${at} is in its future`);
          let recovered;
          try {
            recovered = rebuild(store, name, machine, at);
          } catch (err) {
            if (at !== undefined && err instanceof RecoveryError && /gap/.test(err.message)) throw notRetained(store, name, at);
            throw err;
          }
          if (at !== undefined && recovered.report.seq !== at) throw notRetained(store, name, at);
          const row = rows.get(name);
          out.push({
            name,
            status: row?.status ?? 'unknown',
            restarts: row?.restarts ?? 0,
            seq: recovered.report.seq,
            lastSeq,
            snapshotSeq: recovered.report.snapshotSeq,
            replayed: recovered.report.replayed,
            state: recovered.state,
          });
        }
        if (values.json) {
          const doc = {
            database: store.path,
            ...(at !== undefined ? { at } : {}),
            machines: out.map(jsonMachine(paging)),
          };
          console.log(JSON.stringify(doc, null, 2));
          return 0;
        }
        if (out.length === 0) {
          console.log(`no machines in ${store.path}`);
          return 0;
        }
        const text = { ...paging, limit: paging.limit ?? DEFAULT_TEXT_LIMIT };
        console.log(out.map((m) => machineText(m, at, text)).join('\n'));
        return 0;
      });
    } finally {
      store.close();
    }
  });
}

/** A machine for --json: a Map state paged (all of it unless --limit), with the counts. */
function jsonMachine(paging: PageOptions): (m: Inspected) => Record<string, unknown> {
  return (m) => {
    if (!isMapLike(m.state)) return { ...m, state: toJsonValue(m.state) };
    const page = pageMap(m.state, paging);
    const state = toJsonValue(new Map(page.entries.map(([, k, v]) => [k, v])));
    const { total, matched, offset, limit, prefix } = page;
    return { ...m, state, page: { total, matched, offset, limit, prefix, shown: page.entries.length } };
  };
}

/** A machine in text: a header line, then its state (a Map state paged per `paging`). */
function machineText(m: Inspected, at: number | undefined, paging: PageOptions): string {
  const when = at !== undefined ? `as of seq ${m.seq} (latest ${m.lastSeq})` : `seq ${m.seq}`;
  const from = m.snapshotSeq > 0 ? `snapshot @${m.snapshotSeq} + ${m.replayed} replayed` : `init + ${m.replayed} replayed`;
  const head = `${m.name}  ${when}  [${m.status}, ${m.restarts} restart${m.restarts === 1 ? '' : 's'}; ${from}`;
  if (!isMapLike(m.state) || m.state.size === 0) return [`${head}${isMapLike(m.state) ? ', 0 entries' : ''}]`, ...stateText(m.state)].join('\n');
  const page = pageMap(m.state, paging);
  const more = moreText(page);
  return [`${head}, ${countText(page)}]`, ...entryLines(page.entries), ...(more === null ? [] : [more])].join('\n');
}
