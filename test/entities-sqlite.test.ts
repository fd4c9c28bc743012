/**
 * The README's sqlite3 queries for entities run with the real sqlite3 binary against a live
 * database, return rows, and read indexes only (EXPLAIN QUERY PLAN: no full scan of a table).
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { startApplication } from '../src/engine/application.js';
import { entities } from '../src/model/entities.js';
import { supervisor, worker } from '../src/model/tree.js';
import { counterMachine } from './fixtures/entity-machines.js';
import { tempDb } from './helpers/persistence-kv.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

function entityQueries(): string[] {
  const start = readme.indexOf('\n## Entities: a machine per key');
  const end = readme.indexOf('\n## ', start + 4);
  return [...readme.slice(start, end).matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

// On stdin: a query starting with a comment would read as an option.
const sqlite = (db: string, q: string) => spawnSync('sqlite3', ['-readonly', '-header', db], { input: q, encoding: 'utf8' });

test('the entity cookbook queries run with sqlite3, return rows, and use indexes', async (t) => {
  const db = tempDb(t, 'ssm-ent-sql-');
  const machine = counterMachine();
  const app = await startApplication(supervisor('one_for_one', [worker('fixed', machine), entities('account', machine, { maxActive: 5 }), entities('cart', machine)]), { db, logger: false, snapshot: { every: 4 } });
  try {
    for (let i = 0; i < 30; i++) await app.call(`account/${i % 12}`, { op: 'add', by: 1 });
    await app.call('account/42', { op: 'add', by: 1 });
    await app.call('cart/x', { op: 'add', by: 1 });
    await app.call('fixed', { op: 'add', by: 1 });
    for (const k of ['3', '3', '7']) await app.call(`account/${k}`, { op: 'boom' }).catch(() => undefined);
    const queries = entityQueries();
    t.is(queries.length, 4);
    for (const q of queries) {
      const r = sqlite(db, q);
      t.is(r.status, 0, `${q}\n${r.stderr}`);
      t.is(r.stderr, '', q);
      t.not(r.stdout.trim(), '', `no rows for: ${q}`);
      const plan = sqlite(db, `EXPLAIN QUERY PLAN ${q}`).stdout;
      const scans = plan.split('\n').filter((l) => /SCAN (request_log|snapshots|failed_requests|machines)\b/.test(l) && !/INDEX/.test(l));
      t.deepEqual(scans, [], `a full table scan in:\n${q}\n${plan}`);
    }
    const perFamily = sqlite(db, queries[0]!).stdout;
    t.regex(perFamily, /account\|13/);
    t.regex(perFamily, /cart\|1/);
    const crashes = sqlite(db, queries[2]!).stdout.trim().split('\n');
    t.regex(crashes[1]!, /^account\/3\|2\|/);
    t.regex(crashes[2]!, /^account\/7\|1\|/);
    t.regex(sqlite(db, queries[1]!).stdout, /account\/\d+\|3/);
  } finally {
    await app.stop();
  }
});
