import type { Database } from 'better-sqlite3';
import { asStorageError } from './sqlite.js';

/**
 * A cheap test of whether the database takes writes again (issue 18.5): one transaction that
 * inserts a row of `bytes` bytes into `failed_requests`, deletes it and commits. The insert
 * needs new pages as a batch's log rows would (so a full disk refuses it with SQLITE_FULL before
 * anything is written), and the commit writes to the WAL and syncs, as a batch commit does. It
 * leaves no row behind: the next real failure record reuses the id. Throws StorageError.
 *
 * A file of its own so that the engine's probe needs no change to the Store's statements.
 */
export function probeWrite(db: Database, bytes: number): void {
  asStorageError('probing storage', () =>
    db.transaction(() => {
      const id = db
        .prepare("INSERT INTO failed_requests (machine, after_seq, failed_at, error_name, error_message, input) VALUES ('', 0, '', 'probe', 'storage probe', ?)")
        .run(Buffer.alloc(Math.max(1, bytes))).lastInsertRowid;
      db.prepare('DELETE FROM failed_requests WHERE id = ?').run(id);
    })(),
  );
}
