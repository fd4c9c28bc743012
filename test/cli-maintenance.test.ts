import test from 'ava';
import BetterSqlite3 from 'better-sqlite3';
import { join } from 'node:path';
import { buildDb, copyDb, holdDb, runCli, tempDir } from './helpers/cli.js';

// An abandoned application's database (kv1: snapshots at 5 and 10, log 1..14 retained, so
// seq 11..14 are not snapshotted; kv2: seq 1..2, no snapshot). Tests that change it use a copy.
let base: string;
test.before(async () => {
  base = join(tempDir(), 'base.db');
  await buildDb(base, 'kv', 'abandon');
});

function query<T>(db: string, sql: string, ...params: unknown[]): T[] {
  const conn = new BetterSqlite3(db, { readonly: true });
  try {
    return conn.prepare(sql).all(...params) as T[];
  } finally {
    conn.close();
  }
}

function write(db: string, sql: string, ...params: unknown[]): number {
  const conn = new BetterSqlite3(db);
  try {
    return conn.prepare(sql).run(...params).changes;
  } finally {
    conn.close();
  }
}

test('checkpoint snapshots the machines that changed, and only adds', async (t) => {
  const db = copyDb(base);
  const before = query<{ machine: string; seq: number }>(db, 'SELECT machine, seq FROM snapshots ORDER BY machine, seq');
  const logRows = query<{ n: number }>(db, 'SELECT count(*) AS n FROM request_log')[0]!.n;
  t.false(before.some((s) => s.machine === 'kv1' && s.seq === 14));
  const r = await runCli(['checkpoint', '--db', db]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^kv1: snapshot at seq 14 \(/m);
  t.regex(r.stdout, /^kv2: snapshot at seq 2 \(/m);
  const after = query<{ machine: string; seq: number; reason: string }>(db, 'SELECT machine, seq, reason FROM snapshots ORDER BY machine, seq');
  t.true(after.some((s) => s.machine === 'kv1' && s.seq === 14 && s.reason === 'checkpoint'));
  for (const s of before) t.true(after.some((a) => a.machine === s.machine && a.seq === s.seq), `snapshot ${s.machine}@${s.seq} kept`);
  t.is(query<{ n: number }>(db, 'SELECT count(*) AS n FROM request_log')[0]!.n, logRows, 'checkpoint deletes no log');
  // Nothing changed since: a second run writes nothing.
  const again = await runCli(['checkpoint', '--db', db, 'kv1']);
  t.is(again.code, 0, again.stderr);
  t.is(again.stdout.trim(), 'kv1: unchanged since its last snapshot');
  // The state is the same, now recovered from the new snapshot.
  const inspect = JSON.parse((await runCli(['inspect', '--db', db, 'kv1', '--json'])).stdout);
  t.is(inspect.machines[0].snapshotSeq, 14);
  t.is(inspect.machines[0].replayed, 0);
  t.is(inspect.machines[0].state.k11, 11);
});

test('checkpoint while an application holds the database: one clear line, non-zero', async (t) => {
  const held = join(tempDir(), 'held.db');
  const holder = await holdDb(held);
  try {
    const r = await runCli(['checkpoint', '--db', held]);
    t.is(r.code, 1);
    t.is(r.stdout, '');
    t.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    t.regex(r.stderr, /^ssm checkpoint: database .* is in use by pid \d+ .*POST \/v1\/checkpoint.* \[DATABASE_LOCKED\]\n$/);
    const c = await runCli(['compact', '--db', held]);
    t.is(c.code, 1);
    t.regex(c.stderr, /POST \/v1\/checkpoint.*\[DATABASE_LOCKED\]\n$/);
  } finally {
    await holder.release();
  }
});

test('compact prunes covered log and old snapshots, vacuums, keeps the state', async (t) => {
  const db = copyDb(base);
  const stateBefore = JSON.parse((await runCli(['inspect', '--db', db, '--json'])).stdout).machines;
  const r = await runCli(['compact', '--db', db, '--keep', '1']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^snapshots written: 2 \(machines already up to date: 0\)$/m);
  const m = /size before: .* \((\d+) bytes\), after: .* \((\d+) bytes\), saved /.exec(r.stdout);
  t.truthy(m, r.stdout);
  t.true(Number(m![2]) > 0);
  t.true(Number(m![2]) <= Number(m![1]));
  t.deepEqual(query(db, 'SELECT machine, seq FROM snapshots ORDER BY machine'), [
    { machine: 'kv1', seq: 14 },
    { machine: 'kv2', seq: 2 },
  ]);
  t.is(query<{ n: number }>(db, 'SELECT count(*) AS n FROM request_log')[0]!.n, 0);
  const stateAfter = JSON.parse((await runCli(['inspect', '--db', db, '--json'])).stdout).machines;
  t.deepEqual(
    stateAfter.map((x: { name: string; seq: number; state: unknown }) => [x.name, x.seq, x.state]),
    stateBefore.map((x: { name: string; seq: number; state: unknown }) => [x.name, x.seq, x.state]),
  );
  const v = await runCli(['verify', '--db', db]);
  t.is(v.code, 0, v.stdout);
  // History is gone now: --at says so clearly, naming retainLog.
  const at = await runCli(['inspect', '--db', db, 'kv1', '--at', '3']);
  t.is(at.code, 1);
  t.is(at.stderr.trim().split('\n').length, 1);
  t.regex(at.stderr, /state of kv1 as of seq 3 is not retained: .*earliest state that can be rebuilt is seq 14.*retainLog: true/);
});

test('verify passes on a good database, with a per-check table', async (t) => {
  const r = await runCli(['verify', '--db', base]);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /^CHECK +SUBJECT +RESULT +DETAIL$/m);
  t.regex(r.stdout, /^integrity +database +ok/m);
  t.regex(r.stdout, /^snapshots +kv1 +ok +2 ok \(seq 5, 10\)/m);
  t.regex(r.stdout, /^log +kv1 +ok +seq 1\.\.14 /m);
  t.regex(r.stdout, /^replay +kv1 +ok +snapshot @10 \+ 4 replayed -> seq 14/m);
  t.regex(r.stdout, /^replay +kv2 +ok /m);
  t.regex(r.stdout, /all \d+ checks passed/);
  t.notRegex(r.stdout, /FAILED/);
});

test('verify fails after bytes of a snapshot are flipped', async (t) => {
  const db = copyDb(base);
  const [snap] = query<{ id: number; state: Buffer }>(db, "SELECT id, state FROM snapshots WHERE machine = 'kv1' AND seq = 10");
  const bytes = Buffer.from(snap!.state);
  bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1);
  bytes.writeUInt8(bytes.readUInt8(2) ^ 0x55, 2);
  t.is(write(db, 'UPDATE snapshots SET state = ? WHERE id = ?', bytes, snap!.id), 1);
  const r = await runCli(['verify', '--db', db, '--json']);
  t.is(r.code, 1, r.stdout);
  const doc = JSON.parse(r.stdout);
  t.false(doc.ok);
  const snapCheck = doc.checks.find((c: { check: string; subject: string }) => c.check === 'snapshots' && c.subject === 'kv1');
  t.false(snapCheck.ok);
  t.regex(snapCheck.detail, /seq 10 .*checksum mismatch/);
  const replay = doc.checks.find((c: { check: string; subject: string }) => c.check === 'replay' && c.subject === 'kv1');
  t.false(replay.ok, 'recovery had to fall back to an older snapshot');
  t.regex(replay.detail, /falling back to snapshot @5/);
  // The text form says FAILED too.
  const text = await runCli(['verify', '--db', db]);
  t.is(text.code, 1);
  t.regex(text.stdout, /^snapshots +kv1 +FAILED /m);
  t.regex(text.stdout, /checks FAILED/);
});

test('verify fails after a log row is deleted', async (t) => {
  const db = copyDb(base);
  t.is(write(db, "DELETE FROM request_log WHERE machine = 'kv1' AND first_seq = 7"), 1);
  const r = await runCli(['verify', '--db', db]);
  t.is(r.code, 1, r.stdout);
  t.regex(r.stdout, /^log +kv1 +FAILED +gap: seq 7\.\.7 missing/m);
  // Deleting one after the newest snapshot breaks the replay too.
  t.is(write(db, "DELETE FROM request_log WHERE machine = 'kv1' AND first_seq = 12"), 1);
  const r2 = await runCli(['verify', '--db', db]);
  t.is(r2.code, 1);
  t.regex(r2.stdout, /^replay +kv1 +FAILED +recovery of kv1 failed at seq 12: the request log has a gap/m);
});

test('--module replays another application\'s machines', async (t) => {
  const db = join(tempDir(), 'counter.db');
  await buildDb(db, 'counter', 'abandon');
  const mod = 'test/fixtures/cli-counter-machines.ts';
  const r = await runCli(['inspect', '--db', db, '--module', mod, '--json']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout).machines[0].state, { n: '60', last: '2024-05-03T00:00:00.000Z' });
  const at = await runCli(['inspect', '--db', db, 'counter1', '--at', '2', '--module', mod]);
  t.is(at.code, 0, at.stderr);
  t.regex(at.stdout, /"n": "30"/);
  const v = await runCli(['verify', '--db', db, '--module', mod]);
  t.is(v.code, 0, v.stdout);
  // The KV definition cannot replay counter inputs: verify without --module checks the storage,
  // then says that the machines are another application's (exit 3), not that replay failed.
  const kv = await runCli(['verify', '--db', db]);
  t.is(kv.code, 3, kv.stdout + kv.stderr);
  t.notRegex(kv.stdout, /FAILED/);
  t.regex(kv.stderr, /^ssm verify: replay skipped: counter1: its logged requests are not KV store requests; .*pass --module PATH/);
  const c = await runCli(['checkpoint', '--db', db, '--module', mod]);
  t.is(c.code, 0, c.stderr);
  t.regex(c.stdout, /^counter1: snapshot at seq 3 /m);
  const bad = await runCli(['inspect', '--db', db, '--module', 'test/fixtures/does-not-exist.ts']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /^ssm inspect: cannot load --module test\/fixtures\/does-not-exist\.ts: .*\[CONFIG_ERROR\]\n$/);
});
