import type { Persistence } from './persistence.js';
import type { WorkerNode } from './runtime-tree.js';

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

  constructor(
    private readonly persistence: Persistence,
    /** Runs `fn` under the loop's lock after `ms`; returns its cancel. */
    private readonly later: (ms: number, fn: () => Promise<void>) => () => void,
  ) {}

  /** Puts `workers` in backoff for `delayMs`; then `restart` runs with those still waiting (a stop or another restart may have taken some). */
  wait(workers: readonly WorkerNode[], delayMs: number, restart: (due: readonly WorkerNode[]) => Promise<void>): void {
    let settle!: () => void;
    const restarted = new Promise<void>((resolve) => (settle = resolve));
    const wait: Wait = { cancel: () => undefined, settle };
    for (const w of workers) {
      w.status = 'backoff';
      w.restartAt = Date.now() + delayMs;
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

  /** Ends every wait (a stop does not wait them out); returns the workers that were waiting, now stopped. */
  endAll(): WorkerNode[] {
    const workers = [...this.waits.keys()];
    for (const w of workers) {
      this.end(w);
      w.status = 'stopped';
      this.persistence.setStatus(w, 'stopped');
    }
    return workers;
  }
}
