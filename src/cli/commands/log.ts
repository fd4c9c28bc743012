import { cbor } from '../../encoding/cbor.js';
import { ConfigError } from '../../errors.js';
import { intFlag, parseCommand } from '../args.js';
import { positionalsAtMost, positiveFlag, usageGuard } from '../common.js';
import { toJson, toJsonValue } from '../../encoding/json.js';
import { StoreReader } from '../../storage/store-reader.js';
import { requireMachine } from '../machines.js';

export const summary = "print a machine's logged (state-changing) requests, decoded";

const USAGE = `Usage: ssm log MACHINE [--db PATH] [--since SEQ] [--limit N] [--json]

Prints the requests in MACHINE's request log, oldest first, one per line: sequence number, the
time its batch was committed, and the decoded input. Read-only requests are never logged.
Read-only: safe while a server runs.

Options:
  --db PATH     database file (default storage/ssm.db)
  --since SEQ   only requests after SEQ (seq > SEQ); pass the last seq you have seen
  --limit N     at most N requests
  --json        JSON Lines: one {"seq", "loggedAt", "input"} object per line`;

export async function run(argv: string[]): Promise<number> {
  return usageGuard('log', async () => {
    const { values, positionals } = parseCommand(argv, { db: { type: 'string' }, since: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
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
      const out: string[] = [];
      const flush = (): void => {
        if (out.length) process.stdout.write(out.join('\n') + '\n');
        out.length = 0;
      };
      rows: for (const row of store.logAfter(name, since)) {
        const inputs = cbor.decodeMultiple(row.requests) as unknown[];
        for (let i = 0; i < inputs.length; i++) {
          const seq = row.firstSeq + i;
          if (seq <= since) continue;
          if (shown >= limit) break rows;
          shown++;
          out.push(values.json ? JSON.stringify({ seq, loggedAt: row.loggedAt, input: toJsonValue(inputs[i]) }) : `${String(seq).padStart(6)}  ${row.loggedAt}  ${toJson(inputs[i])}`);
        }
        if (out.length >= 1000) flush();
      }
      flush();
      if (shown === 0 && !values.json) console.error(`no logged requests for ${name}${since > 0 ? ` after seq ${since}` : ''}`);
      return 0;
    } finally {
      store.close();
    }
  });
}
