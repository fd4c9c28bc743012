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

/**
 * What the loop asks of its owner: process a batch synchronously (step every request, pass the
 * commit point, release replies) and, when that reports a crash, handle it asynchronously.
 */
export interface BatchProcessor<W> {
  /**
   * Steps `batch` in order and returns the index of a request whose step crashed (the requests
   * after it are put back at the head of the queue), or -1. Replies are released inside, after
   * the batch's commit point.
   */
  processBatch(batch: Request<W>[]): { crashed: number; handle?: () => Promise<void> };
}

export interface EventLoopOptions {
  /** Maximum queued requests; beyond it enqueue throws {@link QueueFullError}. Default 1024. */
  queueCapacity?: number;
  /** Maximum requests stepped between two commit points. Default 512. */
  maxBatch?: number;
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

  constructor(private readonly processor: BatchProcessor<W>, options: EventLoopOptions = {}) {
    this.capacity = options.queueCapacity ?? 1024;
    this.maxBatch = options.maxBatch ?? 512;
    if (!Number.isInteger(this.capacity) || this.capacity < 1) throw new RangeError('queueCapacity must be an integer >= 1');
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1) throw new RangeError('maxBatch must be an integer >= 1');
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
      const { crashed, handle } = this.processor.processBatch(batch);
      if (crashed >= 0) {
        const rest = batch.slice(crashed + 1);
        for (const r of rest) r.status = 'queued';
        this.items.splice(this.head, 0, ...rest);
        this.live += rest.length;
      }
      if (handle) {
        this.exclusive(handle).catch((err: unknown) => this.onError?.(err));
        return;
      }
    }
    this.schedule();
  };
}
