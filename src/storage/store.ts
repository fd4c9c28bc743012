import type { Database, Statement } from 'better-sqlite3';
import { StorageError } from '../errors.js';
import { sha256 } from './checksum.js';
import { crashPoint } from './crash-points.js';
import { releaseLock } from './db-lock.js';
import type { FileLock } from './file-lock.js';
import { IdempotencyRecords } from './idempotency-records.js';
import { openWriter } from './open-writer.js';
import type { BatchExtras, LogGroup, Pruned, ReadableState, SnapshotMeta, TimerRow } from './rows.js';
import { asStorageError } from './sqlite.js';
import { DEFAULT_DB_PATH, type StoreFaults, type StoreOptions } from './store-options.js';
import { StoreReader } from './store-reader.js';
import { EntityStore } from './entity-store.js';
import { rebuildEntries, rebuildRequestJson, type RenderRequests } from './readable-rebuild.js';

function prepareWrites(db: Database) {
  const p = (sql: string): Statement => db.prepare(sql);
  return {
    insertMachine: p(`INSERT INTO machines (name, status, state_version, created_at, updated_at) VALUES (?, 'new', ?, ?, ?) ON CONFLICT(name) DO NOTHING`),
    updateMachine: p(`UPDATE machines SET status = ?, state_version = ?, restarts = restarts + ?, last_error = coalesce(?, last_error), updated_at = ? WHERE name = ?`),
    insertLog: p(`INSERT INTO request_log (machine, first_seq, last_seq, count, logged_at, size, requests, checksum, requests_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    upsertEntry: p(`INSERT OR REPLACE INTO kv_entries (machine, key, value, seq) VALUES (?, ?, ?, ?)`),
    deleteEntry: p(`DELETE FROM kv_entries WHERE machine = ? AND key = ?`),
    setEntriesSeq: p(`UPDATE machines SET entries_seq = ? WHERE name = ?`),
    entriesSeq: p(`SELECT entries_seq FROM machines WHERE name = ?`).pluck(),
    upsertState: p(`INSERT OR REPLACE INTO machine_states (machine, seq, state, note, updated_at) VALUES (?, ?, ?, ?, ?)`),
    deleteState: p(`DELETE FROM machine_states WHERE machine = ?`),
    raiseDurableSeq: p(`UPDATE machines SET durable_seq = max(coalesce(durable_seq, 0), ?) WHERE name = ?`),
    insertSnapshot: p(`INSERT INTO snapshots (machine, seq, state_version, taken_at, reason, size, checksum, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
    // Read, then deleted by id: a DELETE with a NOT IN subquery cost ~70 µs a snapshot, this ~5.
    goodSnapshots: p(`SELECT id, seq FROM snapshots WHERE machine = ? AND rejected IS NULL ORDER BY seq DESC, id DESC`).raw(),
    deleteSnapshot: p(`DELETE FROM snapshots WHERE id = ?`),
    dropRejected: p(`DELETE FROM snapshots WHERE machine = ? AND rejected IS NOT NULL`),
    rejectSnapshot: p(`UPDATE snapshots SET rejected = ? WHERE id = ? AND rejected IS NULL`),
    truncateLog: p(`DELETE FROM request_log WHERE machine = ? AND last_seq <= ?`),
    insertFailed: p(`INSERT INTO failed_requests (machine, after_seq, failed_at, error_name, error_message, stack, input, input_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
    // REPLACE: setting a pending timer again replaces it, under a new id (so its old firing is void).
    setTimer: p(`INSERT OR REPLACE INTO timers (machine, timer, due_ms, due_at, input, set_seq, set_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
    cancelTimer: p(`DELETE FROM timers WHERE machine = ? AND timer = ?`),
    deleteTimer: p(`DELETE FROM timers WHERE id = ?`),
    dueTimers: p(`SELECT id, machine, timer, due_ms AS dueMs, due_at AS dueAt, input, set_seq AS setSeq, set_at AS setAt FROM timers WHERE due_ms <= ? ORDER BY due_ms, id LIMIT ?`),
    nextTimerDue: p(`SELECT min(due_ms) FROM timers WHERE due_ms > ?`).pluck(),
    timerCount: p(`SELECT count(*) FROM timers`).pluck(),
  };
}

const NO_EXTRAS: BatchExtras = { keys: [], keysExpireThrough: null, firedTimers: [], timerChanges: [], entries: [], entriesSeq: [] };

/**
 * The writer: the one connection of an application (or of an offline `ssm` command that took
 * the writer role), holding the single-writer lock. Reads are those of {@link StoreReader}.
 * The event loop calls it between steps; every method is synchronous (better-sqlite3).
 */
export class Store extends StoreReader {
  private readonly lockKey: string | null;
  private readonly fileLock: FileLock | null;
  private readonly faults: StoreFaults;
  private readonly writes: ReturnType<typeof prepareWrites>;
  /** Idempotency keys, written in {@link appendBatch}. */
  readonly idempotency: IdempotencyRecords;
  /** The entity registry (migration 009). */
  readonly entities: EntityStore;

  private constructor(db: Database, path: string, lockKey: string | null, fileLock: FileLock | null, faults: StoreFaults) {
    super(db, path);
    this.lockKey = lockKey;
    this.fileLock = fileLock;
    this.faults = faults;
    this.writes = prepareWrites(db);
    this.idempotency = new IdempotencyRecords(db, path);
    this.entities = new EntityStore(db, path);
  }

  /**
   * Opens (creating if needed) a database for an application: WAL mode, migrations applied,
   * the single-writer lock taken. Throws ConfigError for invalid options.
   */
  static override open(path: string = DEFAULT_DB_PATH, options: StoreOptions = {}): Store {
    return openWriter(path, options, (w) => new Store(w.db, path, w.lockKey, w.fileLock, w.faults));
  }

  /** Runs a write as `what`, refusing it once the store is closed, with SQLite errors as StorageError. */
  private write<T>(what: string, fn: () => T): T {
    if (this.closed) throw new StorageError(`database ${this.path} is closed`);
    return asStorageError(what, fn, this.path);
  }

  /** Records machines of the tree (idempotent). */
  registerMachines(machines: readonly { name: string; version: number }[]): void {
    const now = new Date().toISOString();
    this.write('registering machines', () =>
      this.db.transaction(() => {
        for (const m of machines) this.writes.insertMachine.run(m.name, m.version, now, now);
      })(),
    );
  }

  /** Updates a machine's row (status, version, restart count increment, last error). */
  setMachineStatus(name: string, status: string, stateVersion: number, restartIncrement = 0, lastError: string | null = null): void {
    this.write('updating machine status', () => this.writes.updateMachine.run(status, stateVersion, restartIncrement, lastError, new Date().toISOString(), name));
  }

  /**
   * Group commit: appends one batch's log rows in a single transaction. When this returns the
   * requests are durable (per the durability mode); when it throws nothing of them was written.
   */
  appendBatch(groups: readonly LogGroup[], extras: BatchExtras = NO_EXTRAS): void {
    if (groups.length === 0 && extras.firedTimers.length === 0 && !extras.deleted?.length) return;
    this.write('committing request log', () => this.batchTransaction(groups, extras, new Date().toISOString()));
    crashPoint('after-log-append');
  }

  // Made once: better-sqlite3 builds a new wrapper at each db.transaction() call (~25 µs).
  private readonly batchTransaction = this.db.transaction((groups: readonly LogGroup[], extras: BatchExtras, now: string): void => {
    // One hash per machine per batch, over the blob already built: cheap next to the fsync.
    for (const g of groups) this.writes.insertLog.run(g.machine, g.firstSeq, g.lastSeq, g.count, now, g.requests.byteLength, g.requests, sha256(g.requests), g.requestsJson ?? null);
    // Derived rows, consistent with the log at every commit.
    for (const e of extras.entries) {
      if (e.value === null) this.writes.deleteEntry.run(e.machine, e.key);
      else this.writes.upsertEntry.run(e.machine, e.key, e.value, e.seq);
    }
    for (const m of extras.entriesSeq) this.writes.setEntriesSeq.run(m.seq, m.machine);
    // In the same transaction as the log rows: a request is applied with its key and its
    // timers, and a timer's input is delivered as its row goes, or none of it happened.
    this.idempotency.write(extras.keys, extras.keysExpireThrough, now);
    for (const id of extras.firedTimers) this.writes.deleteTimer.run(id);
    for (const c of extras.timerChanges) {
      if (c.kind === 'set') this.writes.setTimer.run(c.machine, c.timer, c.dueMs, new Date(c.dueMs).toISOString(), c.input, c.seq, now);
      else this.writes.cancelTimer.run(c.machine, c.timer);
    }
    if (extras.entities) this.entities.register(extras.entities, now);
    for (const m of extras.deleted ?? []) this.entities.purge(m);
    this.faults.beforeCommit?.(groups);
  });

  /** Timers due at `nowMs`, soonest first, at most `limit`. */
  dueTimers = (nowMs: number, limit: number): TimerRow[] => asStorageError('reading timers', () => this.writes.dueTimers.all(nowMs, limit) as TimerRow[], this.path);
  /** When the soonest timer due after `nowMs` is due (ms since the epoch), or null. */
  nextTimerDue = (nowMs: number): number | null => asStorageError('reading timers', () => this.writes.nextTimerDue.get(nowMs) as number | null, this.path);
  /** Pending timers. */
  timerCount = (): number => asStorageError('reading timers', () => this.writes.timerCount.get() as number, this.path);

  /** Removes one timer (its delivery crashed its machine: it is not delivered again). */
  deleteTimer(id: number): void {
    this.write('removing a timer', () => this.writes.deleteTimer.run(id));
  }

  /**
   * Writes a snapshot covering requests up to `seq`, then prunes older snapshots beyond `keep`
   * and (unless `retainLog`) log rows no kept snapshot needs. One transaction. `checksum` may be
   * passed when the caller hashed the state as it encoded it.
   */
  writeSnapshot(machine: string, seq: number, stateVersion: number, state: Uint8Array, reason: string, keep: number, retainLog: boolean, checksum = sha256(state), readable: ReadableState | null = null): SnapshotMeta {
    const takenAt = new Date().toISOString();
    return this.write(`writing snapshot of ${machine}`, () => this.snapshotTransaction({ machine, seq, stateVersion, takenAt, reason, state, checksum, readable }, keep, retainLog));
  }

  private readonly snapshotTransaction = this.db.transaction((s: Omit<SnapshotMeta, 'id' | 'size' | 'rejected'> & { state: Uint8Array; readable: ReadableState | null }, keep: number, retainLog: boolean): SnapshotMeta => {
    const { machine, seq, takenAt, state, readable } = s;
    const info = this.writes.insertSnapshot.run(machine, seq, s.stateVersion, takenAt, s.reason, state.byteLength, s.checksum, state);
    if (readable) this.writes.upsertState.run(machine, seq, readable.state, readable.note, takenAt);
    else this.writes.deleteState.run(machine);
    this.writes.raiseDurableSeq.run(seq, machine);
    crashPoint('mid-snapshot');
    this.applyRetention(machine, keep, retainLog, false);
    this.faults.beforeSnapshotCommit?.(machine, seq);
    return { id: Number(info.lastInsertRowid), machine, seq, stateVersion: s.stateVersion, takenAt, reason: s.reason, size: state.byteLength, checksum: s.checksum, rejected: null };
  });

  /**
   * The one retention rule, for snapshots and for `ssm compact`: keep the newest `keep` good
   * snapshots, and the log back to the oldest of them, whole while fewer than `keep` exist, so
   * each kept snapshot (or init) stays a usable fall-back if a newer one turns out corrupt.
   * Quarantined snapshots go too when `dropRejected`. Runs inside the caller's transaction.
   */
  private applyRetention(machine: string, keep: number, retainLog: boolean, dropRejected: boolean): Pruned {
    const good = this.writes.goodSnapshots.all(machine) as [id: number, seq: number][];
    let snapshots = 0;
    for (let i = keep; i < good.length; i++) snapshots += this.writes.deleteSnapshot.run(good[i]![0]).changes;
    if (dropRejected) snapshots += this.writes.dropRejected.run(machine).changes;
    crashPoint('snapshot-before-truncate');
    if (retainLog) return { snapshots, logRows: 0 };
    const oldest = good[keep - 1]?.[1];
    const logRows = oldest === undefined ? 0 : this.writes.truncateLog.run(machine, oldest).changes;
    return { snapshots, logRows };
  }

  /** `ssm compact`: applies the retention rule to every machine now, quarantined snapshots included. One transaction. */
  compact(machines: readonly string[], keep: number): Pruned {
    return this.write('compacting', () =>
      this.db.transaction(() => {
        let snapshots = 0;
        let logRows = 0;
        for (const m of machines) {
          const pruned = this.applyRetention(m, keep, false, true);
          snapshots += pruned.snapshots;
          logRows += pruned.logRows;
        }
        return { snapshots, logRows };
      })(),
    );
  }

  /**
   * Quarantines a snapshot recovery found corrupt: kept for inspection, never used again, and
   * no longer counted among the kept snapshots (so a good older one is not pruned for it).
   */
  rejectSnapshot(id: number, reason: string): void {
    this.write('quarantining snapshot', () => this.writes.rejectSnapshot.run(reason, id));
  }

  /** Records a request whose step threw. */
  recordFailure(machine: string, afterSeq: number, input: Uint8Array | null, error: unknown, inputJson: string | null = null): void {
    const e = error instanceof Error ? error : new Error(String(error));
    this.write('recording failed request', () => this.writes.insertFailed.run(machine, afterSeq, new Date().toISOString(), e.name, e.message, e.stack ?? null, input, inputJson));
  }

  /** Sets `machine`'s row of `machine_states` (null: removes it). */
  writeReadableState(machine: string, seq: number, readable: ReadableState | null): void {
    this.write(`writing machine_states of ${machine}`, () => {
      if (readable) this.writes.upsertState.run(machine, seq, readable.state, readable.note, new Date().toISOString());
      else this.writes.deleteState.run(machine);
    });
  }

  /**
   * Recomputes the JSON of every log row and failed input of `machine` from their CBOR (null
   * `render`: removes it), a page of rows per transaction. Returns the rows rewritten.
   */
  rebuildRequestJson(machine: string, render: RenderRequests | null): number {
    return rebuildRequestJson(this.db, machine, render, (what, fn) => this.write(what, fn));
  }

  /** The seq `machine`'s `kv_entries` rows reflect (null: never written). */
  entriesSeq(machine: string): number | null {
    return this.writes.entriesSeq.get(machine) as number | null;
  }

  /** Rewrites `machine`'s `kv_entries` rows from `entries` (JSON values), as of `seq`: one transaction. Null seq: removes them. */
  rebuildEntries(machine: string, entries: Iterable<readonly [string, string]>, seq: number | null): void {
    this.write(`rebuilding kv_entries of ${machine}`, () => rebuildEntries(this.db, machine, entries, seq));
  }

  /** Moves every page of the WAL into the database file and empties the WAL (`PRAGMA wal_checkpoint(TRUNCATE)`). */
  checkpointWal(): void {
    if (this.path !== ':memory:') this.db.pragma('wal_checkpoint(TRUNCATE)');
  }

  /** Rewrites the database file without its free pages (`VACUUM`), so the file shrinks after pruning. */
  vacuum(): void {
    this.db.exec('VACUUM');
  }

  /**
   * Records each machine's last durable seq as its high-water mark, so that a later recovery
   * that reaches less (committed pages lost with a deleted -wal, say) is noticed.
   */
  private recordDurableSeqs(): void {
    try {
      this.db.transaction(() => {
        // Not entities: each one's mark was raised by the snapshot it took as it went to sleep.
        for (const name of this.entities.fixedMachineNames()) this.writes.raiseDurableSeq.run(this.lastSeq(name), name);
      })();
    } catch {
      // Best effort on the way out (a full disk, say): the mark only ever lags, never lies.
    }
  }

  /** Closes the database and releases the writer lock. Idempotent. */
  override close(): void {
    if (this.closed) return;
    this.recordDurableSeqs();
    if (this.lockKey) releaseLock(this.db, this.lockKey);
    try {
      this.checkpointWal();
    } catch {
      // A checkpoint is an optimisation; the WAL is replayed by SQLite at next open anyway.
    }
    super.close();
    // Last: until the connection is closed (and its WAL checkpointed), the file is still ours.
    this.fileLock?.release();
  }
}
