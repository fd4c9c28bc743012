import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Database } from 'better-sqlite3';
import { DatabaseLockedError } from '../errors.js';

/**
 * One writer per database. The holder is recorded in `app_lock` with its pid and process start
 * time; a holder that no longer exists (killed with SIGKILL, say) is taken over, a live one is
 * refused. SQLite's own locks cannot do this: they are per transaction, and an exclusive
 * locking mode would also shut out the read-only tools (sqlite3 CLI, `ssm inspect`).
 */

/**
 * `pid:starttime` from /proc where available, so a reused pid is not mistaken for the holder; null
 * for a process that is gone. A zombie is gone: it holds no file and writes nothing, but kill(pid, 0)
 * still succeeds on it, and a writer SIGKILLed after its parent exited stays a zombie forever where
 * PID 1 does not reap orphans (many containers and VM inits), which would lock its database for good.
 */
export function processIdentity(pid: number): string | null {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return null;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return null;
    return `${pid}:${fields[19] ?? '?'}`;
  } catch {
    return `${pid}:?`;
  }
}

/** Paths held by applications in this very process (the table cannot tell them apart). */
const heldHere = new Set<string>();

interface LockRow {
  pid: number;
  host: string;
  identity: string;
  acquired_at: string;
}

/**
 * Whether the process a lock names may still hold it. Shared by the lock row and the lock file
 * (file-lock.ts) so both judge a holder the same way.
 */
export function holderMayBeAlive(holder: { pid: number; host: string; identity: string }): boolean {
  // A holder on another host cannot be checked from here: refuse rather than guess.
  if (holder.host !== hostname()) return true;
  const now = processIdentity(holder.pid);
  if (now === null) return false;
  // Alive, and either the same process or one whose start time cannot be read (hidepid): alive.
  return now === holder.identity || now.endsWith(':?');
}

function holderIfAlive(db: Database, me: string): LockRow | null {
  const row = db.prepare('SELECT pid, host, identity, acquired_at FROM app_lock WHERE id = 1').get() as LockRow | undefined;
  if (!row || row.identity === me) return null;
  return holderMayBeAlive(row) ? row : null;
}

function tableExists(db: Database): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'app_lock'").get() !== undefined;
}

/** Throws DatabaseLockedError if a live application holds the database (checks only). */
export function assertUnlocked(db: Database, key: string): void {
  if (heldHere.has(key)) throw new DatabaseLockedError(key, `another application in this process (pid ${process.pid})`);
  if (!tableExists(db)) return;
  const holder = holderIfAlive(db, processIdentity(process.pid) ?? `${process.pid}:?`);
  if (holder) throw new DatabaseLockedError(key, `pid ${holder.pid} on ${holder.host} since ${holder.acquired_at}`);
}

/** Takes the writer role (in one immediate transaction with the check), or throws DatabaseLockedError. */
export function acquireLock(db: Database, key: string): void {
  if (heldHere.has(key)) throw new DatabaseLockedError(key, `another application in this process (pid ${process.pid})`);
  const me = processIdentity(process.pid) ?? `${process.pid}:?`;
  db.transaction(() => {
    const holder = holderIfAlive(db, me);
    if (holder) throw new DatabaseLockedError(key, `pid ${holder.pid} on ${holder.host} since ${holder.acquired_at}`);
    db.prepare('INSERT OR REPLACE INTO app_lock (id, pid, host, identity, acquired_at) VALUES (1, ?, ?, ?, ?)').run(process.pid, hostname(), me, new Date().toISOString());
  }).immediate();
  heldHere.add(key);
}

export function releaseLock(db: Database, key: string): void {
  heldHere.delete(key);
  try {
    db.prepare('DELETE FROM app_lock WHERE id = 1 AND pid = ?').run(process.pid);
  } catch {
    // Best effort: a stale row is taken over by the next opener once this process is gone.
  }
}
