import { cbor } from '../../encoding/cbor.js';
import { ConfigError, LogTruncatedError } from '../../errors.js';
import { intFlag, parseCommand } from '../args.js';
import { positionalsAtMost, positiveFlag, usageGuard } from '../common.js';
import { toJson, toJsonValue } from '../../encoding/json.js';
import { StoreReader } from '../../storage/store-reader.js';
import { requireMachine } from '../machines.js';

export const summary = "print a machine's logged (state-changing) requests, decoded";

const USAGE = `Usage: ssm log MACHINE [--db PATH] [--since SEQ] [--limit N] [--json] [--follow]

Prints the requests in MACHINE's request log, oldest first, one per line: sequence number, the
time its batch was committed, and the decoded input. Read-only requests are never logged.
Read-only: safe while a server runs.

Options:
  --db PATH     database file (default storage/ssm.db)
  --since SEQ   only requests after SEQ (seq > SEQ); pass the last seq you have seen
  --limit N     at most N requests
  --json        JSON Lines: one {"seq", "loggedAt", "input"} object per line
  --follow      then keep printing requests as they are committed (a server writing the
                database), until Ctrl-C; applications can follow in process with app.subscribe`;

/** How often --follow looks for new log rows. */
const FOLLOW_POLL_MS = 200;

export async function run(argv: string[]): Promise<number> {
  return usageGuard('log', async () => {
    const { values, positionals } = parseCommand(argv, { db: { type: 'string' }, since: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' }, follow: { type: 'boolean' } }, USAGE);
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    positionalsAtMost(positionals, 1, USAGE);
    const name = positionals[0];
    if (name === undefined) throw new ConfigError('missing MACHINE (usage: ssm log MACHINE [--since SEQ] [--limit N] [--json]; try --help)');
    const since = intFlag('since', values.since) ?? 0;
    const limit = positiveFlag('limit', values.limit) ?? Number.POSITIVE_INFINITY;
    const store = StoreReader.open(values.db);
    try {
      requireMachine(store, name);
      const firstLogged = store.firstLoggedSeq(name);
      if (firstLogged !== null && firstLogged > since + 1) {
        console.error(`note: ${name}'s log before seq ${firstLogged} was pruned (covered by snapshots); run with snapshot: { retainLog: true } to keep it`);
      }
      let shown = 0;
      let last = since;
      const out: string[] = [];
      const flush = (): void => {
        if (out.length) process.stdout.write(out.join('\n') + '\n');
        out.length = 0;
      };
      /** Prints what was logged after `last`, up to the limit; false once the limit is reached. */
      const printNew = (): boolean => {
        for (const row of store.logAfter(name, last)) {
          const inputs = cbor.decodeMultiple(row.requests) as unknown[];
          for (let i = 0; i < inputs.length; i++) {
            const seq = row.firstSeq + i;
            if (seq <= last) continue;
            if (shown >= limit) return (flush(), false);
            shown++;
            last = seq;
            out.push(values.json ? JSON.stringify({ seq, loggedAt: row.loggedAt, input: toJsonValue(inputs[i]) }) : `${String(seq).padStart(6)}  ${row.loggedAt}  ${toJson(inputs[i])}`);
          }
          if (out.length >= 1000) flush();
        }
        flush();
        return true;
      };
      const more = printNew();
      if (!values.follow) {
        if (shown === 0 && !values.json) console.error(`no logged requests for ${name}${since > 0 ? ` after seq ${since}` : ''}`);
        return 0;
      }
      // Until Ctrl-C (or the limit): each look is one short read transaction; the writer never waits.
      while (more) {
        await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
        const pruned = store.firstLoggedSeq(name);
        // Trimmed before it could be read (snapshots cover it): say so rather than skip requests.
        if (pruned !== null && pruned > last + 1) throw new LogTruncatedError(name, last + 1, store.oldestReplayableSeq(name));
        if (!printNew()) break;
      }
      return 0;
    } finally {
      store.close();
    }
  });
}
