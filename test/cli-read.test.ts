import test from 'ava';
import { join } from 'node:path';
import { buildDb, holdDb, runCli, tempDir } from './helpers/cli.js';

// One database for the read-only commands, built by a real application that was abandoned
// mid-flight (kv1: snapshots at seq 5 and 10, log 1..14 retained; kv2: x, a crash, y).
let db: string;
test.before(async () => {
  db = join(tempDir(), 'read.db');
  await buildDb(db, 'kv', 'abandon');
});

test('inspect prints every machine state as key => value lines', async (t) => {
  const r = await runCli(['inspect', '--db', db]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr, '', 'no progress bar into a pipe');
  t.regex(r.stdout, /^kv1 {2}seq 14 /m);
  t.regex(r.stdout, /snapshot @10 \+ 4 replayed/);
  t.regex(r.stdout, /^ {2}k1 => 1$/m);
  t.regex(r.stdout, /^ {2}k11 => 11$/m);
  t.notRegex(r.stdout, /^ {2}k0 =>/m, 'k0 was deleted at seq 13');
  t.regex(r.stdout, /^kv2 {2}seq 2 /m);
  t.regex(r.stdout, /^ {2}y => "two words"$/m);
});

test('inspect --json converts Maps, Dates, bigint and bytes', async (t) => {
  const r = await runCli(['inspect', '--db', db, 'kv1', '--json']);
  t.is(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  t.is(doc.machines.length, 1);
  const m = doc.machines[0];
  t.is(m.name, 'kv1');
  t.is(m.seq, 14);
  t.is(m.state.k5, 5);
  t.false('k0' in m.state);
  t.deepEqual(m.state.rich, { when: '2024-01-02T03:04:05.000Z', big: '12345678901234567890', bytes: 'AQID', tags: { a: 1 } });
});

test('inspect --at rebuilds the state as of a sequence number', async (t) => {
  const at3 = JSON.parse((await runCli(['inspect', '--db', db, 'kv1', '--at', '3', '--json'])).stdout);
  t.is(at3.at, 3);
  t.deepEqual(at3.machines[0].state, { k0: 0, k1: 1, k2: 2 });
  t.is(at3.machines[0].seq, 3);
  // Between snapshots: from the snapshot at 10 plus replay, before the delete at 13.
  const at12 = await runCli(['inspect', '--db', db, 'kv1', '--at', '12']);
  t.is(at12.code, 0, at12.stderr);
  t.regex(at12.stdout, /as of seq 12 \(latest 14\)/);
  t.regex(at12.stdout, /^ {2}k0 => 0$/m);
  t.notRegex(at12.stdout, /rich/);
  const now = JSON.parse((await runCli(['inspect', '--db', db, 'kv1', '--json'])).stdout);
  t.notDeepEqual(now.machines[0].state, at3.machines[0].state);
});

test('inspect --at beyond the last seq, or without MACHINE, fails with one line', async (t) => {
  const future = await runCli(['inspect', '--db', db, 'kv1', '--at', '99']);
  t.is(future.code, 1);
  t.regex(future.stderr, /^ssm inspect: kv1 has only reached seq 14; --at 99 is in its future \[NOT_RETAINED\]\n$/);
  const noMachine = await runCli(['inspect', '--db', db, '--at', '3']);
  t.is(noMachine.code, 2);
  t.is(noMachine.stderr.trim().split('\n').length, 1);
  t.regex(noMachine.stderr, /--at needs a MACHINE/);
});

test('inspect of an unknown machine names the known ones', async (t) => {
  const r = await runCli(['inspect', '--db', db, 'nope']);
  t.is(r.code, 1);
  t.regex(r.stderr, /unknown machine: "nope".*\(machines: kv1, kv2\) \[UNKNOWN_MACHINE\]/);
});

test('log prints decoded requests with seq and time; --since and --limit select', async (t) => {
  const all = await runCli(['log', 'kv1', '--db', db]);
  t.is(all.code, 0, all.stderr);
  const lines = all.stdout.trimEnd().split('\n');
  t.is(lines.length, 14);
  t.regex(lines[0]!, /^ +1 {2}\d{4}-\d\d-\d\dT[\d:.]+Z {2}\{"op":"store","key":"k0","value":0\}$/);
  // The time stamped at the door (a delete is judged at it: expiry) is logged with the request.
  t.regex(lines[12]!, /^ +13 .*\{"op":"delete","key":"k0","now":\d+\}$/);

  const some = await runCli(['log', 'kv1', '--db', db, '--since', '10', '--limit', '2', '--json']);
  t.is(some.code, 0, some.stderr);
  const rows = some.stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.deepEqual(
    rows.map((r) => r.seq),
    [11, 12],
  );
  t.deepEqual(rows[0].input, { op: 'store', key: 'k10', value: 10 });
  t.regex(rows[0].loggedAt, /^\d{4}-\d\d-\d\dT/);
});

test('log never shows read-only requests or the crashing one', async (t) => {
  const r = await runCli(['log', 'kv2', '--db', db, '--json']);
  const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.deepEqual(
    rows.map((x) => [x.seq, x.input.key]),
    [
      [1, 'x'],
      [2, 'y'],
    ],
  );
});

test('log without MACHINE is a usage error', async (t) => {
  const r = await runCli(['log', '--db', db]);
  t.is(r.code, 2);
  t.regex(r.stderr, /^ssm log: missing MACHINE .*\[CONFIG_ERROR\]\n$/);
});

test('failed lists the crash with its error and decoded input', async (t) => {
  const r = await runCli(['failed', '--db', db]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^#\d+ {2}kv2 {2}\d{4}-.*Z {2}after seq 1$/m);
  t.regex(r.stdout, /^ {4}Error: divide by zero$/m);
  t.regex(r.stdout, /^ {4}input: \{"op":"lookup","key":"crash","now":\d+\}$/m);

  const json = await runCli(['failed', 'kv2', '--db', db, '--json', '--limit', '5']);
  const rows = json.stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.is(rows.length, 1);
  t.is(rows[0].error.message, 'divide by zero');
  t.like(rows[0].input, { op: 'lookup', key: 'crash' });
  t.is(typeof (rows[0].input as { now?: unknown }).now, 'number', 'with the time stamped at the door');

  const none = await runCli(['failed', 'kv1', '--db', db, '--json']);
  t.is(none.code, 0);
  t.is(none.stdout, '');
});

test('inspect, log and verify work while an application holds the database', async (t) => {
  const held = join(tempDir(), 'held.db');
  const holder = await holdDb(held);
  try {
    const r = await runCli(['inspect', '--db', held, 'kv1', '--json']);
    t.is(r.code, 0, r.stderr);
    t.is(JSON.parse(r.stdout).machines[0].seq, 14);
    const log = await runCli(['log', 'kv2', '--db', held]);
    t.is(log.code, 0, log.stderr);
    t.is(log.stdout.trim().split('\n').length, 2);
    const v = await runCli(['verify', '--db', held]);
    t.is(v.code, 0, v.stdout + v.stderr);
  } finally {
    const end = await holder.release();
    t.is(end.code, 0, end.stderr);
  }
});

test('unknown flags and extra arguments: one line, usage exit code', async (t) => {
  for (const args of [['inspect', '--bogus'], ['log', 'kv1', '--nope'], ['failed', '--limit'], ['verify', 'extra'], ['checkpoint', '--frobnicate'], ['compact', '--keep', 'x']]) {
    const r = await runCli([...args, '--db', db]);
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    t.is(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, new RegExp(`^ssm ${args[0]}: .*\\[CONFIG_ERROR\\]\\n$`));
    t.is(r.stdout, '');
  }
});

test('--help on every command', async (t) => {
  for (const cmd of ['inspect', 'log', 'failed', 'checkpoint', 'compact', 'verify']) {
    const r = await runCli([cmd, '--help']);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, new RegExp(`^Usage: ssm ${cmd} `));
  }
  const top = await runCli(['--help']);
  for (const cmd of ['inspect', 'log', 'failed', 'checkpoint', 'compact', 'verify']) t.regex(top.stdout, new RegExp(`^  ${cmd} +\\S`, 'm'));
});

test('a missing database is one clear line', async (t) => {
  const r = await runCli(['inspect', '--db', join(tempDir(), 'absent.db')]);
  t.is(r.code, 1);
  t.regex(r.stderr, /^ssm inspect: .*no database at .*absent\.db.*\n$/);
});
