import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, realpathSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import BetterSqlite3, { type Database, type Statement } from 'better-sqlite3';
import { crashPoint } from './crash-points.js';
import { acquireLock, assertUnlocked, releaseLock } from './db-lock.js';
import { SchemaVersionError, StorageError } from '../errors.js';
import { checkSchemaReadable, migrate } from './migrations.js';

/**
 * `full`: SQLite synchronous=FULL, a reply is released only after fsync; survives power loss.
 * `normal`: synchronous=NORMAL in WAL mode; survives a crash of the process, but the last
 * commits before a power failure or OS crash may be lost.
 */
export type Durability = 'full' | 'normal';

/** Default database location, relative to the working directory. */
export const DEFAULT_DB_PATH = 'storage/ssm.db';

/** One machine's requests from one batch. */
export interface LogGroup {
  readonly machine: string;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly count: number;
  /** CBOR sequence of the inputs, in order. */
  readonly requests: Uint8Array;
}

export interface SnapshotMeta {
  readonly id: number;
  readonly machine: string;
  readonly seq: number;
  readonly stateVersion: number;
  readonly takenAt: string;
  readonly reason: string;
  readonly size: number;
  readonly checksum: string;
  /** Why recovery quarantined this snapshot, or null if it is good. */
  readonly rejected: string | null;
}

export interface LogRow {
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly loggedAt: string;
  readonly requests: Uint8Array;
}

export interface FailedRequest {
  readonly id: number;
  readonly machine: string;
  readonly afterSeq: number;
  readonly failedAt: string;
  readonly errorName: string;
  readonly errorMessage: string;
  readonly stack: string | null;
  readonly input: Uint8Array | null;
}

export interface MachineRow {
  readonly name: string;
  readonly status: string;
  readonly stateVersion: number;
  readonly restarts: number;
  readonly lastError: string | null;
}

/** Test seams for fault injection; never set in production. */
export interface StoreFaults {
  /** Called inside the batch transaction, before it commits: throw to simulate an I/O error. */
  beforeCommit?(groups: readonly LogGroup[]): void;
  /** Called inside the snapshot transaction, before it commits. */
  beforeSnapshotCommit?(machine: string, seq: number): void;
  /**
   * Called once the application's own connection is open and migrated, before any machine is
   * restored: lets a test set per-connection limits such as `PRAGMA max_page_count` (disk full).
   */
  onOpen?(db: Database): void;
}

export interface StoreOptions {
  durability?: Durability;
  faults?: StoreFaults;
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function wrap<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof StorageError || err instanceof SchemaVersionError) throw err;
    const code = (err as { code?: string }).code;
    throw new StorageError(`${what} failed${code ? ` (${code})` : ''}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

function openDatabase(path: string, readonly: boolean): Database {
  return wrap(`opening database ${path}`, () => {
    if (path !== ':memory:' && !readonly) mkdirSync(dirname(resolve(path)), { recursive: true });
    if (readonly && path !== ':memory:' && !existsSync(path)) throw new StorageError(`no database at ${path}`);
    const db = new BetterSqlite3(path, { readonly, fileMustExist: readonly });
    // Fail fast on a file that is not SQLite at all, with a clear message.
    db.pragma('schema_version');
    return db;
  });
}

/**
 * The SQLite side of persistence: the request log, snapshots, failed requests and machine rows.
 * All methods are synchronous (better-sqlite3); the event loop calls them between steps.
 */
export class Store {
  readonly db: Database;
  readonly path: string;
  readonly durability: Durability;
  readonly readonly: boolean;
  private readonly lockKey: string | null;
  private readonly faults: StoreFaults;
  private closed = false;
  private readonly st: ReturnType<Store['prepare']>;

  private constructor(db: Database, path: string, readonly: boolean, lockKey: string | null, options: StoreOptions) {
    this.db = db;
    this.path = path;
    this.readonly = readonly;
    this.lockKey = lockKey;
    this.durability = options.durability ?? 'full';
    this.faults = options.faults ?? {};
    this.st = this.prepare();
  }

  /**
   * Opens (creating if needed) a database for an application: WAL mode, migrations applied,
   * the single-writer lock taken.
   */
  static open(path: string = DEFAULT_DB_PATH, options: StoreOptions = {}): Store {
    const durability = options.durability ?? 'full';
    if (durability !== 'full' && durability !== 'normal') throw new RangeError(`durability must be 'full' or 'normal', got ${String(durability)}`);
    const db = openDatabase(path, false);
    const key = path === ':memory:' ? null : realpathSync(path);
    let locked = false;
    try {
      wrap('configuring database', () => {
        if (path !== ':memory:') db.pragma('journal_mode = WAL');
        db.pragma(`synchronous = ${durability === 'full' ? 'FULL' : 'NORMAL'}`);
        db.pragma('busy_timeout = 5000');
        db.pragma('foreign_keys = ON');
      });
      // Refuse a live holder before touching the schema: a newer library must not migrate a
      // database another process is using.
      if (key) assertUnlocked(db, key);
      wrap('migrating database', () => migrate(db));
      if (key) {
        acquireLock(db, key);
        locked = true;
      }
      options.faults?.onOpen?.(db);
      return new Store(db, path, false, key, options);
    } catch (err) {
      if (locked && key) releaseLock(db, key);
      db.close();
      throw err;
    }
  }

  /** Opens an existing database for reading only (the CLI tools); safe while an application runs. */
  static openReadOnly(path: string = DEFAULT_DB_PATH): Store {
    const db = openDatabase(path, true);
    try {
      checkSchemaReadable(db);
      return new Store(db, path, true, null, {});
    } catch (err) {
      db.close();
      throw err;
    }
  }

  private prepare() {
    const p = (sql: string): Statement => this.db.prepare(sql);
    return {
      insertMachine: this.readonly ? null : p(`INSERT INTO machines (name, status, state_version, created_at, updated_at) VALUES (?, 'new', ?, ?, ?) ON CONFLICT(name) DO NOTHING`),
      updateMachine: this.readonly ? null : p(`UPDATE machines SET status = ?, state_version = ?, restarts = restarts + ?, last_error = coalesce(?, last_error), updated_at = ? WHERE name = ?`),
      insertLog: this.readonly ? null : p(`INSERT INTO request_log (machine, first_seq, last_seq, count, logged_at, size, requests) VALUES (?, ?, ?, ?, ?, ?, ?)`),
      insertSnapshot: this.readonly ? null : p(`INSERT INTO snapshots (machine, seq, state_version, taken_at, reason, size, checksum, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
      pruneSnapshots: this.readonly ? null : p(`DELETE FROM snapshots WHERE machine = ? AND rejected IS NULL AND id NOT IN (SELECT id FROM snapshots WHERE machine = ? AND rejected IS NULL ORDER BY seq DESC, id DESC LIMIT ?)`),
      dropRejected: this.readonly ? null : p(`DELETE FROM snapshots WHERE machine = ? AND rejected IS NOT NULL`),
      keptSnapshotSeq: p(`SELECT seq FROM snapshots WHERE machine = ? AND rejected IS NULL ORDER BY seq DESC, id DESC LIMIT 1 OFFSET ?`).pluck(),
      rejectSnapshot: this.readonly ? null : p(`UPDATE snapshots SET rejected = ? WHERE id = ? AND rejected IS NULL`),
      truncateLog: this.readonly ? null : p(`DELETE FROM request_log WHERE machine = ? AND last_seq <= ?`),
      insertFailed: this.readonly ? null : p(`INSERT INTO failed_requests (machine, after_seq, failed_at, error_name, error_message, stack, input) VALUES (?, ?, ?, ?, ?, ?, ?)`),
      snapshots: p(`SELECT id, machine, seq, state_version AS stateVersion, taken_at AS takenAt, reason, size, checksum, rejected FROM snapshots WHERE machine = ? ORDER BY seq DESC, id DESC`),
      snapshotState: p(`SELECT state FROM snapshots WHERE id = ?`).pluck(),
      logAfter: p(`SELECT first_seq, last_seq, logged_at, requests FROM request_log WHERE machine = ? AND last_seq > ? ORDER BY last_seq`).raw(),
      lastSeq: p(`SELECT max(coalesce((SELECT max(last_seq) FROM request_log WHERE machine = @machine), 0), coalesce((SELECT max(seq) FROM snapshots WHERE machine = @machine), 0))`).pluck(),
      machines: p(`SELECT name, status, state_version AS stateVersion, restarts, last_error AS lastError FROM machines ORDER BY name`),
      failed: p(`SELECT id, machine, after_seq AS afterSeq, failed_at AS failedAt, error_name AS errorName, error_message AS errorMessage, stack, input FROM failed_requests WHERE (@machine IS NULL OR machine = @machine) ORDER BY id DESC LIMIT @limit`),
    };
  }

  private w(stmt: Statement | null): Statement {
    if (!stmt) throw new StorageError(`database ${this.path} is open read-only`);
    if (this.closed) throw new StorageError(`database ${this.path} is closed`);
    return stmt;
  }

  /** Records machines of the tree (idempotent). */
  registerMachines(machines: readonly { name: string; version: number }[]): void {
    const now = new Date().toISOString();
    wrap('registering machines', () =>
      this.db.transaction(() => {
        for (const m of machines) this.w(this.st.insertMachine).run(m.name, m.version, now, now);
      })(),
    );
  }

  /** Updates a machine's row (status, version, restart count increment, last error). */
  setMachineStatus(name: string, status: string, stateVersion: number, restartIncrement = 0, lastError: string | null = null): void {
    wrap('updating machine status', () => this.w(this.st.updateMachine).run(status, stateVersion, restartIncrement, lastError, new Date().toISOString(), name));
  }

  /**
   * Group commit: appends one batch's log rows in a single transaction. When this returns the
   * requests are durable (per the durability mode); when it throws nothing of them was written.
   */
  appendBatch(groups: readonly LogGroup[]): void {
    if (groups.length === 0) return;
    const insert = this.w(this.st.insertLog);
    const now = new Date().toISOString();
    wrap('committing request log', () => {
      this.db.transaction(() => {
        for (const g of groups) insert.run(g.machine, g.firstSeq, g.lastSeq, g.count, now, g.requests.byteLength, g.requests);
        this.faults.beforeCommit?.(groups);
      })();
    });
    crashPoint('after-log-append');
  }

  /**
   * Writes a snapshot covering requests up to `seq`, then prunes older snapshots beyond `keep`
   * and (unless `retainLog`) log rows no kept snapshot needs. One transaction. `checksum` may be
   * passed when the caller hashed the state as it encoded it.
   */
  writeSnapshot(machine: string, seq: number, stateVersion: number, state: Uint8Array, reason: string, keep: number, retainLog: boolean, checksum = sha256(state)): SnapshotMeta {
    const takenAt = new Date().toISOString();
    return wrap(`writing snapshot of ${machine}`, () =>
      this.db.transaction(() => {
        const info = this.w(this.st.insertSnapshot).run(machine, seq, stateVersion, takenAt, reason, state.byteLength, checksum, state);
        crashPoint('mid-snapshot');
        this.prune(machine, keep, retainLog, false);
        this.faults.beforeSnapshotCommit?.(machine, seq);
        return { id: Number(info.lastInsertRowid), machine, seq, stateVersion, takenAt, reason, size: state.byteLength, checksum, rejected: null };
      })(),
    );
  }

  /**
   * The one retention rule, for snapshots and for `ssm compact`: keep the newest `keep` good
   * snapshots, and the log back to the oldest of them, whole while fewer than `keep` exist, so
   * each kept snapshot (or init) stays a usable fall-back if a newer one turns out corrupt.
   * Quarantined snapshots go too when `dropRejected`. Runs inside the caller's transaction.
   */
  private prune(machine: string, keep: number, retainLog: boolean, dropRejected: boolean): { snapshots: number; logRows: number } {
    let snapshots = this.w(this.st.pruneSnapshots).run(machine, machine, keep).changes;
    if (dropRejected) snapshots += this.w(this.st.dropRejected).run(machine).changes;
    crashPoint('snapshot-before-truncate');
    if (retainLog) return { snapshots, logRows: 0 };
    const oldest = this.st.keptSnapshotSeq.get(machine, keep - 1) as number | undefined;
    const logRows = oldest === undefined ? 0 : this.w(this.st.truncateLog).run(machine, oldest).changes;
    return { snapshots, logRows };
  }

  /** `ssm compact`: applies the retention rule to every machine now, quarantined snapshots included. One transaction. */
  compact(machines: readonly string[], keep: number): { snapshots: number; logRows: number } {
    return wrap('compacting', () =>
      this.db.transaction(() => {
        const total = { snapshots: 0, logRows: 0 };
        for (const m of machines) {
          const r = this.prune(m, keep, false, true);
          total.snapshots += r.snapshots;
          total.logRows += r.logRows;
        }
        return total;
      })(),
    );
  }

  /**
   * Quarantines a snapshot recovery found corrupt: kept for inspection, never used again, and
   * no longer counted among the kept snapshots (so a good older one is not pruned for it).
   */
  rejectSnapshot(id: number, reason: string): void {
    wrap('quarantining snapshot', () => this.w(this.st.rejectSnapshot).run(reason, id));
  }

  /** Records a request whose step threw. */
  recordFailure(machine: string, afterSeq: number, input: Uint8Array | null, error: unknown): void {
    const e = error instanceof Error ? error : new Error(String(error));
    wrap('recording failed request', () => this.w(this.st.insertFailed).run(machine, afterSeq, new Date().toISOString(), e.name, e.message, e.stack ?? null, input));
  }

  /** Snapshot metadata of a machine, newest first. */
  snapshots(machine: string): SnapshotMeta[] {
    return this.st.snapshots.all(machine) as SnapshotMeta[];
  }

  snapshotState(id: number): Uint8Array | undefined {
    return this.st.snapshotState.get(id) as Uint8Array | undefined;
  }

  /** Log rows of a machine whose last_seq is after `afterSeq`, in order. */
  *logAfter(machine: string, afterSeq: number): Generator<LogRow> {
    for (const row of this.st.logAfter.iterate(machine, afterSeq) as Iterable<[number, number, string, Uint8Array]>) {
      yield { firstSeq: row[0], lastSeq: row[1], loggedAt: row[2], requests: row[3] };
    }
  }

  /** The last durable sequence number of a machine (0 if none). */
  lastSeq(machine: string): number {
    return this.st.lastSeq.get({ machine }) as number;
  }

  machines(): MachineRow[] {
    return this.st.machines.all() as MachineRow[];
  }

  failedRequests(machine: string | null = null, limit = 100): FailedRequest[] {
    return this.st.failed.all({ machine, limit }) as FailedRequest[];
  }

  /** Closes the database and releases the writer lock. Idempotent. */
  close(): void {
    if (this.closed) return;
    if (this.lockKey) releaseLock(this.db, this.lockKey);
    this.closed = true;
    try {
      if (!this.readonly && this.path !== ':memory:') this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // A checkpoint is an optimisation; the WAL is replayed by SQLite at next open anyway.
    }
    this.db.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
