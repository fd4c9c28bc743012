import { existsSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Database } from 'better-sqlite3';
import { StorageError } from '../errors.js';
import { adoptPreviousWal } from './alias-wal.js';
import { acquireLock, assertUnlocked, releaseLock } from './db-lock.js';
import { lockDatabaseFile, type FileLock } from './file-lock.js';
import { migrate } from './migrations.js';
import { asStorageError, configureWriter, openDatabaseFile, prepareWriterFile } from './sqlite.js';
import { resolveStoreOptions, type StoreFaults, type StoreOptions } from './store-options.js';

/** What a writer holds once it has opened its database: the connection and both locks. */
export interface WriterParts {
  readonly db: Database;
  /** The real path the lock row is keyed by (null: in memory). */
  readonly lockKey: string | null;
  readonly fileLock: FileLock | null;
  readonly faults: StoreFaults;
}

/**
 * Takes the writer role on `path`: the file lock, a dead holder's WAL under another name, the
 * connection, the schema and the lock row, in that order; `build` makes the writer of them. On
 * any failure everything taken is given back, except a dead holder's record whose WAL is not
 * applied yet.
 */
export function openWriter<T>(path: string, options: StoreOptions, build: (parts: WriterParts) => T): T {
  const { durability, faults, create } = resolveStoreOptions(options);
  // The file lock comes first, before SQLite opens the file: it is what keeps out a writer
  // using another name of the file, whose WAL this connection would never see.
  let fileLock: FileLock | null = null;
  if (path !== ':memory:') {
    if (!create && !existsSync(path)) throw new StorageError(`no database at ${resolve(path)}, and create is false: nothing was created`);
    prepareWriterFile(path);
    fileLock = lockDatabaseFile(path);
  }
  let db: Database | null = null;
  const key = path === ':memory:' ? null : realpathSync(path);
  let locked = false;
  let adopted = false;
  try {
    adoptPreviousWal(fileLock?.tookOverFrom ?? null, path);
    adopted = true;
    db = openDatabaseFile(path, 'write');
    configureWriter(db, path, durability);
    // Refuse a live holder before touching the schema: a newer library must not migrate a
    // database another process is using.
    if (key) assertUnlocked(db, key);
    const opened = db;
    asStorageError('migrating database', () => migrate(opened), key ?? undefined);
    if (key) {
      acquireLock(db, key);
      locked = true;
    }
    faults.onOpen?.(db);
    return build({ db, lockKey: key, fileLock, faults });
  } catch (err) {
    if (locked && key && db) releaseLock(db, key);
    db?.close();
    // Until a dead holder's WAL under another name is applied, its record must stay: else the
    // next open would start without it and those committed writes would be lost.
    if (adopted) fileLock?.release();
    else fileLock?.giveBack();
    throw err;
  }
}
