import { createHash } from 'node:crypto';
import { StorageError, describe } from '../errors.js';
import { inputAsJson, renderedEntries, renderedState } from './readable-state.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { recoverState } from '../storage/recovery.js';
import type { RecoveryReport } from '../storage/reports.js';
import type { WorkerNode } from './runtime-tree.js';
import { SLICE_ENTRIES, encodeStateSlices, stateEntries } from '../encoding/snapshot-encoding.js';
import { quietUntil, snapshotVerdict, type ResolvedSnapshotPolicy, type SnapshotVerdict } from './snapshot-policy.js';
import type { BatchExtras, LogGroup, LogRow, SnapshotMeta, TimerRow } from '../storage/rows.js';
import type { Store } from '../storage/store.js';
import type { IdempotencyRecords } from '../storage/idempotency-records.js';
import type { EntityStore } from '../storage/entity-store.js';
import { probeWrite } from '../storage/write-probe.js';
import { backupDatabase } from '../storage/backup.js';
import { CrashHistory } from '../storage/crash-history.js';
import type { BackupOptions, BackupReport } from '../storage/reports.js';

const yieldToEventLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

export type SnapshotReason = 'policy' | 'terminate' | 'restart' | 'checkpoint';

/**
 * The engine's one way to its store: restoring workers' state, committing batches,
 * checkpointing, and the bookkeeping rows (machines, failed requests).
 */
export class Persistence {
  /** Until when (monotonic ms) count and age triggers wait: the snapshot throttle, for all machines. */
  quietUntil = 0;
  /** Crashes across process starts, and the machines held back for them. */
  readonly crashes: CrashHistory;

  constructor(
    private readonly store: Store,
    readonly policy: ResolvedSnapshotPolicy,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {
    this.crashes = new CrashHistory(store.db, store.path);
  }

  /** The entity registry: listing, counting, one transaction for many snapshots. */
  get entities(): EntityStore {
    return this.store.entities;
  }

  /** Path of the database file. */
  get path(): string {
    return this.store.path;
  }

  /** Opens the store and records the machines of the tree (idempotent); closes it again if that fails. */
  static open(store: Store, policy: ResolvedSnapshotPolicy, log: Logger, metrics: Metrics, workers: readonly WorkerNode[]): Persistence {
    const p = new Persistence(store, policy, log, metrics);
    try {
      store.registerMachines(workers.map((w) => ({ name: w.name, version: w.machine.version })));
    } catch (err) {
      p.close();
      throw err;
    }
    return p;
  }

  /** The group commit of one batch, with its keys and timers; throws StorageError, having written nothing of it. */
  commit(groups: readonly LogGroup[], extras?: BatchExtras): void {
    this.store.appendBatch(groups, extras);
  }

  /** Timers due at `nowMs`, soonest first (throws StorageError). */
  dueTimers(nowMs: number, limit: number): TimerRow[] {
    return this.store.dueTimers(nowMs, limit);
  }

  /** When the soonest timer due after `nowMs` is due, or null (throws StorageError). */
  nextTimerDue(nowMs: number): number | null {
    return this.store.nextTimerDue(nowMs);
  }

  /** Pending timers; 0 if storage cannot say. */
  timerCount(): number {
    try {
      return this.store.timerCount();
    } catch {
      return 0;
    }
  }

  /** Removes a timer whose delivery crashed its machine. Best effort: never throws. */
  dropTimer(id: number): boolean {
    try {
      this.store.deleteTimer(id);
      return true;
    } catch {
      return false;
    }
  }

  /** Where the idempotency keys are stored. */
  get idempotencyRecords(): IdempotencyRecords {
    return this.store.idempotency;
  }

  /** Whether storage takes a write of about `bytes` now, writing nothing lasting; throws StorageError. */
  probe(bytes: number): void {
    probeWrite(this.store.db, bytes);
  }

  /** Records a request whose step threw. A full disk must not prevent the restart: never throws. */
  recordFailure(w: WorkerNode, input: Uint8Array | null, error: unknown): void {
    try {
      this.store.recordFailure(w.name, w.seq, input, error, w.readable ? inputAsJson(input) : null);
    } catch {
      // The crash is still logged by supervision and counted in the metrics.
    }
  }

  /** Updates a machine's row. Status rows are informational: a full disk must not stop supervision. */
  setStatus(w: WorkerNode, status: string, restartIncrement = 0, lastError: string | null = null): void {
    try {
      this.store.setMachineStatus(w.name, status, w.machine.version, restartIncrement, lastError ?? (status === 'crashed' ? w.lastError : null));
    } catch {
      // Informational only.
    }
  }

  /** `w`'s state as of `seq`, rebuilt privately from storage (throws RecoveryError). */
  rebuildAt(w: WorkerNode, seq: number): { state: unknown; seq: number } {
    const { state, report } = recoverState(this.store, w.name, w.machine, seq);
    return { state, seq: report.seq };
  }

  /** At most `limit` log rows of `name` after `seq` (throws StorageError). */
  logRowsAfter(name: string, seq: number, limit: number): LogRow[] {
    return this.store.logRowsAfter(name, seq, limit);
  }

  /** The oldest seq of `name` a change feed can start from. */
  oldestResumableSeq(name: string): number {
    return this.store.oldestReplayableSeq(name);
  }

  private readonly backups = new Set<Promise<unknown>>();

  /** An online, verified copy of the database at `dest` through the writer connection (see backupDatabase). */
  async backup(dest: string, options?: BackupOptions): Promise<BackupReport> {
    const running = backupDatabase(this.store.db, this.store.path, dest, true, options);
    this.backups.add(running);
    try {
      return await running;
    } finally {
      this.backups.delete(running);
    }
  }

  /** Settles once every backup under way has ended (a stop waits for them). */
  async backupsEnded(): Promise<void> {
    await Promise.allSettled([...this.backups]);
  }

  /** Closes the database and releases the writer lock. Idempotent. */
  close(): void {
    this.store.close();
  }

  /** Rebuilds `w`'s state from its snapshot and log (throws RecoveryError; deletes nothing). */
  restore(w: WorkerNode): RecoveryReport {
    // One read transaction: consistent, and a wake costs a few statements, not a few transactions.
    const { state, report, entriesSeq } = this.store.consistentRead(() => {
      const recovered = recoverState(this.store, w.name, w.machine);
      return { ...recovered, entriesSeq: this.store.entriesSeq(w.name) };
    });
    for (const r of report.rejected) {
      try {
        this.store.rejectSnapshot(r.id, r.reason);
      } catch {
        // Quarantine is bookkeeping: recovery already skipped the snapshot and will again.
      }
    }
    w.state = state;
    w.seq = report.seq;
    w.snapshotSeq = report.snapshotSeq;
    w.snapshot = report.snapshot && { seq: report.snapshot.seq, takenAt: report.snapshot.takenAt, size: report.snapshot.size };
    w.growth = { requests: report.replayed, bytes: report.replayedBytes, firstAt: report.replayed > 0 ? performance.now() : null };
    // An entity never written has no rows to bring up to date, and must write none.
    if (!(w.family && w.seq === 0)) this.syncEntries(w, entriesSeq);
    return report;
  }

  /**
   * Brings `w`'s `kv_entries` rows to its restored state when they do not reflect it (`have`: the
   * seq they reflect; a database from before readable tables, a projection just declared, or one
   * turned off: rows removed). Derived data: a failure here is logged, never a failed start.
   */
  private syncEntries(w: WorkerNode, have: number | null): void {
    try {
      const want = w.readable && w.machine.entries ? w.seq : null;
      if (have === want) return;
      this.store.rebuildEntries(w.name, renderedEntries(w.machine, w.state), want);
    } catch (error) {
      this.log({ type: 'snapshot_failed', machine: w.name, error: new StorageError(`kv_entries of ${w.name} could not be rebuilt (the readable rows may be stale; the state is intact): ${describe(error)}`, { cause: error }) });
    }
  }

  /**
   * Writes a snapshot of `w`'s current state if it has changed since the last one. The state is
   * encoded in slices with a yield to the Node.js event loop between them (see
   * {@link encodeStateSlices}), so the caller must keep steps from running meanwhile: run it
   * under the event loop's `exclusive`. Never call this for a crashed machine: its memory may be
   * corrupt. Throws StorageError.
   */
  async checkpoint(w: WorkerNode, reason: SnapshotReason): Promise<SnapshotMeta | null> {
    if (w.seq === w.snapshotSeq && w.growth.requests === 0) return null;
    const seq = w.seq;
    const t0 = performance.now();
    const chunks: Uint8Array[] = [];
    // Hashed slice by slice too, so the final, unavoidably synchronous write is all that is left.
    const hash = createHash('sha256');
    let first = true;
    for (const chunk of this.encode(w)) {
      if (!first) await yieldToEventLoop();
      first = false;
      chunks.push(chunk);
      hash.update(chunk);
    }
    if (w.seq !== seq) throw new StorageError(`state of ${w.name} changed while it was being encoded for a snapshot (not run under exclusive)`);
    return this.write(w, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), reason, t0, hash.digest('hex'));
  }

  /**
   * The same for a state small enough to encode in one slice, without yielding: used between
   * two batches, where nothing else may run. Throws StorageError.
   */
  checkpointNow(w: WorkerNode, reason: SnapshotReason): SnapshotMeta | null {
    if (w.seq === w.snapshotSeq && w.growth.requests === 0) return null;
    const t0 = performance.now();
    const chunks = [...this.encode(w)];
    return this.write(w, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), reason, t0);
  }

  /** Whether encoding `w`'s state takes more than one slice (and so should yield). */
  isLarge(w: WorkerNode): boolean {
    return stateEntries(w.state) > SLICE_ENTRIES;
  }

  private *encode(w: WorkerNode): Generator<Uint8Array> {
    try {
      yield* encodeStateSlices(w.state);
    } catch (err) {
      throw new StorageError(`state of ${w.name} is not encodable as CBOR: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  private write(w: WorkerNode, bytes: Uint8Array, reason: SnapshotReason, t0: number, checksum?: string): SnapshotMeta {
    const meta = this.store.writeSnapshot(w.name, w.seq, w.machine.version, bytes, reason, this.policy.keepSnapshots, this.policy.retainLog, checksum, w.readable ? renderedState(w.machine, w.state) : null);
    w.snapshotSeq = meta.seq;
    w.snapshot = { seq: meta.seq, takenAt: meta.takenAt, size: meta.size };
    w.growth = { requests: 0, bytes: 0, firstAt: null };
    const end = performance.now();
    const ms = end - t0;
    this.quietUntil = quietUntil(this.policy, this.quietUntil, end, ms);
    this.metrics.snapshots++;
    this.metrics.snapshotSeconds.observe(ms / 1000);
    return meta;
  }

  /** What the snapshot policy says about `w` now (`now`: performance.now()). */
  verdict(w: WorkerNode, now: number): SnapshotVerdict {
    return snapshotVerdict(this.policy, w.growth, now, this.quietUntil);
  }

  /** Checkpoint that reports failures to the logger instead of throwing (the log still has it all). */
  async tryCheckpoint(w: WorkerNode, reason: SnapshotReason): Promise<void> {
    try {
      await this.checkpoint(w, reason);
    } catch (error) {
      this.snapshotFailed(w, error);
    }
  }

  /** {@link checkpointNow}, reporting failures to the logger. */
  tryCheckpointNow(w: WorkerNode, reason: SnapshotReason): void {
    try {
      this.checkpointNow(w, reason);
    } catch (error) {
      this.snapshotFailed(w, error);
    }
  }

  private snapshotFailed(w: WorkerNode, error: unknown): void {
    // Back off: the next attempt comes after as much growth again.
    w.growth = { requests: 0, bytes: 0, firstAt: null };
    this.log({ type: 'snapshot_failed', machine: w.name, error });
  }
}
