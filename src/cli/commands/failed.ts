import { cbor } from '../../encoding/cbor.js';
import type { FailedRequest } from '../../storage/rows.js';
import { parseCommand } from '../args.js';
import { positionalsAtMost, positiveFlag, usageGuard } from '../common.js';
import { toJson, toJsonValue } from '../../encoding/json.js';
import { StoreReader } from '../../storage/store-reader.js';
import { requireMachine } from '../machines.js';

export const summary = 'list requests whose step threw (crashes), newest first, with their errors';

const USAGE = `Usage: ssm failed [MACHINE] [--db PATH] [--limit N] [--json]

Lists the requests that crashed a machine, newest first: when, the machine's last applied
sequence number at the time, the error's name and message, and the decoded input. Failed
requests are never in the request log, so replay never meets them. Read-only: safe while a
server runs.

Options:
  --db PATH    database file (default storage/ssm.db)
  MACHINE      only this machine's failures
  --limit N    at most N (default 100)
  --json       JSON Lines: one {"id", "machine", "afterSeq", "failedAt", "error", "input"} per line`;

function decodeInput(r: FailedRequest): { ok: true; value: unknown } | { ok: false; why: string } {
  if (r.input === null) return { ok: false, why: 'not recorded' };
  try {
    return { ok: true, value: cbor.decode(r.input) };
  } catch (err) {
    return { ok: false, why: `undecodable: ${err instanceof Error ? err.message : String(err)}` };
  }
}

export async function run(argv: string[]): Promise<number> {
  return usageGuard('failed', async () => {
    const { values, positionals } = parseCommand(argv, { db: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    positionalsAtMost(positionals, 1, USAGE);
    const name = positionals[0] ?? null;
    const limit = positiveFlag('limit', values.limit) ?? 100;
    const store = StoreReader.open(values.db);
    try {
      if (name !== null) requireMachine(store, name);
      const failures = store.failedRequests(name, limit);
      const lines: string[] = [];
      for (const r of failures) {
        const input = decodeInput(r);
        if (values.json) {
          lines.push(
            JSON.stringify({
              id: r.id,
              machine: r.machine,
              afterSeq: r.afterSeq,
              failedAt: r.failedAt,
              error: { name: r.errorName, message: r.errorMessage, stack: r.stack },
              input: input.ok ? toJsonValue(input.value) : null,
            }),
          );
        } else {
          lines.push(`#${r.id}  ${r.machine}  ${r.failedAt}  after seq ${r.afterSeq}`);
          lines.push(`    ${r.errorName}: ${r.errorMessage.split('\n')[0]}`);
          lines.push(`    input: ${input.ok ? toJson(input.value) : `(${input.why})`}`);
        }
      }
      if (lines.length) console.log(lines.join('\n'));
      else if (!values.json) console.error(`no failed requests${name !== null ? ` for ${name}` : ''}`);
      return 0;
    } finally {
      store.close();
    }
  });
}
