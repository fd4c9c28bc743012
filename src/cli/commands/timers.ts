import { cbor } from '../../encoding/cbor.js';
import { toJson, toJsonValue } from '../../encoding/json.js';
import { StoreReader } from '../../storage/store-reader.js';
import { parseCommand } from '../args.js';
import { positionalsAtMost, positiveFlag, usageGuard } from '../common.js';
import { requireMachine } from '../machines.js';

export const summary = 'list pending durable timers, soonest first, with their inputs';

const USAGE = `Usage: ssm timers [MACHINE] [--db PATH] [--limit N] [--json]

Lists the durable timers that have not fired yet, soonest first: machine, timer id, when it is
due (and how far from now), the seq of the request that set it, and the input it will deliver.
A timer that fell due while no application ran fires when one starts. Read-only: safe while a
server runs.

Options:
  --db PATH    database file (default storage/ssm.db)
  MACHINE      only this machine's timers
  --limit N    at most N (default 100)
  --json       JSON Lines: one {"machine", "timer", "dueAt", "setSeq", "setAt", "input"} per line`;

function relative(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  const text = s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
  return ms >= 0 ? `in ${text}` : `${text} overdue`;
}

export async function run(argv: string[]): Promise<number> {
  return usageGuard('timers', async () => {
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
      const timers = store.pendingTimers(name, limit) ?? [];
      const now = Date.now();
      const lines: string[] = [];
      for (const t of timers) {
        let input: { ok: true; value: unknown } | { ok: false; why: string };
        try {
          input = { ok: true, value: cbor.decode(t.input) };
        } catch (err) {
          input = { ok: false, why: `undecodable: ${err instanceof Error ? err.message : String(err)}` };
        }
        if (values.json) {
          lines.push(JSON.stringify({ machine: t.machine, timer: t.timer, dueAt: t.dueAt, setSeq: t.setSeq, setAt: t.setAt, input: input.ok ? toJsonValue(input.value) : null }));
        } else {
          lines.push(`${t.dueAt}  (${relative(t.dueMs - now)})  ${t.machine}  ${JSON.stringify(t.timer)}  set at seq ${t.setSeq}`);
          lines.push(`    input: ${input.ok ? toJson(input.value) : `(${input.why})`}`);
        }
      }
      if (lines.length) console.log(lines.join('\n'));
      else if (!values.json) console.error(`no pending timers${name !== null ? ` for ${name}` : ''}`);
      return 0;
    } finally {
      store.close();
    }
  });
}
