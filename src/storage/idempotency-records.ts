import type { Database, Statement } from 'better-sqlite3';
import type { IdempotencyBatchRow, StoredIdempotencyBatch } from './rows.js';
import { asStorageError } from './sqlite.js';

/** A retained idempotency row as read at start, for the index in memory. */
export interface IdempotencyIndexRow {
  readonly id: number;
  readonly createdAt: string;
  /** Null for rows migrated from the per-key table: computed from `entries`. */
  readonly fingerprints: Uint8Array | null;
  readonly machine: string;
  readonly entries: string | null;
}

/** The `idempotency_records` table, on the writer's connection (migration 008). */
export class IdempotencyRecords {
  private readonly insertRow: Statement;
  private readonly expireRows: Statement;
  private readonly byId: Statement;
  private readonly all: Statement;

  constructor(
    private readonly db: Database,
    private readonly path: string,
  ) {
    this.insertRow = db.prepare(`INSERT INTO idempotency_records (id, machine, first_seq, last_seq, count, created_at, entries, fingerprints, hashes, replies) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    this.expireRows = db.prepare(`DELETE FROM idempotency_records WHERE id <= ?`);
    this.byId = db.prepare(`SELECT id, machine, created_at AS createdAt, entries, hashes, replies FROM idempotency_records WHERE id = ?`);
    this.all = db.prepare(`SELECT id, created_at AS createdAt, fingerprints, machine, CASE WHEN fingerprints IS NULL THEN entries END AS entries FROM idempotency_records ORDER BY id`);
  }

  /** Writes a batch's rows and removes those past retention; inside the batch's transaction. */
  write(rows: readonly IdempotencyBatchRow[], expireThrough: number | null, now: string): void {
    for (const r of rows) this.insertRow.run(r.id, r.machine, r.firstSeq, r.lastSeq, r.count, now, r.entries, r.fingerprints, r.hashes, r.replies);
    // The oldest rows by id: what it removes is what it costs.
    if (expireThrough !== null) this.expireRows.run(expireThrough);
  }

  /** The rows of these ids that still exist, in one read transaction (throws StorageError). */
  read(ids: readonly number[]): StoredIdempotencyBatch[] {
    return asStorageError('reading idempotency keys', () => this.db.transaction(() => ids.map((id) => this.byId.get(id) as StoredIdempotencyBatch | undefined).filter((r) => r !== undefined))(), this.path);
  }

  /** Every retained row, oldest first (throws StorageError). */
  scan(): IdempotencyIndexRow[] {
    return asStorageError('reading idempotency keys', () => this.all.all() as IdempotencyIndexRow[], this.path);
  }
}
