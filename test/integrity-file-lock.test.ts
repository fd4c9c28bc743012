/**
 * One writer per FILE, however it is named (issue 18.1). The lock row alone could not do it: a
 * second writer through a hard link has its own WAL, never sees the row, and both acknowledged
 * writes, one's lost. Here a real writer process is loaded while other processes try the same
 * file through a hard link, a symlink and a relative path; after SIGKILL of the writer the file
 * opens through the hard link with every acknowledged write (its WAL was under the other name).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import test from 'ava';
import { startApplication } from '../src/engine/application.js';
import { DatabaseLockedError } from '../src/errors.js';
import { processIdentity } from '../src/storage/db-lock.js';
import { lockDirectory } from '../src/storage/file-lock.js';
import { eachLine } from './helpers/lines.js';
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

test('a writer SIGKILLed as an orphan nobody reaps (a zombie) does not lock its database for good', async (t) => {
  // Where PID 1 does not reap orphans (this CI's VM init, many containers), a killed server whose
  // parent shell had exited stays a zombie: kill(pid, 0) succeeds on it, yet it holds nothing.
  // Here the parent exec's `sleep`, which never waits for children, so the zombie is certain.
  const db = tempDb(t);
  const fixture = join(ROOT, 'test/fixtures/kv-child.ts');
  const parent = spawn('sh', ['-c', `"${process.execPath}" --import tsx "${fixture}" hold "${db}" & echo pid $!; exec sleep 120`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => void parent.kill('SIGKILL'));
  let holderPid = 0;
  await new Promise<void>((resolve) =>
    eachLine(parent.stdout!, (line) => {
      if (line.startsWith('pid ')) holderPid = Number(line.slice(4));
      if (line === 'ready') resolve();
    }),
  );
  t.is(await tryOpen(db), 'error DATABASE_LOCKED', 'the live holder is respected');
  process.kill(holderPid, 'SIGKILL');
  for (let i = 0; i < 100 && !/\) Z /.test(readFileSync(`/proc/${holderPid}/stat`, 'utf8')); i++) await new Promise((r) => setTimeout(r, 20));
  t.regex(readFileSync(`/proc/${holderPid}/stat`, 'utf8'), /\) Z /, 'the killed holder is a zombie, unreaped');
  t.is(processIdentity(holderPid), null, 'a zombie counts as gone');
  t.is(await tryOpen(db), 'ok');
});

test('a lock file left for a deleted database does not lock a new file that got its inode number', async (t) => {
  const db = tempDb(t);
  const first = await startApplication(kvTree(), { db, logger: false });
  await first.stop();
  const st = statSync(db, { bigint: true });
  const lockFile = join(lockDirectory(), `${st.dev}-${st.ino}.lock`);
  // A live holder (this very process, as another test file in this process would be) of a file
  // that had this inode before, under a name that no longer exists, with a WAL that is not ours.
  const record = (born: string) => JSON.stringify({ pid: process.pid, host: hostname(), identity: processIdentity(process.pid), path: join(dirname(db), 'deleted-long-ago.db'), acquiredAt: new Date().toISOString(), born });
  t.teardown(() => rmSync(lockFile, { force: true }));
  if (st.birthtimeNs === 0n) {
    t.log('this filesystem records no birth time: such a lock file is refused (safe, not available)');
    writeFileSync(lockFile, record('1'));
    await t.throwsAsync(startApplication(kvTree(), { db, logger: false }), { instanceOf: DatabaseLockedError });
    return;
  }
  writeFileSync(lockFile, record(String(st.birthtimeNs)));
  await t.throwsAsync(startApplication(kvTree(), { db, logger: false }), { instanceOf: DatabaseLockedError }, 'the same file (same birth time) held by a live process is refused');
  writeFileSync(lockFile, record(String(st.birthtimeNs - 1n)));
  const app = await startApplication(kvTree(), { db, logger: false });
  t.is(JSON.parse(readFileSync(lockFile, 'utf8')).born, String(st.birthtimeNs), 'the lock file now names this file');
  await app.call('kv1', { op: 'store', key: 'k', value: 1 });
  await app.stop();
  t.false(existsSync(lockFile), 'released on stop');
});
