/**
 * SIGKILL at each named crash point inside the engine (src/crash-points.ts), in a real child
 * process that acknowledges its writes to this process over stdout. After each kill the
 * database is reopened here: every acknowledged write must be present with its value, recovery
 * must succeed, and the application must take writes again (and recover them in turn).
 */
import test, { type ExecutionContext } from 'ava';
import BetterSqlite3 from 'better-sqlite3';
import { copyFileSync, existsSync } from 'node:fs';
import { startApplication } from '../src/engine/application.js';
import { latestSchemaVersion, loadMigrations, migrate } from '../src/storage/migrations.js';
import { childValue, kvEntries, kvTree, rawDb, tableCounts, tempDb } from './helpers/persistence-kv.js';
import { faultsTestMigration } from './helpers/faults-migration.js';
import { acks, runFixture } from './helpers/faults-spawn.js';

/** Reopens `db`, checks every acknowledged write, writes more and checks those survive a restart. Returns keys present but never acknowledged. */
async function verifyAfterCrash(t: ExecutionContext, db: string, acked: readonly [string, string][]): Promise<number> {
  const app = await startApplication(kvTree(), { db, logger: false });
  let extra = 0;
  try {
    const present = new Map<string, Map<string, unknown>>();
    for (const m of app.machines()) present.set(m, new Map(await kvEntries(app, m)));
    let missing = 0;
    for (const [m, k] of acked) {
      const v = present.get(m)!.get(k);
      if (v === undefined) missing++;
      else t.deepEqual(v, childValue(k), `${m}/${k} holds the acknowledged value`);
    }
    t.is(missing, 0, `${missing} of ${acked.length} acknowledged writes lost`);
    const ackedSet = new Set(acked.map(([m, k]) => `${m}/${k}`));
    for (const [m, entries] of present) for (const k of entries.keys()) if (!ackedSet.has(`${m}/${k}`)) extra++;
    // Usable: new writes are acknowledged and survive another restart.
    for (let i = 0; i < 20; i++) await app.call(i % 2 ? 'kv1' : 'kv2', { op: 'store', key: `after:${i}`, value: i });
  } finally {
    await app.stop();
  }
  const again = await startApplication(kvTree(), { db, logger: false });
  try {
    t.is(await again.call('kv2', { op: 'lookup', key: 'after:0' }), 0);
    t.is(await again.call('kv1', { op: 'lookup', key: 'after:19' }), 19);
    t.true((await again.call<number>('kv1', { op: 'size' })) >= 10);
  } finally {
    await again.stop();
  }
  return extra;
}

async function crashRun(t: ExecutionContext, point: string, every: number): Promise<{ db: string; acked: [string, string][] }> {
  const db = tempDb(t, 'ssm-crashpt-');
  const r = await runFixture(['write', db, String(every), '16'], { SSM_CRASH_POINT: point });
  t.is(r.signal, 'SIGKILL', `the child died at the crash point ${point} (code ${r.code}); stderr: ${r.stderr}`);
  t.true(r.lines.includes('ready'));
  const acked = acks(r.lines);
  t.log(`${point}: ${acked.length} writes acknowledged before the kill`);
  return { db, acked };
}

test('after-log-append: the batch is committed but its replies never left; nothing acknowledged lost, and the unreleased batch is present', async (t) => {
  const { db, acked } = await crashRun(t, 'after-log-append:40', 0);
  t.true(acked.length > 0);
  const extra = await verifyAfterCrash(t, db, acked);
  // The log was committed before the kill: those writes are durable although never acknowledged.
  t.true(extra > 0, 'the committed-but-unreplied batch survived (the crash landed after the commit)');
});

test('mid-snapshot: killed inside the snapshot transaction; the snapshot is rolled back, recovery uses the previous one plus the log', async (t) => {
  const { db, acked } = await crashRun(t, 'mid-snapshot:4', 30);
  t.true(acked.length >= 90, 'three snapshots were taken before the fourth was cut');
  const counts = tableCounts(db);
  t.true(counts.snapshots >= 2 && counts.snapshots <= 4, `snapshots on disk: ${counts.snapshots} (2 kept per machine, the cut one absent)`);
  await verifyAfterCrash(t, db, acked);
});

test('snapshot-before-truncate: killed between the snapshot row and the log truncation; nothing acknowledged lost, no log gap', async (t) => {
  const { db, acked } = await crashRun(t, 'snapshot-before-truncate:5', 25);
  t.true(acked.length >= 100);
  await verifyAfterCrash(t, db, acked);
});

test('mid-migration on a new database: the migration is rolled back whole; the next open migrates and serves', async (t) => {
  const db = tempDb(t, 'ssm-crashpt-');
  const r = await runFixture(['write', db, '0', '4'], { SSM_CRASH_POINT: 'mid-migration' });
  t.is(r.signal, 'SIGKILL', `killed in the migration; stderr: ${r.stderr}`);
  t.false(r.lines.includes('ready'));
  const raw = rawDb(db);
  t.is(raw.pragma('user_version', { simple: true }), 0, 'schema version not bumped');
  t.deepEqual(raw.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all(), [], 'no table of the half-run migration remains');
  raw.close();
  await verifyAfterCrash(t, db, []);
});

test('mid-migration on a database with acknowledged data: the data and the old schema are intact; the migration re-runs cleanly later', async (t) => {
  const db = tempDb(t, 'ssm-crashpt-');
  const first = await runFixture(['write', db, '50', '16'], {}, { killAfter: 300 });
  t.is(first.signal, 'SIGKILL');
  const acked = acks(first.lines);
  t.true(acked.length >= 300);
  const before = tableCounts(db);

  const r = await runFixture(['migrate', db], { SSM_CRASH_POINT: 'mid-migration' });
  t.is(r.signal, 'SIGKILL', `killed inside the test migration; stderr: ${r.stderr}`);
  const raw = rawDb(db);
  const latest = latestSchemaVersion();
  t.is(raw.pragma('user_version', { simple: true }), latest, 'still the shipped schema version');
  t.false((raw.prepare('SELECT name FROM pragma_table_info(?)').pluck().all('machines') as string[]).includes('note'), 'the added column was rolled back');
  t.is(raw.prepare(`SELECT count(*) FROM machines WHERE status = 'migrated'`).pluck().get(), 0, 'the data rewrite was rolled back');
  raw.close();
  t.deepEqual(tableCounts(db), before, 'log and snapshots untouched');

  // The migration applied to a copy, without a crash, succeeds from the same state.
  const copy = db.replace(/app\.db$/, 'copy.db');
  for (const suffix of ['', '-wal']) if (existsSync(db + suffix)) copyFileSync(db + suffix, copy + suffix);
  const conn = new BetterSqlite3(copy);
  t.deepEqual(migrate(conn, [...loadMigrations(), faultsTestMigration()]), { from: latest, to: latest + 1 });
  t.is(conn.prepare('SELECT count(*) FROM faults_test_extra').pluck().get(), before.log);
  conn.close();

  // The original, still at the shipped version, serves with every acknowledged write.
  await verifyAfterCrash(t, db, acked);
});
