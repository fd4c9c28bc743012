import { existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import { SchemaVersionError, StorageError } from '../errors.js';
import type { Durability } from './store-options.js';

/**
 * Runs `fn`, turning whatever SQLite (or the file system) throws into a StorageError that says
 * what was being done, so callers see one error class with the SQLite code in its message.
 * Errors this library already raised on purpose pass through unchanged.
 */
export function asStorageError<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof StorageError || err instanceof SchemaVersionError) throw err;
    const code = (err as { code?: string }).code;
    throw new StorageError(`${what} failed${code ? ` (${code})` : ''}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/**
 * Opens a database file. For writing, the file and its folder are created unless `create` is
 * false; for reading, the file must exist. Either way a file that is not SQLite at all is
 * refused here, with a clear message.
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
  });
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
  });
}
