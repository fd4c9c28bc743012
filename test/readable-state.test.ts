/**
 * Readable state (issue 14.1): with nothing but the stock sqlite3 CLI, a user reads each KV key
 * as a row, every logged request and failed input as JSON, and other machines' state as JSON,
 * and gets the answers the API gives, at every commit.
 */
import test from 'ava';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { startApplication, type App } from '../src/engine/application.js';
import { defineMachine } from '../src/model/machine.js';
import { supervisor, worker } from '../src/model/tree.js';
import { kvMachine } from '../src/kv/kv-machine.js';
import { kvEntries, tempDb } from './helpers/persistence-kv.js';

const sql = (db: string, query: string): unknown[] => JSON.parse(execFileSync('sqlite3', ['-readonly', '-json', db, query], { encoding: 'utf8' }) || '[]') as unknown[];

const counter = defineMachine<{ total: number; history: number[] }, { add: number }, number>({
  init: () => ({ total: 0, history: [] }),
  step: (i, s) => {
    if (i.add < 0) throw new Error('negative');
    s.total += i.add;
    s.history.push(i.add);
    return [s, s.total];
  },
});
const tree = () => supervisor('one_for_one', [worker('kv1', kvMachine({ deliberateCrash: true })), worker('kv2', kvMachine()), worker('count', counter)], { intensity: 100 });

test('the README queries answer what the API answers: a key, a prefix with json_extract, a count, the last requests, failed inputs, a whole state', async (t) => {
  const db = tempDb(t);
  const app = await startApplication(tree(), { db, logger: false, readable: true });
  t.teardown(() => app.stop());
  await app.call('kv1', { op: 'store', key: 'x', value: 1 });
  await Promise.all(['ada', 'bob', 'cy'].map((n, i) => app.call('kv1', { op: 'store', key: `user:${i}`, value: { name: n, tags: new Set(['a']), joined: new Date(0) } })));
  await app.call('kv1', { op: 'storeMany', entries: [['m1', 'one'], ['m2', 2n]] });
  await app.call('kv1', { op: 'delete', key: 'm1' });
  await app.call('kv2', { op: 'incrBy', key: 'hits', by: 5n });
  await app.call('count', { add: 2 });
  await app.call('count', { add: -1 }).catch(() => undefined);
  await app.call('count', { add: 3 });
  t.deepEqual(sql(db, "SELECT value FROM kv_entries WHERE machine = 'kv1' AND key = 'x';"), [{ value: '1' }]);
  t.deepEqual(sql(db, "SELECT key, json_extract(value, '$.name') AS name FROM kv_entries WHERE machine = 'kv1' AND key LIKE 'user:%' ORDER BY key;"), [
    { key: 'user:0', name: 'ada' },
    { key: 'user:1', name: 'bob' },
    { key: 'user:2', name: 'cy' },
  ]);
  t.deepEqual(sql(db, "SELECT count(*) AS n FROM kv_entries WHERE machine = 'kv1';"), [{ n: await app.call('kv1', { op: 'size' }) }]);
  t.deepEqual(sql(db, "SELECT value FROM kv_entries WHERE machine = 'kv1' AND key = 'm2';"), [{ value: '"2"' }], 'bigint as a decimal string, as everywhere');
  t.deepEqual(sql(db, "SELECT json(value) AS v FROM kv_entries WHERE machine = 'kv1' AND key = 'user:0';"), [{ v: '{"name":"ada","tags":["a"],"joined":"1970-01-01T00:00:00.000Z"}' }]);
  const last = sql(db, "SELECT seq, request FROM requests WHERE machine = 'kv1' ORDER BY seq DESC LIMIT 2;") as { seq: number; request: string }[];
  const stamped = (JSON.parse(last[0]!.request) as { now?: number }).now;
  t.is(typeof stamped, 'number', 'a delete carries the time stamped at the door');
  t.deepEqual(last.map((r) => [r.seq, JSON.parse(r.request)]), [
    [6, { op: 'delete', key: 'm1', now: stamped }],
    [5, { op: 'storeMany', entries: [['m1', 'one'], ['m2', '2']] }],
  ]);
  t.deepEqual(sql(db, "SELECT error_message, input FROM failed_inputs WHERE machine = 'count';"), [{ error_message: 'negative', input: '{"add":-1}' }]);
  // A machine without a per-key projection shows its whole state at every snapshot.
  await app.checkpoint('count');
  t.deepEqual(sql(db, "SELECT seq, json_extract(state, '$.total') AS total FROM machine_states WHERE machine = 'count';"), [{ seq: 2, total: 5 }]);
  await app.checkpoint('kv1');
  t.deepEqual(sql(db, "SELECT state, note FROM machine_states WHERE machine = 'kv1';"), [{ state: null, note: 'one row per key in kv_entries' }]);
});

test('kv_entries equals the store after every batch of random writes, crashes and restarts (fast-check)', async (t) => {
  t.timeout(100_000);
  const key = fc.constantFrom('a', 'b', 'c', 'd', 'e');
  const op = fc.oneof(
    fc.record({ op: fc.constant('store'), key, value: fc.oneof(fc.integer(), fc.string(), fc.constant(null)) }),
    fc.record({ op: fc.constant('delete'), key }),
    fc.record({ op: fc.constant('storeMany'), entries: fc.array(fc.tuple(key, fc.integer()), { maxLength: 3 }) }),
    fc.record({ op: fc.constant('deleteMany'), keys: fc.array(key, { maxLength: 3 }) }),
    fc.record({ op: fc.constant('take'), key }),
    fc.constant({ op: 'lookup', key: 'crash' }), // crashes kv1: restarted from storage
  );
  await fc.assert(
    fc.asyncProperty(fc.array(fc.array(op, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 6 }), fc.boolean(), async (batches, restartMidway) => {
      const db = tempDb(t);
      let app: App = await startApplication(tree(), { db, logger: false, readable: true });
      try {
        for (let i = 0; i < batches.length; i++) {
          await Promise.allSettled(batches[i]!.map((o) => app.call('kv1', o)));
          if (restartMidway && i === 1) {
            await app.stop();
            app = await startApplication(tree(), { db, logger: false, readable: true });
          }
          const raw = new Database(db, { readonly: true });
          const rows = raw.prepare("SELECT key, value FROM kv_entries WHERE machine = 'kv1' ORDER BY key").all() as { key: string; value: string }[];
          raw.close();
          const want = (await kvEntries(app, 'kv1')).map(([k, v]) => ({ key: k, value: JSON.stringify(v) }));
          if (JSON.stringify(rows) !== JSON.stringify(want)) throw new Error(`kv_entries ${JSON.stringify(rows)} != store ${JSON.stringify(want)}`);
        }
      } finally {
        await app.stop();
      }
    }),
    { numRuns: 30 },
  );
  t.pass();
});

test('rows out of date (a database from before readable tables, or turned off) are rebuilt at start; readable: false keeps none', async (t) => {
  const db = tempDb(t);
  const first = await startApplication(tree(), { db, logger: false, readable: true });
  for (let i = 0; i < 50; i++) await first.call('kv1', { op: 'store', key: `k${i}`, value: i });
  await first.stop();
  const raw = new Database(db);
  raw.exec("DELETE FROM kv_entries; UPDATE machines SET entries_seq = NULL; UPDATE request_log SET requests_json = NULL");
  raw.close();
  const second = await startApplication(tree(), { db, logger: false, readable: true });
  await second.stop();
  t.deepEqual(sql(db, "SELECT count(*) AS n FROM kv_entries WHERE machine = 'kv1'"), [{ n: 50 }], 'rebuilt at start');
  const partly = await startApplication(tree(), { db, logger: false, readable: { except: ['kv1'] } });
  await partly.call('kv1', { op: 'store', key: 'hidden', value: 1 });
  await partly.call('kv2', { op: 'store', key: 'shown', value: 1 });
  await partly.stop();
  t.deepEqual(sql(db, "SELECT machine, key FROM kv_entries ORDER BY machine, key"), [{ machine: 'kv2', key: 'shown' }]);
  t.deepEqual(sql(db, "SELECT machine, seq FROM requests ORDER BY machine, seq"), [{ machine: 'kv2', seq: 1 }], 'no JSON logged for kv1');
  await t.throwsAsync(startApplication(tree(), { db, logger: false, readable: 'yes' as never }), { message: /readable must be/ });
  // ssm views --rebuild recomputes all of it from the CBOR, the request JSON nulled above included.
  const { runCli } = await import('./helpers/cli.js');
  const r = await runCli(['views', '--rebuild', '--db', db]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /kv1: rebuilt as of seq 51 \(kv_entries, machine_states, JSON of \d+ log rows?\)/);
  t.deepEqual(sql(db, "SELECT count(*) AS n FROM kv_entries WHERE machine = 'kv1'"), [{ n: 51 }]);
  // The view holds what the log retains (here back to the older of the two kept snapshots).
  t.deepEqual(sql(db, "SELECT count(*) AS n FROM requests WHERE machine = 'kv1'"), sql(db, "SELECT sum(count) AS n FROM request_log WHERE machine = 'kv1'"));
  t.deepEqual(sql(db, "SELECT request FROM requests WHERE machine = 'kv1' AND seq = 51"), [{ request: '{"op":"store","key":"hidden","value":1}' }]);
  const off = await runCli(['views', '--off', '--db', db]);
  t.is(off.code, 0, off.stderr);
  t.deepEqual(sql(db, 'SELECT (SELECT count(*) FROM kv_entries) + (SELECT count(*) FROM requests) + (SELECT count(*) FROM machine_states) AS n'), [{ n: 0 }]);
  t.is((await runCli(['views', '--db', db])).code, 2, 'says what to do');
});

test('ssm checkpoint and ssm compact (offline) keep the readable tables of a database a server wrote with --readable', async (t) => {
  const db = tempDb(t);
  const app = await startApplication(supervisor('one_for_one', [worker('kv1', kvMachine())]), { db, logger: false, readable: true });
  await app.call('kv1', { op: 'store', key: 'a', value: { n: 1 } });
  await app.stop();
  const { runCli } = await import('./helpers/cli.js');
  for (const command of [['checkpoint'], ['compact']]) {
    const r = await runCli([...command, '--db', db]);
    t.is(r.code, 0, r.stdout + r.stderr);
    t.deepEqual(sql(db, "SELECT key, value FROM kv_entries WHERE machine = 'kv1'"), [{ key: 'a', value: '{"n":1}' }], `${command[0]} kept kv_entries`);
  }
});
