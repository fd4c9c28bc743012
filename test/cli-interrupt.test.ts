import test from 'ava';
import BetterSqlite3 from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { readdirSync, readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeBigKvDb } from './helpers/big-state.js';
import { ROOT, tempDir } from './helpers/cli.js';

// Issue 11.12: Ctrl-C during checkpoint/compact exited 130 silently and left the lock row.
function lockRows(db: string): number {
  const conn = new BetterSqlite3(db, { readonly: true, fileMustExist: true });
  try {
    return (conn.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'app_lock'").get() as { n: number }).n === 0 ? 0 : (conn.prepare('SELECT count(*) AS n FROM app_lock').get() as { n: number }).n;
  } finally {
    conn.close();
  }
}

for (const cmd of ['checkpoint', 'compact']) {
  test.serial(`Ctrl-C during ${cmd} holding the writer role: one line, lock released, exit 130`, async (t) => {
    const db = join(tempDir(), 'big.db');
    // Big enough that recovering it (decode + start) keeps the command busy after it takes the lock.
    writeBigKvDb(db, 400_000);
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', cmd, '--db', db], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    let sent = false;
    for (let i = 0; i < 2000 && child.exitCode === null; i++) {
      if (lockRows(db) > 0) {
        child.kill('SIGINT');
        sent = true;
        break;
      }
      await sleep(5);
    }
    t.true(sent, `the lock was never seen taken: ${stderr}`);
    t.deepEqual(await exited, { code: 130, signal: null }, stderr);
    t.is(stderr, `ssm ${cmd}: interrupted: the database is consistent; the lock is released\n`);
    t.is(lockRows(db), 0, 'no lock row left behind');
  });
}

test.serial('Ctrl-C during verify (read-only): nothing was changed, exit 130', async (t) => {
  const db = join(tempDir(), 'bigger.db');
  // verify takes no lock to watch for: it is interrupted once it has the database open (its
  // file among the child's descriptors), with a state big enough (replaying 1.5M keys takes
  // seconds) that it is still checking then. A fixed delay was not enough: on a quiet machine
  // verify had finished within it.
  writeBigKvDb(db, 1_500_000);
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'verify', '--db', db], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let ended = false;
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => ((ended = true), resolve(code))));
  const real = realpathSync(db);
  const hasOpen = (): boolean => {
    try {
      return readdirSync(`/proc/${child.pid}/fd`).some((fd) => {
        try {
          return readlinkSync(`/proc/${child.pid}/fd/${fd}`) === real;
        } catch {
          return false;
        }
      });
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 3000 && !ended && !hasOpen(); i++) await sleep(10);
  t.false(ended, `verify ended before it was interrupted: ${stderr}`);
  child.kill('SIGINT');
  const code = await exited;
  if (code === null) t.log('SIGINT arrived before the handler was installed (slow start-up): default death');
  else {
    t.is(code, 130, stderr);
    t.is(stderr, 'ssm verify: interrupted: nothing was changed\n');
  }
  t.pass();
});
