/**
 * Backup while serving and point-in-time restore (issue 14.3): `app.backup` and `ssm backup`
 * under write load keep every write acknowledged before they began, the copy verifies and opens
 * as it is (even while the original runs); `ssm restore` rewinds one machine to a seq.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { startApplication } from '../src/engine/application.js';
import { ApplicationStoppedError, StorageError } from '../src/errors.js';
import { runCli } from './helpers/cli.js';
import { killHard, spawnKvChild } from './helpers/persistence-child.js';
import { childValue, kvTree, tempDb } from './helpers/persistence-kv.js';

test('app.backup under write load: every write acknowledged before it began is in the copy, which verifies and opens while the original runs', async (t) => {
  const db = tempDb(t);
  const app = await startApplication(kvTree(), { db, logger: false, snapshot: { every: 2000 } });
  t.teardown(() => app.stop());
  let n = 0;
  let stop = false;
  const acked: string[] = [];
  const writer = async (): Promise<void> => {
    while (!stop) {
      const key = `k${n++}`;
      await app.call(key.length % 2 ? 'kv1' : 'kv2', { op: 'store', key, value: key });
      acked.push(key);
    }
  };
  const writers = Array.from({ length: 32 }, writer);
  while (acked.length < 5000) await new Promise((r) => setTimeout(r, 10));
  const before = [...acked];
  const dest = join(dirname(db), 'copy', 'backup.db');
  const report = await app.backup(dest);
  stop = true;
  await Promise.all(writers);
  t.is(report.path, dest);
  t.true(report.bytes > 0 && report.pages > 0);
  t.false(existsSync(`${dest}.partial`));
  await t.throwsAsync(app.backup(dest), { instanceOf: StorageError, message: /exists/ }, 'never overwrites');
  const copy = await startApplication(kvTree(), { db: dest, logger: false });
  for (const key of before) t.is(await copy.call(key.length % 2 ? 'kv1' : 'kv2', { op: 'lookup', key }), key, key);
  await copy.stop();
  const verify = await runCli(['verify', '--db', dest]);
  t.is(verify.code, 0, verify.stdout + verify.stderr);
  await app.stop();
  await t.throwsAsync(app.backup(join(dirname(db), 'late.db')), { instanceOf: ApplicationStoppedError });
});

test('ssm backup while another process writes: a consistent, verified copy holding every write acknowledged before it started', async (t) => {
  const db = tempDb(t);
  const writer = spawnKvChild(['load', db, 'full', '0', '32', '2000']);
  t.teardown(() => killHard(writer));
  await writer.waitFor((l) => l === 'ready');
  while (writer.lines.filter((l) => l.startsWith('ack ')).length < 3000) await new Promise((r) => setTimeout(r, 20));
  const before = writer.lines.filter((l) => l.startsWith('ack ')).map((l) => l.split(' ').slice(1) as [string, string]);
  const dest = join(dirname(db), 'cli-backup.db');
  const r = await runCli(['backup', '--db', db, dest]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^backed up .* to .*cli-backup\.db: .* verified in \d+ ms\n$/);
  t.true(writer.lines.filter((l) => l.startsWith('ack ')).length > before.length, 'the writer kept writing meanwhile');
  await killHard(writer);
  const verify = await runCli(['verify', '--db', dest]);
  t.is(verify.code, 0, verify.stdout + verify.stderr);
  const copy = await startApplication(kvTree(), { db: dest, logger: false });
  t.teardown(() => copy.stop());
  for (const [machine, key] of before) t.deepEqual(await copy.call(machine, { op: 'lookup', key }), childValue(key), `${machine} ${key}`);
  const again = await runCli(['backup', '--db', db, dest]);
  t.is(again.code, 1);
  t.regex(again.stderr, /exists: a backup never overwrites/);
});

test('ssm restore rewinds one machine to a seq in a copy (a log row cut across it), the others untouched; what cannot be rebuilt is refused and leaves no file', async (t) => {
  const db = tempDb(t);
  const app = await startApplication(kvTree(), { db, logger: false, snapshot: { every: 4, maxTimeShare: 1, retainLog: true } });
  // kv1: seq 1..10, in batches (so some log rows hold several requests); kv2: 3 writes.
  // The first three carry idempotency keys: one row of keys (seq 1..3) that the rewind cuts.
  await Promise.all([1, 2, 3].map((i) => app.call('kv1', { op: 'store', key: `a${i}`, value: i }, { idempotencyKey: `k${i}` })));
  for (let i = 4; i <= 10; i++) await app.call('kv1', { op: 'store', key: `a${i}`, value: i });
  for (let i = 1; i <= 3; i++) await app.call('kv2', { op: 'store', key: `b${i}`, value: i });
  await app.call('kv1', { op: 'delete', key: 'a1' }); // seq 11
  const dest = join(dirname(db), 'restored.db');
  const r = await runCli(['restore', db, dest, '--machine', 'kv1', '--at', '2']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /kv1 rewound from seq 11 to seq 2 \(9 request\(s\), \d+ snapshot\(s\)/);
  await app.stop();
  const copy = await startApplication(kvTree(), { db: dest, logger: false });
  t.is(await copy.call('kv1', { op: 'size' }), 2);
  t.is(await copy.call('kv1', { op: 'lookup', key: 'a1' }), 1, 'the delete at seq 11 is undone');
  t.is(await copy.call('kv2', { op: 'size' }), 3, 'other machines as they were');
  await copy.call('kv1', { op: 'store', key: 'a2', value: 2 }, { idempotencyKey: 'k2' });
  t.is(await copy.call('kv1', { op: 'size' }), 2, 'the key of seq 2 is kept: its retry is answered, not applied');
  await copy.call('kv1', { op: 'store', key: 'a3', value: 3 }, { idempotencyKey: 'k3' });
  t.is(await copy.call('kv1', { op: 'size' }), 3, 'the key of seq 3 went with its request: its retry is applied');
  await copy.stop();
  const verify = await runCli(['verify', '--db', dest]);
  t.is(verify.code, 0, verify.stdout + verify.stderr);
  const bad = join(dirname(db), 'bad.db');
  const future = await runCli(['restore', db, bad, '--machine', 'kv1', '--at', '99']);
  t.is(future.code, 1);
  t.regex(future.stderr, /ends at seq 11: cannot restore it to seq 99/);
  t.false(existsSync(bad), 'no copy left behind');
  const usage = await runCli(['restore', db, bad, '--at', '2']);
  t.is(usage.code, 2);
  // Without the retained log, seq 2 is behind the oldest snapshot (4) and the trimmed log.
  const pruned = tempDb(t);
  const p = await startApplication(kvTree(), { db: pruned, logger: false, snapshot: { every: 4, maxTimeShare: 1 } });
  for (let i = 1; i <= 10; i++) await p.call('kv1', { op: 'store', key: `a${i}`, value: i });
  await p.stop();
  const refused = await runCli(['restore', pruned, bad, '--machine', 'kv1', '--at', '2']);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /kv1 cannot be rebuilt as of seq 2: no snapshot at or before it and a log that starts at seq \d+/);
  t.false(existsSync(bad));
  t.is((await runCli(['restore', pruned, bad, '--machine', 'kv1', '--at', '9'])).code, 0, 'from the snapshot at 8 and the log after it');
});
