import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { Database as Connection } from 'better-sqlite3';
import { StorageError, describe } from '../errors.js';
import { checkInBackground, type IntegrityStatus } from './background-check.js';
import type { BackupOptions, BackupReport } from './reports.js';

/**
 * Pages copied per step when the source connection is the writer: writes it makes between steps
 * reach the copy directly, and each step holds the event loop a few ms at most.
 */
const PAGES_PER_STEP = 1024;

/**
 * Copies a live database to `dest` with SQLite's online backup API, then verifies the copy
 * (`PRAGMA integrity_check`-grade quick_check plus every snapshot and log checksum, in a worker
 * thread) before it appears under its name: a file at `dest` is always a complete, verified
 * backup. The copy's single-writer claim is cleared, so it opens as it is (restoring is opening
 * it). Never overwrites. `sameConnectionWrites`: the source is the application's writer, so the
 * copy proceeds in small steps; from any other connection it is one step (another connection's
 * writes would restart a stepped backup, forever under load), over one consistent WAL snapshot.
 * Throws StorageError.
 */
export async function backupDatabase(source: Connection, sourcePath: string, dest: string, sameConnectionWrites: boolean, options: BackupOptions = {}): Promise<BackupReport> {
  const target = resolve(dest);
  if (existsSync(target)) throw new StorageError(`backup destination ${target} exists: a backup never overwrites a file`);
  if (sourcePath === ':memory:') throw new StorageError('an in-memory database has no file to back up');
  mkdirSync(dirname(target), { recursive: true });
  const partial = `${target}.partial`;
  for (const f of [partial, `${partial}-wal`, `${partial}-shm`]) rmSync(f, { force: true });
  const t0 = performance.now();
  let pages = 0;
  try {
    await source.backup(partial, {
      progress: ({ totalPages, remainingPages }) => {
        pages = totalPages;
        options.onProgress?.(totalPages - remainingPages, totalPages);
        return sameConnectionWrites ? PAGES_PER_STEP : 0x7fffffff;
      },
    });
    // The copy carries the source's writer claim (this very process, maybe): clear it, and leave
    // the file self-contained (no -wal beside it).
    const copy = new Database(partial, { fileMustExist: true });
    try {
      if (copy.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'app_lock'").get()) copy.prepare('DELETE FROM app_lock').run();
      copy.pragma('wal_checkpoint(TRUNCATE)');
      pages = copy.pragma('page_count', { simple: true }) as number;
    } finally {
      copy.close();
    }
  } catch (err) {
    for (const f of [partial, `${partial}-wal`, `${partial}-shm`]) rmSync(f, { force: true });
    throw err instanceof StorageError ? err : new StorageError(`backup to ${target} failed: ${describe(err)}`, { cause: err });
  }
  const copyMs = performance.now() - t0;
  const verified = await new Promise<IntegrityStatus>((done) => checkInBackground(partial, done, { checksums: true }));
  if (verified.state !== 'ok') {
    for (const f of [partial, `${partial}-wal`, `${partial}-shm`]) rmSync(f, { force: true });
    const why = verified.state === 'failed' ? verified.problems.map((p) => `${p.table ?? 'file'}: ${p.problems.slice(0, 3).join('; ')}`).join(' | ') : verified.state === 'not-checked' ? verified.reason : 'unfinished';
    throw new StorageError(`backup to ${target} did not verify, and was removed: ${why}`);
  }
  renameSync(partial, target);
  // The rename is durable once the folder is.
  const dir = openSync(dirname(target), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
  return { path: target, bytes: statSync(target).size, pages, copyMs, verifyMs: verified.ms };
}
