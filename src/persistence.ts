import { encodeCbor } from './codec.js';
import { StorageError } from './errors.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { recoverState, type RecoveryReport } from './recovery.js';
import type { WorkerNode } from './runtime-tree.js';
import { snapshotDue, type ResolvedSnapshotPolicy } from './snapshot-policy.js';
import type { SnapshotMeta, Store } from './store.js';

export type SnapshotReason = 'policy' | 'terminate' | 'restart' | 'checkpoint';

/** Connects running workers to the store: restoring their state and checkpointing it. */
export class Persistence {
  constructor(
    readonly store: Store,
    readonly policy: ResolvedSnapshotPolicy,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {}

  /** Rebuilds `w`'s state from its snapshot and log (throws RecoveryError; deletes nothing). */
  restore(w: WorkerNode): RecoveryReport {
    const { state, report } = recoverState(this.store, w.name, w.machine);
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
    w.growth = { requests: report.replayed, bytes: report.replayedBytes, firstAt: report.replayed > 0 ? Date.now() : null };
    return report;
  }

  /**
   * Writes a snapshot of `w`'s current state if it has changed since the last one. Never call
   * this for a crashed machine: its memory may be corrupt. Throws StorageError.
   */
  checkpoint(w: WorkerNode, reason: SnapshotReason): SnapshotMeta | null {
    if (w.seq === w.snapshotSeq && w.growth.requests === 0) return null;
    const t0 = performance.now();
    let bytes: Uint8Array;
    try {
      bytes = encodeCbor(w.state);
    } catch (err) {
      throw new StorageError(`state of ${w.name} is not encodable as CBOR: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const meta = this.store.writeSnapshot(w.name, w.seq, w.machine.version, bytes, reason, this.policy.keepSnapshots, this.policy.retainLog);
    w.snapshotSeq = w.seq;
    w.snapshot = { seq: meta.seq, takenAt: meta.takenAt, size: meta.size };
    w.growth = { requests: 0, bytes: 0, firstAt: null };
    this.metrics.snapshots++;
    this.metrics.snapshotSeconds.observe((performance.now() - t0) / 1000);
    return meta;
  }

  /** Snapshot by policy after a commit; a failure is reported, not thrown (the log still has it all). */
  maybeSnapshot(w: WorkerNode, now: number): void {
    if (!snapshotDue(this.policy, w.growth, now)) return;
    this.tryCheckpoint(w, 'policy');
  }

  /** Checkpoint that reports failures to the logger instead of throwing. */
  tryCheckpoint(w: WorkerNode, reason: SnapshotReason): void {
    try {
      this.checkpoint(w, reason);
    } catch (error) {
      // Back off: the next attempt comes after as much growth again.
      w.growth = { requests: 0, bytes: 0, firstAt: null };
      this.log({ type: 'snapshot_failed', machine: w.name, error });
    }
  }
}
