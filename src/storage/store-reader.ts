import type { Database, Statement } from 'better-sqlite3';
import { integrityByTable } from './integrity.js';
import type { TableIntegrity } from './reports.js';
import { checkSchemaReadable } from './migrations.js';
import type { FailedRequest, ForeignKeyViolation, LogRow, MachineRow, SnapshotMeta, StoredSnapshot, TimerRow } from './rows.js';
import { openDatabaseFile } from './sqlite.js';
import { DEFAULT_DB_PATH } from './store-options.js';

type LogTuple = [firstSeq: number, lastSeq: number, count: number, loggedAt: string, requests: Uint8Array, checksum: string | null];

const LOG_COLUMNS = 'first_seq, last_seq, count, logged_at, requests, checksum';
const SNAPSHOT_META = 'id, machine, seq, state_version AS stateVersion, taken_at AS takenAt, reason, size, checksum, rejected';

function prepareQueries(db: Database) {
  const p = (sql: string): Statement => db.prepare(sql);
  return {
    snapshots: p(`SELECT ${SNAPSHOT_META} FROM snapshots WHERE machine = ? ORDER BY seq DESC, id DESC`),
    snapshotState: p(`SELECT state FROM snapshots WHERE id = ?`).pluck(),
    // Recovery's reads, few and in one statement each: a wake of a sleeping entity is mostly these.
    newestSnapshots: p(`SELECT ${SNAPSHOT_META}, state FROM snapshots WHERE machine = ? ORDER BY seq DESC, id DESC`),
    seqMarks: p(`SELECT max(coalesce((SELECT max(last_seq) FROM request_log WHERE machine = @machine), 0), coalesce((SELECT max(seq) FROM snapshots WHERE machine = @machine), 0)) AS last, (SELECT durable_seq FROM machines WHERE name = @machine) AS durable`),
    begin: p('BEGIN'),
    rollback: p('ROLLBACK'),
    snapshotsWithState: p(`SELECT id, seq, checksum, state FROM snapshots WHERE machine = ? ORDER BY seq, id`),
    snapshotCount: p(`SELECT count(*) FROM snapshots`).pluck(),
    mostSnapshotsOfAMachine: p(`SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM snapshots GROUP BY machine)`).pluck(),
    oldestSnapshotSeq: p(`SELECT min(seq) FROM snapshots WHERE machine = ?`).pluck(),
    logAfter: p(`SELECT ${LOG_COLUMNS} FROM request_log WHERE machine = ? AND last_seq > ? ORDER BY last_seq`).raw(),
    logPageAfter: p(`SELECT ${LOG_COLUMNS} FROM request_log WHERE machine = ? AND last_seq > ? ORDER BY last_seq LIMIT ?`).raw(),
    oldestSnapshotKept: p(`SELECT min(seq) FROM snapshots WHERE machine = ? AND rejected IS NULL`).pluck(),
    wholeLog: p(`SELECT ${LOG_COLUMNS} FROM request_log WHERE machine = ? ORDER BY last_seq`).raw(),
    firstLoggedSeq: p(`SELECT min(first_seq) FROM request_log WHERE machine = ?`).pluck(),
    logBytesOf: p(`SELECT coalesce(sum(size), 0) FROM request_log WHERE machine = ?`).pluck(),
    logBytes: p(`SELECT coalesce(sum(size), 0) FROM request_log`).pluck(),
    machines: p(`SELECT name, status, state_version AS stateVersion, restarts, last_error AS lastError, durable_seq AS durableSeq FROM machines ORDER BY name`),
    knownMachineNames: p(`SELECT name FROM machines UNION SELECT machine FROM snapshots UNION SELECT machine FROM request_log ORDER BY 1`).pluck(),
    failed: p(`SELECT id, machine, after_seq AS afterSeq, failed_at AS failedAt, error_name AS errorName, error_message AS errorMessage, stack, input FROM failed_requests WHERE (@machine IS NULL OR machine = @machine) ORDER BY id DESC LIMIT @limit`),
  };
}

// The log is read as raw arrays, cheaper than objects on the replay path.
function* logRows(rows: Iterable<unknown>): Generator<LogRow> {
  for (const [firstSeq, lastSeq, count, loggedAt, requests, checksum] of rows as Iterable<LogTuple>) yield { firstSeq, lastSeq, count, loggedAt, requests, checksum };
}

/**
 * Every read of the database: the request log, snapshots, failed requests and machine rows.
 * {@link StoreReader.open} opens a file read-only for the CLI tools, which is safe while an
 * application runs (WAL readers never block the writer); {@link Store} is the writer built on it.
 * All methods are synchronous (better-sqlite3).
 */
export class StoreReader {
  readonly db: Database;
  readonly path: string;
  protected closed = false;
  private readonly queries: ReturnType<typeof prepareQueries>;

  protected constructor(db: Database, path: string) {
    this.db = db;
    this.path = path;
    this.queries = prepareQueries(db);
  }

  /** Opens an existing database for reading only (the CLI tools); safe while an application runs. */
  static open(path: string = DEFAULT_DB_PATH): StoreReader {
    const db = openDatabaseFile(path, 'read');
    try {
      checkSchemaReadable(db);
      return new StoreReader(db, path);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /**
   * Runs `fn` inside one read transaction, so that every query it makes sees the same state even
   * while a server snapshots and prunes meanwhile (a replay cannot lose its log half-way).
   */
  consistentRead<T>(fn: () => T): T {
    // Inside a caller's transaction its reads are consistent already (and BEGIN would throw).
    if (this.db.inTransaction) return fn();
    // One read transaction for all of fn's queries is also cheaper than one implicit one each.
    this.queries.begin.run();
    try {
      return fn();
    } finally {
      // Nothing to commit in a read transaction; ROLLBACK also ends one that a damaged page
      // left in an error state, where COMMIT would throw "malformed" over the caller's result.
      if (this.db.inTransaction) this.queries.rollback.run();
    }
  }

  /** Snapshot metadata of a machine, newest first. */
  snapshots(machine: string): SnapshotMeta[] {
    return this.queries.snapshots.all(machine) as SnapshotMeta[];
  }

  /** The state bytes of a snapshot, or undefined if there is no snapshot with that id. */
  snapshotState(id: number): Uint8Array | undefined {
    return this.queries.snapshotState.get(id) as Uint8Array | undefined;
  }

  /** A machine's snapshots with their state, newest first, read lazily (recovery stops at the first good one). */
  *newestSnapshots(machine: string): Generator<{ meta: SnapshotMeta; state: Uint8Array }> {
    for (const row of this.queries.newestSnapshots.iterate(machine) as Iterable<SnapshotMeta & { state: Uint8Array }>) {
      const { state, ...meta } = row;
      yield { meta, state };
    }
  }

  /** {@link lastSeq} and {@link durableSeq} in one read. */
  seqMarks(machine: string): { last: number; durable: number | null } {
    const { last, durable } = this.queries.seqMarks.get({ machine }) as { last: number; durable: number | null | undefined };
    return { last, durable: durable ?? null };
  }

  // The reads that iterate are generators, so a query runs only once the caller pulls: an open
  // statement iterator keeps the connection busy, and a read asked for but never consumed must not.

  /** Every snapshot of a machine with its state, oldest first, quarantined ones included. */
  *iterateSnapshots(machine: string): Generator<StoredSnapshot> {
    yield* this.queries.snapshotsWithState.iterate(machine) as Iterable<StoredSnapshot>;
  }

  /** How many snapshots the database holds, of all machines. */
  snapshotCount(): number {
    return this.queries.snapshotCount.get() as number;
  }

  /** The largest number of snapshots any one machine has (0 if none). */
  mostSnapshotsOfAMachine(): number {
    return this.queries.mostSnapshotsOfAMachine.get() as number;
  }

  /** The sequence number of a machine's oldest snapshot, quarantined ones included; null if none. */
  oldestSnapshotSeq(machine: string): number | null {
    return this.queries.oldestSnapshotSeq.get(machine) as number | null;
  }

  /** Log rows of a machine whose last_seq is after `afterSeq`, in order. */
  *logAfter(machine: string, afterSeq: number): Generator<LogRow> {
    yield* logRows(this.queries.logAfter.iterate(machine, afterSeq));
  }

  /** Every log row of a machine, in order, whatever its sequence numbers say (for checking them). */
  *iterateLog(machine: string): Generator<LogRow> {
    yield* logRows(this.queries.wholeLog.iterate(machine));
  }

  /** The first sequence number still in a machine's log (older ones were pruned); null if the log is empty. */
  firstLoggedSeq(machine: string): number | null {
    return this.queries.firstLoggedSeq.get(machine) as number | null;
  }

  /** Bytes of logged requests of one machine, or of all machines when `machine` is omitted. */
  logBytes(machine?: string): number {
    return (machine === undefined ? this.queries.logBytes.get() : this.queries.logBytesOf.get(machine)) as number;
  }

  /** The last durable sequence number of a machine (0 if none). */
  lastSeq(machine: string): number {
    return this.seqMarks(machine).last;
  }

  /** The high-water mark recorded for a machine at its last snapshot or clean close; null if none. */
  durableSeq(machine: string): number | null {
    return this.seqMarks(machine).durable;
  }

  /** The rows of the machines table, by name. */
  machines(): MachineRow[] {
    return this.queries.machines.all() as MachineRow[];
  }

  /** Every machine the database knows of: the machines table plus any name found in its log or snapshots, sorted. */
  knownMachineNames(): string[] {
    return this.queries.knownMachineNames.all() as string[];
  }

  /** Recorded failed requests, newest first, of one machine or (null) all. */
  failedRequests(machine: string | null = null, limit = 100): FailedRequest[] {
    return this.queries.failed.all({ machine, limit }) as FailedRequest[];
  }

  /**
   * Pending durable timers, soonest first, of one machine or (null) all; null when the database
   * predates timers (schema version < 5, opened read-only so not migrated).
   */
  pendingTimers(machine: string | null = null, limit = 100): TimerRow[] | null {
    if (this.db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'timers'").get() === undefined) return null;
    return this.db
      .prepare(`SELECT id, machine, timer, due_ms AS dueMs, due_at AS dueAt, input, set_seq AS setSeq, set_at AS setAt FROM timers WHERE (@machine IS NULL OR machine = @machine) ORDER BY due_ms, id LIMIT @limit`)
      .all({ machine, limit }) as TimerRow[];
  }

  /** At most `limit` log rows of `machine` after `seq`, in order (a bounded read, unlike logAfter). */
  logRowsAfter(machine: string, seq: number, limit: number): LogRow[] {
    return [...logRows(this.queries.logPageAfter.all(machine, seq, limit))];
  }

  /**
   * The oldest seq from which `machine`'s requests can still be replayed in order: 1 while the
   * log reaches back to the start, else just after its oldest good snapshot.
   */
  oldestReplayableSeq(machine: string): number {
    const first = this.firstLoggedSeq(machine);
    if (first === null || first <= 1) return first === null ? this.lastSeq(machine) + 1 : 1;
    const snap = this.queries.oldestSnapshotKept.get(machine) as number | null;
    return snap === null ? first : Math.max(snap + 1, 1);
  }

  /** SQLite's `PRAGMA integrity_check`, its problems grouped by table; empty when the database is sound. */
  integrityByTable(): TableIntegrity[] {
    return integrityByTable(this.db);
  }

  /** SQLite's `PRAGMA foreign_key_check`: every dangling reference (none in a sound database). */
  foreignKeyCheck(): ForeignKeyViolation[] {
    return this.db.pragma('foreign_key_check') as ForeignKeyViolation[];
  }

  /** Closes the database. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}
