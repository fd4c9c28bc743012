/**
 * One writer per FILE, however it is named (issue 18.1). The lock row alone could not do it: a
 * second writer through a hard link has its own WAL, never sees the row, and both acknowledged
 * writes, one's lost. Here a real writer process is loaded while other processes try the same
 * file through a hard link, a symlink and a relative path; after SIGKILL of the writer the file
 * opens through the hard link with every acknowledged write (its WAL was under the other name).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import test from 'ava';
import { startApplication } from '../src/engine/application.js';
import { DatabaseLockedError } from '../src/errors.js';
import { lockDirectory } from '../src/storage/file-lock.js';
import { ROOT } from './helpers/faults-spawn.js';
import { killHard, spawnKvChild } from './helpers/persistence-child.js';
import { childValue, kvTree, tempDb } from './helpers/persistence-kv.js';

async function tryOpen(path: string): Promise<string> {
  const other = spawnKvChild(['try-open', path]);
  const line = await other.waitFor((l) => l.startsWith('ok') || l.startsWith('error'));
  await other.closed;
  return line;
}

test('a second process through a hard link, a symlink or a relative path is refused; after SIGKILL the file opens with every write', async (t) => {
  const db = tempDb(t);
  const writer = spawnKvChild(['load', db, 'full', '0', '8', '1000000']);
  t.teardown(() => killHard(writer));
  await writer.waitFor((l) => l === 'ready');
  await writer.waitFor((l) => l.startsWith('ack '));
  const hard = join(dirname(db), 'hard.db');
  const soft = join(dirname(db), 'soft.db');
  linkSync(db, hard);
  symlinkSync(db, soft);
  t.is(await tryOpen(hard), 'error DATABASE_LOCKED', 'hard link');
  t.is(await tryOpen(soft), 'error DATABASE_LOCKED', 'symlink');
  t.is(await tryOpen(relative(ROOT, db)), 'error DATABASE_LOCKED', 'relative path');
  t.false(existsSync(`${hard}-wal`), 'the refused opener through the hard link created no WAL of its own');
  // In this process too, with a message naming both names of the file.
  const err = await t.throwsAsync(startApplication(kvTree(), { db: hard, logger: false }), { instanceOf: DatabaseLockedError });
  t.regex(err?.message ?? '', new RegExp(`pid ${writer.proc.pid}\\b`));
  t.true(err?.message.includes(hard) && err.message.includes(db), err?.message);

  await killHard(writer);
  const acked = writer.lines.filter((l) => l.startsWith('ack ')).map((l) => l.split(' ').slice(1) as [string, string]);
  t.true(acked.length > 0);
  t.true(statSync(`${db}-wal`).size > 0, 'the killed writer left committed writes in its WAL, under the first name');
  // Through the hard link: the dead writer's WAL (app.db-wal) must be applied, not ignored.
  const app = await startApplication(kvTree(), { db: hard, logger: false });
  for (const [machine, key] of acked) t.deepEqual(await app.call(machine, { op: 'lookup', key }), childValue(key), `${machine} ${key}`);
  await app.call('kv1', { op: 'store', key: 'through-hard-link', value: 1 });
  await app.stop();
  // And back through the first name: nothing of either writer lost.
  const again = await startApplication(kvTree(), { db, logger: false });
  for (const [machine, key] of acked) t.deepEqual(await again.call(machine, { op: 'lookup', key }), childValue(key), `${machine} ${key}`);
  t.is(await again.call('kv1', { op: 'lookup', key: 'through-hard-link' }), 1);
  await again.stop();
});

test('the lock file is released on stop, and a dead holder\'s lock file is taken over', async (t) => {
  const db = tempDb(t);
  const app = await startApplication(kvTree(), { db, logger: false });
  const ino = statSync(db).ino;
  const mine = () => (existsSync(lockDirectory()) ? readdirSync(lockDirectory()) : []).filter((f) => f.endsWith(`-${ino}.lock`));
  t.is(mine().length, 1, 'a lock file named by the file identity while open');
  await app.stop();
  t.is(mine().length, 0, 'removed on stop');
  const holder = spawnKvChild(['hold', db]);
  t.teardown(() => killHard(holder));
  await holder.waitFor((l) => l === 'ready');
  t.is(await tryOpen(db), 'error DATABASE_LOCKED');
  await killHard(holder);
  t.is(await tryOpen(db), 'ok');
});

test('a refused adoption of a dead writer’s WAL under another name is refused again, not forgotten; relinking the name recovers the write', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ssm-alias-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const env = { ...process.env, SSM_LOCK_DIR: join(dir, 'locks') };
  const run = (db: string, mode: string): string => spawnSync(process.execPath, ['--import', 'tsx', 'test/fixtures/alias-writer.ts', db, mode], { cwd: ROOT, env, encoding: 'utf8' }).stdout.trim();
  const main = join(dir, 'main.db');
  const alias = join(dir, 'alias.db');
  t.is(run(main, 'read'), 'acked=null');
  linkSync(main, alias);
  run(alias, 'write'); // acknowledged, then SIGKILL: the write is in alias.db-wal
  unlinkSync(alias);
  t.is(run(main, 'read'), 'refused StorageError');
  t.is(run(main, 'read'), 'refused StorageError', 'the second open must not start without the write');
  linkSync(main, alias);
  t.is(run(alias, 'read'), 'acked=42');
  t.is(run(main, 'read'), 'acked=42');
});
