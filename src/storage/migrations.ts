import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Database } from 'better-sqlite3';
import { crashPoint } from './crash-points.js';
import { SchemaVersionError } from '../errors.js';

/** The folder of numbered SQL migrations, shipped with the package (`migrations/NNN_name.sql`). */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/** Loads migrations, checking that they are numbered 1..N without gaps. */
export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const files = readdirSync(dir).filter((f) => /^\d+_.+\.sql$/.test(f)).sort();
  const migrations = files.map((f) => {
    const version = Number.parseInt(f, 10);
    return { version, name: f.replace(/\.sql$/, ''), sql: readFileSync(`${dir}/${f}`, 'utf8') };
  });
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new SchemaVersionError(`migrations must be numbered 1..N without gaps; found ${m.name} at position ${i + 1}`);
  });
  return migrations;
}

/** The schema version this build of the library writes. */
export function latestSchemaVersion(migrations = loadMigrations()): number {
  return migrations.length;
}

/**
 * Brings the schema up to date, all pending migrations in one transaction (all or nothing).
 * `PRAGMA user_version` holds the version; `schema_migrations` records when each was applied.
 * A database from a newer version of the library is refused rather than misread.
 */
export function migrate(db: Database, migrations = loadMigrations()): { from: number; to: number } {
  const latest = latestSchemaVersion(migrations);
  const apply = db.transaction(() => {
    const from = db.pragma('user_version', { simple: true }) as number;
    if (from > latest) {
      throw new SchemaVersionError(`database schema version ${from} is newer than this library supports (${latest}); upgrade supervised-state-machines`);
    }
    assertHistoryConsistent(db, from, latest);
    if (from < latest) {
      db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
      const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
      for (const m of migrations.slice(from)) {
        db.exec(m.sql);
        crashPoint('mid-migration');
        record.run(m.version, m.name, new Date().toISOString());
      }
      db.pragma(`user_version = ${latest}`);
    }
    return { from, to: latest };
  });
  return apply.immediate();
}

/** Whether `db` has a table `name` (a database of an older schema opened read-only may not). */
export function hasTable(db: Database, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?").get(name) !== undefined;
}

/**
 * `user_version` is what SQLite keeps; `schema_migrations` is this library's record. When they
 * disagree the database was touched by something else (a newer library, or a tool that reset
 * the version): refuse, saying which, rather than misread it or re-run migration 1 over it.
 */
function assertHistoryConsistent(db: Database, version: number, latest: number): void {
  const recorded = hasTable(db, 'schema_migrations') ? ((db.prepare('SELECT max(version) FROM schema_migrations').pluck().get() as number | null) ?? 0) : 0;
  if (recorded > latest) {
    throw new SchemaVersionError(`database schema_migrations records version ${recorded}, newer than this library supports (${latest}), though PRAGMA user_version says ${version}; it was written by a newer supervised-state-machines: upgrade it`);
  }
  if (version === 0 && hasTable(db, 'machines')) {
    const fix = recorded > 0 ? `schema_migrations says ${recorded}: if nothing else changed the schema, restore it with the sqlite3 CLI: PRAGMA user_version = ${recorded};` : 'it is not a schema this library can identify; restore a backup';
    throw new SchemaVersionError(`database already has this library's tables but PRAGMA user_version is 0 (reset by a tool or a copy), so its schema version is unknown; ${fix}`);
  }
}

/** Checks, without writing, that a database can be read by this library. */
export function checkSchemaReadable(db: Database, migrations = loadMigrations()): number {
  const version = db.pragma('user_version', { simple: true }) as number;
  const latest = latestSchemaVersion(migrations);
  assertHistoryConsistent(db, version, latest);
  if (version === 0) throw new SchemaVersionError('not a supervised-state-machines database (schema version 0)');
  if (version > latest) throw new SchemaVersionError(`database schema version ${version} is newer than this library supports (${latest})`);
  return version;
}
