import { cbor } from '../encoding/cbor.js';
import { ConfigError, LogTruncatedError, SubscriberTooSlowError, UnknownMachineError } from '../errors.js';
import type { Pending } from './pending.js';
import type { Persistence } from './persistence.js';
import type { WorkerNode } from './runtime-tree.js';
import type { ChangeEvent, ChangeListener, SubscribeOptions, Subscription, SubscriptionEnd } from './change-feed.js';

/** Log rows read per step while catching up, between which other work runs. */
const ROWS_PER_STEP = 64;

class Sub implements Subscription {
  lastSeq: number;
  readonly ended: Promise<SubscriptionEnd>;
  /** Live events that arrived while catching up or while the listener was busy. */
  private queue: ChangeEvent[] = [];
  private pumping = false;
  private catchingUp = true;
  private finished = false;
  private finish!: (end: SubscriptionEnd) => void;

  constructor(
    readonly machine: string,
    readonly fromSeq: number,
    private readonly maxBuffered: number,
    private readonly listener: ChangeListener,
    private readonly onEnd: (s: Sub) => void,
  ) {
    this.lastSeq = fromSeq - 1;
    this.ended = new Promise((r) => (this.finish = r));
  }

  get active(): boolean {
    return !this.finished;
  }

  close(): void {
    this.end({ reason: 'closed' });
  }

  end(end: SubscriptionEnd): void {
    if (this.finished) return;
    this.finished = true;
    this.queue = [];
    this.onEnd(this);
    this.finish(end);
  }

  /** A live event: queued, delivered in order once catching up is over. */
  push(e: ChangeEvent): void {
    if (this.finished || e.seq < this.fromSeq) return;
    if (this.queue.length >= this.maxBuffered) return this.end({ reason: 'error', error: new SubscriberTooSlowError(this.machine, this.lastSeq, this.maxBuffered) });
    this.queue.push(e);
    if (!this.catchingUp) void this.pump();
  }

  /** Delivers one event to the listener, awaiting it; false once the subscription ended. */
  async deliver(e: ChangeEvent): Promise<boolean> {
    if (this.finished) return false;
    try {
      await this.listener(e);
    } catch (error) {
      this.end({ reason: 'error', error });
      return false;
    }
    // Frozen once ended, as the error reported it: the event in hand when cut off comes again on resume.
    if (this.finished) return false;
    this.lastSeq = e.seq;
    return true;
  }

  /** Catching up is over: live events queued meanwhile go out now. */
  live(): void {
    this.catchingUp = false;
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length > 0 && !this.finished) {
        const e = this.queue.shift()!;
        if (e.seq <= this.lastSeq) continue; // already delivered while catching up
        if (!(await this.deliver(e))) return;
      }
    } finally {
      this.pumping = false;
    }
  }
}

/**
 * Change feeds: every committed state-changing request of a machine, in seq order, after its
 * commit. A subscriber that starts in the past is served from storage first: the machine's state
 * as of `fromSeq - 1` is rebuilt privately (snapshot + replay, as `inspect --at` does) and the
 * log after it is stepped again to recompute each output (steps are deterministic); live events
 * that commit meanwhile wait in its queue. The engine never waits for a listener.
 */
export class Subscriptions {
  private readonly byMachine = new Map<string, Set<Sub>>();

  constructor(
    private readonly persistence: Persistence,
    private readonly workers: ReadonlyMap<string, WorkerNode>,
  ) {}

  subscribe(name: string, options: SubscribeOptions, listener: ChangeListener): Subscription {
    const w = this.workers.get(name);
    if (!w) throw new UnknownMachineError(name);
    if (typeof listener !== 'function') throw new ConfigError('subscribe needs a listener function');
    const maxBuffered = options.maxBuffered ?? 10_000;
    if (!Number.isSafeInteger(maxBuffered) || maxBuffered < 1) throw new ConfigError(`maxBuffered must be an integer >= 1, got ${String(maxBuffered)}`);
    const liveFrom = w.seq + 1;
    const fromSeq = options.fromSeq ?? liveFrom;
    if (!Number.isSafeInteger(fromSeq) || fromSeq < 1) throw new ConfigError(`fromSeq must be an integer >= 1, got ${String(fromSeq)}`);
    let set = this.byMachine.get(name);
    if (!set) this.byMachine.set(name, (set = new Set()));
    const sub = new Sub(name, fromSeq, maxBuffered, listener, (s) => this.byMachine.get(name)?.delete(s));
    set.add(sub);
    if (fromSeq >= liveFrom) sub.live();
    else void this.catchUp(w, sub, liveFrom - 1);
    return sub;
  }

  /** Whether anyone follows `w` (the hot path asks this before building any event). */
  follows(w: WorkerNode): boolean {
    const set = this.byMachine.get(w.name);
    return set !== undefined && set.size > 0;
  }

  /** After a successful commit: the events of the requests it made durable. */
  committed(done: readonly Pending[]): void {
    if (this.byMachine.size === 0) return;
    for (const r of done) {
      if (r.logged === null || r.error !== undefined || r.seq === 0 || !this.follows(r.target)) continue;
      const e: ChangeEvent = { machine: r.target.name, seq: r.seq, input: cbor.decode(r.logged), output: copyOutput(r.output) };
      for (const s of this.byMachine.get(r.target.name)!) s.push(e);
    }
  }

  /** Ends every subscription (the application stopped). */
  stop(): void {
    for (const set of this.byMachine.values()) for (const s of [...set]) s.end({ reason: 'stopped' });
  }

  private async catchUp(w: WorkerNode, sub: Sub, upto: number): Promise<void> {
    try {
      const from = sub.fromSeq;
      const oldest = this.persistence.oldestResumableSeq(w.name);
      if (from < oldest) throw new LogTruncatedError(w.name, from, oldest);
      let { state, seq } = this.persistence.rebuildAt(w, from - 1);
      while (seq < upto && sub.active) {
        const rows = this.persistence.logRowsAfter(w.name, seq, ROWS_PER_STEP);
        if (rows.length === 0 || rows[0]!.firstSeq > seq + 1) throw new LogTruncatedError(w.name, seq + 1, this.persistence.oldestResumableSeq(w.name));
        for (const row of rows) {
          const inputs = cbor.decodeMultiple(row.requests) as unknown[];
          for (let i = seq + 1 - row.firstSeq; i < inputs.length && seq < upto; i++) {
            // Stepped on a private state: outputs are recomputed exactly as they were first given.
            const result = w.machine.step(cbor.decode(cbor.encode(inputs[i])), state) as readonly [unknown, unknown];
            state = result[0];
            seq = row.firstSeq + i;
            if (!(await sub.deliver({ machine: w.name, seq, input: inputs[i], output: copyOutput(result[1]) }))) return;
          }
        }
        await new Promise((r) => setImmediate(r));
      }
      sub.live();
    } catch (error) {
      sub.end({ reason: 'error', error });
    }
  }
}

function copyOutput(output: unknown): unknown {
  try {
    return cbor.decode(cbor.encode(output));
  } catch {
    return undefined;
  }
}
