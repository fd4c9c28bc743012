import { chmodSync, linkSync, mkdirSync, readFileSync, realpathSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DatabaseLockedError } from '../errors.js';
import { holderMayBeAlive, processIdentity } from './db-lock.js';

/**
 * One writer per database FILE, however it is named. The lock row (db-lock.ts) lives inside the
 * database, and SQLite names the WAL after the path it was given: a second writer through a hard
 * link reads `hard.db-wal`, never sees the first writer's row (still in `ssm.db-wal`), and both
 * acknowledge writes. So the writer also holds a lock file named by the file's identity
 * (st_dev + st_ino), which every name of the file shares. Node has no flock/fcntl; a file created
 * atomically (link(2) fails if the name exists) holding pid, host and process start time does the
 * same job, and a holder that died is recognised the same way as for the row.
 *
 * Covered: every name of the file on this host (hard links, symlinks, relative paths, bind
 * mounts). Not covered: writers on different machines or containers with their own /tmp sharing a
 * network filesystem; they cannot see each other's lock files.
 */

/**
 * What a lock file holds. `path` is the holder's name for the file with symlinks resolved (as
 * SQLite resolves them when it names the WAL), so a successor can find that WAL.
 */
export interface FileLockHolder {
  readonly pid: number;
  readonly host: string;
  readonly identity: string;
  readonly path: string;
  readonly acquiredAt: string;
  /**
   * The file's birth time (ns, as a decimal string) where the filesystem records one. An inode
   * number is reused once its file is deleted: a lock file left by a live process for a database it
   * deleted (a test's temp folder, say) would otherwise lock an unrelated new file with that inode.
   */
  readonly born?: string;
}

/** A held lock file. */
export interface FileLock {
  /** The lock file's path. */
  readonly file: string;
  /** The previous holder, if it had died and this lock took over from it (null otherwise). */
  readonly tookOverFrom: FileLockHolder | null;
  /** Removes the lock file if it is still this process's. Idempotent. */
  release(): void;
  /**
   * Releases the lock by writing back the record of the dead holder it was taken over from (if
   * any), so that the next opener meets the same duty (its WAL under another name) instead of
   * finding no trace of it. Used when opening fails before that duty was done.
   */
  giveBack(): void;
}

/**
 * The machine-wide folder of lock files. Not `os.tmpdir()` on POSIX: that follows `$TMPDIR`, which
 * differs between users and shells, and two writers with different folders would not see each other.
 * `SSM_LOCK_DIR` overrides it (for a service whose /tmp is private, point both at one folder).
 */
export function lockDirectory(): string {
  return process.env['SSM_LOCK_DIR'] ?? (process.platform === 'win32' ? join(tmpdir(), 'ssm-locks') : '/tmp/ssm-locks');
}

/** Lock files held by applications in this process: the identity in the file cannot tell them apart. */
const heldHere = new Map<string, string>();

function readHolder(file: string): FileLockHolder | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as FileLockHolder;
  } catch {
    return null;
  }
}

function describeHolder(h: FileLockHolder, lockFile: string): string {
  return `pid ${h.pid} on ${h.host} since ${h.acquiredAt}, which opened it as ${h.path} (lock file ${lockFile})`;
}

/** Creates `file` with `content` atomically: visible complete, or not at all (EEXIST). */
function createExclusive(file: string, content: string): boolean {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(tmp, content, { mode: 0o644 });
  try {
    linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    unlinkSync(tmp);
  }
}

function ensureDirectory(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o1777 });
    // Every user's writers share it (like /tmp itself): the mode is not left to the umask.
    chmodSync(dir, 0o1777);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

const sleep = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Removes a dead holder's lock file. Two openers may both find it dead; a second, short-lived
 * lock (`.takeover`) makes sure only one of them removes it, so neither can remove the lock the
 * other has just created in its place.
 */
function removeIfStale(file: string, seen: FileLockHolder | null, me: string): boolean {
  const guard = `${file}.takeover`;
  if (!createExclusive(guard, me)) {
    // A guard older than a few seconds belongs to an opener that died mid-takeover.
    try {
      if (Date.now() - statSync(guard).mtimeMs > 5000) unlinkSync(guard);
    } catch {
      // Gone meanwhile: the other opener finished.
    }
    return false;
  }
  try {
    const now = readHolder(file);
    if (JSON.stringify(now) !== JSON.stringify(seen)) return false; // replaced meanwhile: look again
    try {
      unlinkSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return true;
  } finally {
    unlinkSync(guard);
  }
}

/**
 * Takes the lock file of the database at `path` (which must exist), or throws DatabaseLockedError
 * naming the holder, the path it used and this one. A dead holder's lock is taken over.
 */
export function lockDatabaseFile(path: string): FileLock {
  const absolute = resolve(path);
  const { dev, ino, birthtimeNs } = statSync(absolute, { bigint: true });
  const born = birthtimeNs > 0n ? String(birthtimeNs) : undefined;
  const real = realpathSync(absolute);
  const dir = lockDirectory();
  ensureDirectory(dir);
  const file = join(dir, `${dev}-${ino}.lock`);
  const here = heldHere.get(file);
  if (here !== undefined) throw new DatabaseLockedError(absolute, `another application in this process (pid ${process.pid}), which opened it as ${here}`);
  const identity = processIdentity(process.pid) ?? `${process.pid}:?`;
  const mine: FileLockHolder = { pid: process.pid, host: hostname(), identity, path: real, acquiredAt: new Date().toISOString(), ...(born && { born }) };
  const content = JSON.stringify(mine);
  let tookOverFrom: FileLockHolder | null = null;
  for (let attempt = 0; ; attempt++) {
    if (createExclusive(file, content)) break;
    const holder = readHolder(file);
    // A record of another file that had this inode before: its holder, dead or alive, has nothing
    // here, and its WAL is not this database's to adopt.
    const otherFile = holder !== null && born !== undefined && holder.born !== undefined && holder.born !== born;
    // An unreadable lock file is one being written this instant (it is created complete) or garbage: retry, then treat as stale.
    const alive = otherFile ? false : holder ? holderMayBeAlive(holder) : attempt < 3;
    if (alive) {
      if (holder) throw new DatabaseLockedError(absolute, describeHolder(holder, file));
    } else if (removeIfStale(file, holder, content)) {
      tookOverFrom = otherFile ? null : holder;
      continue;
    }
    if (attempt >= 20) throw new DatabaseLockedError(absolute, `another opener (lock file ${file})`);
    sleep(10);
  }
  heldHere.set(file, real);
  let released = false;
  return {
    file,
    tookOverFrom,
    release(): void {
      if (released) return;
      released = true;
      heldHere.delete(file);
      try {
        if (readHolder(file)?.identity === identity && readHolder(file)?.acquiredAt === mine.acquiredAt) unlinkSync(file);
      } catch {
        // Best effort: a lock file left behind names a dead process and is taken over.
      }
    },
    giveBack(): void {
      if (!tookOverFrom || released) return this.release();
      released = true;
      heldHere.delete(file);
      try {
        if (readHolder(file)?.identity === identity) writeFileSync(file, JSON.stringify(tookOverFrom));
      } catch {
        // Best effort, as release().
      }
    },
  };
}
