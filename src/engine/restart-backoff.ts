import { backoffDelay, consecutiveCrashes } from '../model/backoff.js';
import type { Persistence } from './persistence.js';
import type { WorkerNode } from './runtime-tree.js';

/**
 * How long until `w`'s delayed restart, in whole ms (MachineRestartingError.retryAfterMs). On
 * the monotonic clock: a wall-clock step must not make it negative or hours long.
 */
export function retryAfterMs(w: WorkerNode): number {
  return Math.max(0, Math.ceil(w.restartAt - performance.now()));
}

/**
 * The delay before restarting `w` after a crash (or a failed start: it ran 0 ms), counting it
 * as one more in a row; 0 (at once, as OTP) without backoff.
 */
export function nextBackoff(w: WorkerNode, ranMs: number): number {
  if (!w.backoff) return 0;
  w.consecutiveCrashes = consecutiveCrashes(w.consecutiveCrashes, ranMs, w.backoff);
  return backoffDelay(w.consecutiveCrashes, w.backoff, Math.random());
}

interface Wait {
  cancel: () => void;
  settle: () => void;
}

/**
 * Workers waiting for a delayed restart (WorkerOptions.backoff): their status is `backoff`,
 * `restartAt` says when, and `restarted` settles when the wait ends, which is when their parked
 * requests go on. The loop serves every other machine meanwhile.
 */
export class RestartBackoffs {
  private readonly waits = new Map<WorkerNode, Wait>();
  /** Set by {@link closeAll}: the application stops, so a wait begun now (a crash during the drain) ends at once. */
  private closed: ((workers: readonly WorkerNode[]) => void) | null = null;

  constructor(
    private readonly persistence: Persistence,
    /** Runs `fn` under the loop's lock after `ms`; returns its cancel. */
    private readonly later: (ms: number, fn: () => Promise<void>) => () => void,
  ) {}

  /** Puts `workers` in backoff for `delayMs`; then `restart` runs with those still waiting (a stop or another restart may have taken some). */
  wait(workers: readonly WorkerNode[], delayMs: number, restart: (due: readonly WorkerNode[]) => Promise<void>): void {
    if (this.closed) {
      // A stop does not wait out a delay, even one that began while it drained the queue.
      for (const w of workers) this.stopped(w);
      this.closed(workers);
      return;
    }
    let settle!: () => void;
    const restarted = new Promise<void>((resolve) => (settle = resolve));
    const wait: Wait = { cancel: () => undefined, settle };
    for (const w of workers) {
      w.status = 'backoff';
      w.restartAt = performance.now() + delayMs;
      w.restarted = restarted;
      this.waits.set(w, wait);
      this.persistence.setStatus(w, 'backoff');
    }
    wait.cancel = this.later(delayMs, async () => {
      const due = workers.filter((w) => this.waits.get(w) === wait);
      for (const w of due) {
        this.waits.delete(w);
        w.status = 'stopped';
      }
      try {
        if (due.length > 0) await restart(due);
      } finally {
        settle();
      }
    });
  }

  /** Ends the wait `w` is in (its whole group's): no delayed restart; its parked requests go on. */
  end(w: WorkerNode): void {
    const wait = this.waits.get(w);
    if (!wait) return;
    for (const [k, v] of this.waits) if (v === wait) this.waits.delete(k);
    wait.cancel();
    wait.settle();
  }

  /**
   * Ends every wait, and every wait begun from now on at once (a stop does not wait them out):
   * `ended` gets the workers of each, now stopped, so their waiting requests can be refused.
   */
  closeAll(ended: (workers: readonly WorkerNode[]) => void): void {
    this.closed = ended;
    const workers = [...this.waits.keys()];
    for (const w of workers) {
      this.end(w);
      this.stopped(w);
    }
    ended(workers);
  }

  private stopped(w: WorkerNode): void {
    w.status = 'stopped';
    this.persistence.setStatus(w, 'stopped');
  }
}
