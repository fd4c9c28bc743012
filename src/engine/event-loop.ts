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
  /**
   * A promise when `req` should wait before it is stepped (its machine prepares derived data in
   * the background, see `MachineDefinition.whenReady`); null to step it now.
   */
  readiness?(req: Request<W>): PromiseLike<unknown> | null | undefined;
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
  /**
   * Requests held back, per target, in order: one its runner said must wait, and every later one
   * of the same target, so each target's requests are still stepped in the order they came.
   * Still `queued` (they can be cancelled) but out of {@link items}; `held` counts the live ones.
   */
  private parked = new Map<W, Request<W>[]>();
  private held = new Set<Request<W>>();
  /** Requests already parked once: a request waits at most once, so a readiness never settling for good cannot starve it. */
  private waited = new WeakSet<Request<W>>();
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
    return this.live + this.held.size;
  }

  /** Admits a request or throws {@link QueueFullError}; never drops silently. */
  enqueue(req: Request<W>): void {
    if (this.depth >= this.capacity) throw new QueueFullError(this.capacity);
    this.items.push(req);
    this.live++;
    this.schedule();
  }

  /** Removes a queued request (call timeout): it will never be applied. */
  cancel(req: Request<W>): boolean {
    if (req.status !== 'queued') return false;
    req.status = 'cancelled';
    // A parked one stays in its list, skipped when the list goes back into the queue.
    if (this.held.delete(req)) return true;
    this.live--;
    if (this.items.length - this.head > 2 * this.capacity) this.compact();
    return true;
  }

  /** Takes every request still waiting for `target`, parked or queued: a stop refuses them rather than wait out a restart backoff. */
  takeFor(target: W): Request<W>[] {
    const out = (this.parked.get(target) ?? []).filter((q) => this.held.has(q));
    for (let i = this.head; i < this.items.length; i++) {
      const r = this.items[i];
      if (r && r.target === target && r.status === 'queued') out.push(r);
    }
    for (const r of out) this.cancel(r);
    this.parked.delete(target);
    this.schedule();
    return out;
  }

  /** Takes every queued request out (shutdown), in order. */
  takeAll(): Request<W>[] {
    const out: Request<W>[] = [...this.held];
    this.held.clear();
    this.parked.clear();
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
  /** Runs `fn` exclusively (between batches) after `ms`; returns what cancels it. Its errors go to {@link onError}. */
  after(ms: number, fn: () => Promise<void>): () => void {
    const timer = setTimeout(() => void this.exclusive(fn).catch((err: unknown) => this.onError?.(err)), ms);
    return () => clearTimeout(timer);
  }

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
    if (this.depth === 0 && this.waiting === 0) return Promise.resolve();
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
    if (this.idleWaiters.length === 0 || this.waiting > 0 || this.held.size > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * Parks `r` (already taken out of {@link items}) when its target has requests parked, or when
   * the runner says it must wait; returns whether it did. Parked requests go back to the head
   * of the queue, in order, when the wait settles.
   */
  private mustWait(r: Request<W>): boolean {
    const list = this.parked.get(r.target);
    if (list) {
      list.push(r);
    } else {
      if (this.waited.has(r)) return false;
      let wait: PromiseLike<unknown> | null | undefined;
      try {
        wait = this.runner.readiness?.(r);
      } catch {
        // A failing readiness only means no wait: the step itself is correct either way.
      }
      if (!wait) return false;
      this.waited.add(r);
      const parked = [r];
      this.parked.set(r.target, parked);
      const resume = (): void => {
        if (this.parked.get(r.target) !== parked) return; // taken by a shutdown meanwhile
        this.parked.delete(r.target);
        const back = parked.filter((q) => this.held.delete(q));
        this.items.splice(this.head, 0, ...back);
        this.live += back.length;
        this.schedule();
      };
      wait.then(resume, resume);
    }
    this.live--;
    this.held.add(r);
    return true;
  }

  private readonly drain = (): void => {
    this.scheduled = false;
    if (this.waiting > 0) return;
    const batch: Request<W>[] = [];
    while (batch.length < this.maxBatch && this.head < this.items.length) {
      const r = this.items[this.head];
      this.items[this.head++] = undefined;
      if (!r || r.status !== 'queued') continue;
      if (this.mustWait(r)) continue;
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
