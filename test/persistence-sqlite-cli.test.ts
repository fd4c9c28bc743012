/**
 * The database is for people too: the stock sqlite3 CLI (3.40) reads the overview views of a
 * database an application is running on and writing to, and what it shows agrees with the
 * application's own status.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import test from 'ava';
import { KV_STATE_VERSION } from '../src/kv/kv-machine.js';
import { startApplication } from '../src/engine/application.js';
import { kvTree, tempDb, workerStatus } from './helpers/persistence-kv.js';

const run = promisify(execFile);
const SQLITE3 = '/usr/bin/sqlite3';

async function sqlite(db: string, sql: string): Promise<Record<string, unknown>[]> {
  const { stdout } = await run(SQLITE3, ['-json', '-bail', db, sql]);
  return stdout.trim() === '' ? [] : (JSON.parse(stdout) as Record<string, unknown>[]);
}

test('sqlite3 reads machine_overview, log_since_snapshot and snapshot_list while the application runs', async (t) => {
  if (!existsSync(SQLITE3)) return t.fail(`${SQLITE3} is required by this test`);
  const db = tempDb(t);
  const app = await startApplication(kvTree(['kv1', 'kv2', 'kv3']), { db, logger: false, snapshot: { every: 0, keepSnapshots: 2 } });
  t.teardown(() => app.stop());
  for (let i = 0; i < 7; i++) await app.call('kv1', { op: 'store', key: `k${i}`, value: i });
  await app.checkpoint('kv1'); // snapshot at 7
  await Promise.all(Array.from({ length: 5 }, (_, i) => app.call('kv1', { op: 'store', key: `m${i}`, value: 'x'.repeat(i) }))); // 8..12, batched
  for (let i = 0; i < 3; i++) await app.call('kv2', { op: 'store', key: `k${i}`, value: i });
  await t.throwsAsync(app.call('kv2', { op: 'lookup', key: 'crash' }), { code: 'MACHINE_CRASHED' });

  const overview = await sqlite(db, 'SELECT * FROM machine_overview');
  t.deepEqual(
    overview.map((r) => r['machine']),
    ['kv1', 'kv2', 'kv3'],
  );
  for (const row of overview) {
    const st = workerStatus(app, row['machine'] as string);
    t.is(row['last_seq'], st.seq, `${st.name}: last_seq matches app.status()`);
    t.is(row['status'], 'running');
    t.is(row['state_version'], KV_STATE_VERSION);
    t.is(row['requests_since_snapshot'], st.seq - st.snapshotSeq, `${st.name}: requests since snapshot`);
  }
  const byName = Object.fromEntries(overview.map((r) => [r['machine'], r]));
  t.like(byName['kv1'], { last_seq: 12, snapshot_seq: 7, requests_since_snapshot: 5, restarts: 0 });
  t.true((byName['kv1']!['snapshot_size'] as number) > 0);
  t.regex(byName['kv1']!['snapshot_at'] as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/, 'ISO time');
  t.like(byName['kv2'], { last_seq: 3, snapshot_seq: null, requests_since_snapshot: 3, restarts: 1 });
  t.regex(byName['kv2']!['last_error'] as string, /divide by zero/);
  t.like(byName['kv3'], { last_seq: 0, snapshot_seq: null, requests_since_snapshot: 0 });

  const since = await sqlite(db, 'SELECT machine, first_seq, last_seq, count, size FROM log_since_snapshot');
  const kv1Rows = since.filter((r) => r['machine'] === 'kv1');
  t.is(kv1Rows[0]?.['first_seq'], 8, 'kv1 log starts right after its snapshot');
  t.is(kv1Rows.at(-1)?.['last_seq'], 12);
  t.is(
    kv1Rows.reduce((n, r) => n + (r['count'] as number), 0),
    5,
  );
  t.true(kv1Rows.length < 5, 'the concurrent calls were group-committed into fewer rows');
  for (let i = 1; i < kv1Rows.length; i++) t.is(kv1Rows[i]!['first_seq'], (kv1Rows[i - 1]!['last_seq'] as number) + 1, 'contiguous');
  t.deepEqual(
    since.filter((r) => r['machine'] === 'kv2').map((r) => [r['first_seq'], r['last_seq']]),
    [
      [1, 1],
      [2, 2],
      [3, 3],
    ],
  );

  const snaps = await sqlite(db, 'SELECT * FROM snapshot_list');
  t.is(snaps.length, 1);
  t.like(snaps[0], { machine: 'kv1', seq: 7, state_version: KV_STATE_VERSION, reason: 'checkpoint' });
  t.regex(snaps[0]!['checksum'] as string, /^[0-9a-f]{64}$/);

  const failed = await sqlite(db, 'SELECT machine, after_seq, error_message FROM failed_requests');
  t.deepEqual(failed, [{ machine: 'kv2', after_seq: 3, error_message: 'divide by zero' }]);

  // Reading while writes are in flight: no SQLITE_BUSY for the reader, and a consistent value.
  const writes = Array.from({ length: 200 }, (_, i) => app.call('kv3', { op: 'store', key: `w${i}`, value: i }));
  const during = await sqlite(db, `SELECT last_seq FROM machine_overview WHERE machine = 'kv3'`);
  await Promise.all(writes);
  const seen = during[0]!['last_seq'] as number;
  t.true(seen >= 0 && seen <= 200);
  const end = await sqlite(db, `SELECT last_seq FROM machine_overview WHERE machine = 'kv3'`);
  t.is(end[0]!['last_seq'], 200);
  t.is(workerStatus(app, 'kv3').seq, 200);
});
