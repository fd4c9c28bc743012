import { realpathSync, statSync } from 'node:fs';
import BetterSqlite3 from 'better-sqlite3';
import { StorageError } from '../errors.js';
import type { FileLockHolder } from './file-lock.js';

/**
 * SQLite names the WAL after the path it opened. A writer that died while using another name of
 * this file (a hard link) left its committed writes in `<that name>-wal`, which SQLite will never
 * read through our name, and which would be replayed over our later writes if that name were
 * opened again. So before opening, the successor folds that WAL into the file through the old
 * name (a checkpoint, which also removes it), and refuses if it cannot.
 */
export function adoptPreviousWal(previous: FileLockHolder | null, path: string): void {
  if (!previous) return;
  const ours = realpathSync(path);
  if (previous.path === ours) return; // the same name: SQLite replays that WAL itself
  const wal = `${previous.path}-wal`;
  let size: number;
  try {
    size = statSync(wal).size;
  } catch {
    return;
  }
  if (size === 0) return;
  const mine = statSync(ours);
  let theirs: { dev: number; ino: number } | null = null;
  try {
    theirs = statSync(previous.path);
  } catch {
    // gone: handled below
  }
  if (!theirs || theirs.dev !== mine.dev || theirs.ino !== mine.ino) {
    throw new StorageError(`database ${ours}: its previous writer (pid ${previous.pid}, now gone) opened it as ${previous.path} and left ${size} bytes of committed writes in ${wal}, but ${previous.path} is no longer this file, so they cannot be applied safely. Make ${previous.path} a name of this file again (ln) and open the database through it once`);
  }
  const db = new BetterSqlite3(previous.path);
  try {
    const [result] = db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number; checkpointed: number }[];
    if (!result || result.busy !== 0 || result.log !== result.checkpointed) {
      throw new StorageError(`database ${ours}: could not apply ${wal} (left by pid ${previous.pid}, which opened it as ${previous.path}): a reader holds it; close it and retry`);
    }
  } finally {
    db.close();
  }
}
