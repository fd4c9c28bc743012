import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import { ReadOnlyDatabaseError, SchemaVersionError, StorageError } from '../errors.js';
import type { Durability } from './store-options.js';

/**
 * Runs `fn`, turning whatever SQLite (or the file system) throws into a StorageError that says
 * what was being done, so callers see one error class with the SQLite code in its message.
 * Errors this library already raised on purpose pass through unchanged.
 */
export function asStorageError<T>(what: string, fn: () => T, path?: string): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof StorageError || err instanceof SchemaVersionError) throw err;
    const code = (err as { code?: string }).code;
    // SQLite opens an unwritable file read-only without a word; the first write then fails.
    if (path !== undefined && code?.startsWith('SQLITE_READONLY')) throw new ReadOnlyDatabaseError(path, `${what} failed (${code})`, { cause: err });
    throw new StorageError(`${what} failed${code ? ` (${code})` : ''}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/**
 * Makes sure a writer can use `path` before SQLite touches it: creates its folder and an empty
 * file (SQLite takes a 0-byte file as an empty database) so the file has an identity to lock,
 * and refuses an unwritable file or folder up front. Otherwise SQLite would open the file
 * read-only, create `-wal`/`-shm` next to it, and fail later with a bare "attempt to write a
 * readonly database". (As root, access() says yes regardless; SQLite's own error is mapped too.)
 */
export function prepareWriterFile(path: string): void {
  const absolute = resolve(path);
  const dir = dirname(absolute);
  const denied = (what: string) => (err: unknown): never => {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') throw new ReadOnlyDatabaseError(absolute, `${what} (${code})`, { cause: err });
    throw new StorageError(`opening database ${absolute} failed (${code ?? 'error'}): ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  };
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    denied(`its folder ${dir} cannot be created`)(err);
  }
  if (existsSync(absolute)) {
    try {
      accessSync(absolute, constants.R_OK | constants.W_OK);
    } catch (err) {
      denied('the file is not writable')(err);
    }
  }
  try {
    accessSync(dir, constants.W_OK);
  } catch (err) {
    denied(`its folder ${dir} is not writable (SQLite creates the -wal and -shm files there)`)(err);
  }
  if (!existsSync(absolute)) {
    try {
      closeSync(openSync(absolute, 'a', 0o644));
    } catch (err) {
      denied('the file cannot be created')(err);
    }
  }
}

/**
 * Opens a database file. For writing, the file and its folder are created unless `create` is
 * false (a writer's file is already made by {@link prepareWriterFile}); for reading, the file
 * must exist. Either way a file that is not SQLite at all is refused here, with a clear message.
 */
export function openDatabaseFile(path: string, mode: 'read' | 'write', create = true): Database {
  const readonly = mode === 'read';
  return asStorageError(`opening database ${path}`, () => {
    // A mistyped path must not pass silently: say where we looked, absolutely, and that nothing was made.
    const missing = path !== ':memory:' && !existsSync(path);
    if (missing && readonly) throw new StorageError(`no database at ${resolve(path)} (nothing was created; check the path)`);
    if (missing && !create) throw new StorageError(`no database at ${resolve(path)}, and create is false: nothing was created`);
    if (path !== ':memory:' && !readonly) mkdirSync(dirname(resolve(path)), { recursive: true });
    const db = new BetterSqlite3(path, { readonly, fileMustExist: readonly || !create });
    db.pragma('schema_version');
    return db;
  }, path === ':memory:' || readonly ? undefined : resolve(path));
}

/**
 * The writer's connection settings: WAL so that readers (the CLI, the sqlite3 shell) never
 * block it, the synchronous level the durability mode promises, and foreign keys enforced.
 */
export function configureWriter(db: Database, path: string, durability: Durability): void {
  asStorageError('configuring database', () => {
    if (path !== ':memory:') db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${durability === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = ON');
  }, path === ':memory:' ? undefined : resolve(path));
}
