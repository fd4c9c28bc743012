import { QueueFullError } from '../errors.js';

/**
 * One request in flight. `status` moves queued -> taken -> (settled), or queued -> cancelled
 * when its call times out before the loop reaches it.
 */
export interface Request<W> {
  readonly target: W;
  readonly input: unknown;
  status: 'queued' | 'taken' | 'cancelled' | 'settled';
  settle(err: unknown, output?: unknown): void;
}

/** What a batch left for the loop to do. */
export interface BatchOutcome {
  /**
   * Index of the request whose step crashed, or -1. The requests after it were not stepped:
   * they go back to the head of the queue.
   */
  readonly crashedAt: number;
  /** The supervision a crash (or a failed commit) needs; run under {@link EventLoop.exclusive}. */
  readonly supervise?: () => Promise<void>;
}

/**
 * What the loop asks of its owner: run a batch synchronously (step every request, pass the
 * commit point, release replies), saying what is left to supervise.
 */
export interface BatchRunner<W> {
  runBatch(batch: Request<W>[]): BatchOutcome;
}

/** Limits of the loop, already checked (see {@link resolveApplicationOptions}). */
export interface EventLoopLimits {
  /** Most queued requests; beyond it enqueue throws {@link QueueFullError}. */
  readonly queueCapacity: number;
  /** Most requests stepped between two commit points. */
  readonly maxBatch: number;
}

/**
 * The single event loop: a bounded FIFO drained in batches on the Node.js event loop, one batch
 * per macrotask so I/O (HTTP, timers) interleaves with processing. Asynchronous work that must
 * not interleave with steps (restarts, checkpoints, shutdown) runs through {@link exclusive}.
 */
export class EventLoop<W> {
  readonly capacity: number;
  readonly maxBatch: number;
  private items: (Request<W> | undefined)[] = [];
  private head = 0;
  private live = 0;
  private scheduled = false;
  private waiting = 0;
  private lockChain: Promise<void> = Promise.resolve();
  private idleWaiters: (() => void)[] = [];
  /** Batch sizes seen, for metrics. */
  onBatch?: (size: number) => void;
  /** Errors escaping exclusive work started by the loop itself (a bug if ever called). */
  onError?: (err: unknown) => void;

  constructor(private readonly runner: BatchRunner<W>, limits: EventLoopLimits) {
    this.capacity = limits.queueCapacity;
    this.maxBatch = limits.maxBatch;
  }

  /** Requests waiting (not counting cancelled ones). */
  get depth(): number {
    return this.live;
  }

  /** Admits a request or throws {@link QueueFullError}; never drops silently. */
  enqueue(req: Request<W>): void {
    if (this.live >= this.capacity) throw new QueueFullError(this.capacity);
    this.items.push(req);
    this.live++;
    this.schedule();
  }

  /** Removes a queued request (call timeout): it will never be applied. */
  cancel(req: Request<W>): boolean {
    if (req.status !== 'queued') return false;
    req.status = 'cancelled';
    this.live--;
    if (this.items.length - this.head > 2 * this.capacity) this.compact();
    return true;
  }

  /** Takes every queued request out (shutdown), in order. */
  takeAll(): Request<W>[] {
    const out: Request<W>[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      const r = this.items[i];
      if (r && r.status === 'queued') out.push(r);
    }
    this.items = [];
    this.head = 0;
    this.live = 0;
    return out;
  }

  /**
   * Runs `fn` with batch processing paused, after any exclusive work already pending. Requests
   * keep queueing meanwhile and are served after it.
   */
  exclusive<T>(fn: () => Promise<T> | T): Promise<T> {
    this.waiting++;
    const prev = this.lockChain;
    let release!: () => void;
    this.lockChain = new Promise((r) => (release = r));
    return (async () => {
      try {
        await prev;
        return await fn();
      } finally {
        this.waiting--;
        release();
        this.schedule();
      }
    })();
  }

  /** Resolves when the queue is empty and no exclusive work is pending. */
  idle(): Promise<void> {
    if (this.live === 0 && this.waiting === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private compact(): void {
    const kept: Request<W>[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      const r = this.items[i];
      if (r && r.status === 'queued') kept.push(r);
    }
    this.items = kept;
    this.head = 0;
  }

  private schedule(): void {
    if (this.scheduled || this.waiting > 0) return;
    if (this.live === 0) {
      this.notifyIdle();
      return;
    }
    this.scheduled = true;
    setImmediate(this.drain);
  }

  private notifyIdle(): void {
    if (this.idleWaiters.length === 0 || this.waiting > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private readonly drain = (): void => {
    this.scheduled = false;
    if (this.waiting > 0) return;
    const batch: Request<W>[] = [];
    while (batch.length < this.maxBatch && this.head < this.items.length) {
      const r = this.items[this.head];
      this.items[this.head++] = undefined;
      if (!r || r.status !== 'queued') continue;
      r.status = 'taken';
      this.live--;
      batch.push(r);
    }
    if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    if (batch.length > 0) {
      this.onBatch?.(batch.length);
      const { crashedAt, supervise } = this.runner.runBatch(batch);
      if (crashedAt >= 0) {
        const rest = batch.slice(crashedAt + 1);
        for (const r of rest) r.status = 'queued';
        this.items.splice(this.head, 0, ...rest);
        this.live += rest.length;
      }
      if (supervise) {
        this.exclusive(supervise).catch((err: unknown) => this.onError?.(err));
        return;
      }
    }
    this.schedule();
  };
}
