import { ApplicationStoppedError } from '../errors.js';
import type { SnapshotMeta } from '../storage/rows.js';
import type { EventLoop } from './event-loop.js';
import type { Persistence } from './persistence.js';
import type { WorkerNode } from './runtime-tree.js';

/** Longest delay a Node.js timer holds; longer ones fire after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * When policy snapshots run: after the batches that grow a machine's log, from a timer for the
 * age trigger (which must fire when writes stop), and when the throttle lets a deferred one
 * through. The policy itself is pure ({@link snapshotVerdict}); this class owns the timers.
 */
export class SnapshotScheduler {
  private ageTimer: NodeJS.Timeout | null = null;
  /** Wakes deferred snapshots when the throttle lets them through. */
  private throttleWake: NodeJS.Timeout | null = null;
  /** Machines whose policy fired while the throttle held it: candidates after every batch. */
  private readonly deferred = new Set<WorkerNode>();
  private stopped = false;

  constructor(
    private readonly persistence: Persistence,
    private readonly loop: EventLoop<WorkerNode>,
    private readonly workers: readonly WorkerNode[],
  ) {}

  /** Snapshots each running one of `targets` now, between batches (App.checkpoint). */
  checkpointNow(targets: readonly WorkerNode[], ended: () => boolean): Promise<SnapshotMeta[]> {
    return this.loop.exclusive(async () => {
      if (ended()) throw new ApplicationStoppedError();
      const out: SnapshotMeta[] = [];
      for (const w of targets) {
        if (w.status !== 'running') continue;
        const meta = await this.persistence.checkpoint(w, 'checkpoint');
        if (meta) out.push(meta);
      }
      return out;
    });
  }

  start(): void {
    const { everyMs } = this.persistence.policy;
    if (everyMs <= 0) return;
    this.ageTimer = setInterval(() => this.runDue(this.workers), Math.max(50, everyMs / 4));
    this.ageTimer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.ageTimer) clearInterval(this.ageTimer);
    if (this.throttleWake) clearTimeout(this.throttleWake);
  }

  /**
   * After a batch committed: the machines it wrote whose policy fires now are snapshotted
   * before the next batch. A small state is encoded at once; a large one in slices under the
   * loop's lock, so steps wait but the Node.js event loop (I/O, timers) does not stall for the
   * whole encoding.
   */
  afterCommit(written: Iterable<WorkerNode>): void {
    const sliced: WorkerNode[] = [];
    for (const w of this.due(written)) {
      if (this.persistence.isLarge(w)) sliced.push(w);
      else this.persistence.tryCheckpointNow(w, 'policy');
    }
    this.underLock(sliced);
  }

  /** From a timer, so possibly while exclusive work is under way: always through the loop's lock. */
  private runDue(candidates: Iterable<WorkerNode>): void {
    if (this.stopped) return;
    this.underLock(this.due(candidates));
  }

  /**
   * The machines among `candidates`, and those deferred earlier, whose snapshot policy fires
   * now. Deferred machines stay candidates until they are snapshotted, so a machine that writes
   * rarely is not starved by a busy one that keeps using the shared budget; and a timer wakes
   * them when the throttle lets them through, so they do not wait for the next write.
   */
  private due(candidates: Iterable<WorkerNode>): WorkerNode[] {
    const now = performance.now();
    const due: WorkerNode[] = [];
    const seen = new Set<WorkerNode>();
    const consider = (w: WorkerNode): void => {
      if (seen.has(w)) return;
      seen.add(w);
      if (w.status !== 'running' || w.snapshotPending) {
        this.deferred.delete(w);
        return;
      }
      const verdict = this.persistence.verdict(w, now);
      if (verdict === 'deferred') this.deferred.add(w);
      else this.deferred.delete(w);
      if (verdict === 'due') due.push(w);
    };
    for (const w of this.deferred) consider(w);
    for (const w of candidates) consider(w);
    if (this.deferred.size > 0 && !this.throttleWake && !this.stopped) {
      const delay = Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(this.persistence.quietUntil - now)));
      this.throttleWake = setTimeout(() => {
        this.throttleWake = null;
        this.runDue(this.workers);
      }, delay);
      this.throttleWake.unref();
    }
    return due;
  }

  private underLock(workers: WorkerNode[]): void {
    if (workers.length === 0) return;
    for (const w of workers) w.snapshotPending = true;
    void this.loop.exclusive(async () => {
      for (const w of workers) {
        w.snapshotPending = false;
        if (w.status === 'running' && !this.stopped) await this.persistence.tryCheckpoint(w, 'policy');
      }
    });
  }
}
