import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';

/** Longest a wake waits for the queue to empty before it goes anyway (ms), so steady load cannot stall warming. */
export const MAX_WARM_DEFER_MS = 10;

/**
 * Background warming of a partitioned store after it opens (`warm: true`): each partition is
 * woken in turn by a read-only request (nothing is logged), so later requests find their
 * partition in memory. One partition at a time, yielding to the event loop between them: a
 * request that arrives meanwhile waits for at most the one partition being loaded (a wake is
 * synchronous at the door), not for the whole store, and partitions it needs are woken on
 * demand as without warming. Requests go first: while any is queued, the next wake waits (up to
 * {@link MAX_WARM_DEFER_MS}), so the first request after a restart does not wait behind warming.
 */
export class PartitionWarmer {
  private stopped = false;
  private run: Promise<void> | null = null;
  /** Partitions warmed so far (for tests and benchmarks). */
  warmed = 0;

  constructor(
    private readonly wake: (partition: number) => Promise<unknown>,
    private readonly partitions: number,
    private readonly busy: () => boolean,
  ) {}

  /** Starts warming, in the background. */
  start(): void {
    this.run ??= this.warm();
  }

  /** Resolves once every partition is awake (or warming stopped); at once if it never started. */
  get done(): Promise<void> {
    return this.run ?? Promise.resolve();
  }

  private async warm(): Promise<void> {
    for (let i = 0; i < this.partitions && !this.stopped; i++) {
      await yieldToLoop();
      for (let waited = 0; this.busy() && waited < MAX_WARM_DEFER_MS && !this.stopped; waited++) await sleep(1);
      if (this.stopped) return;
      try {
        await this.wake(i);
        this.warmed++;
      } catch {
        // Not fatal: a partition that cannot be loaded refuses its own requests with the cause
        // (RecoveryError, StartError) and is tried again on its next one; closing ends warming.
      }
    }
  }

  /** Stops warming (the store is closing); a wake already sent finishes or is refused. */
  stop(): void {
    this.stopped = true;
  }
}
