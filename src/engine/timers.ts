import { decodeCbor } from '../encoding/cbor.js';
import { MachineCrashedError, describe } from '../errors.js';
import type { TimerCommand } from '../model/machine.js';
import type { TimerChange, TimerRow } from '../storage/rows.js';
import type { EventLoop } from './event-loop.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { EntityPending, Pending } from './pending.js';
import type { Persistence } from './persistence.js';
import type { WorkerNode } from './runtime-tree.js';
import { MAX_TIMER_MS } from './snapshot-scheduler.js';
import { prepareTimerCommands, type PreparedTimer } from './timer-commands.js';

/** Most due timers queued per look at the table. */
const DUE_PER_LOOK = 256;
/** After a delivery failed for a reason other than a crash (storage, machine stopped): look again. */
const RETRY_MS = 1000;
/** When more timers are due than were queued (queue full, or the look's limit). */
const SOON_MS = 5;

/** What a delivery in flight carries: its row, so the commit that delivers it removes exactly that row. */
export interface TimerDelivery {
  readonly row: number;
  readonly key: string;
  readonly dueMs: number;
}

interface InFlight {
  readonly row: number;
  readonly pending: Pending;
  /** The timer was cancelled or set again after this delivery was queued: it must not be delivered. */
  obsolete: boolean;
}

const keyOf = (machine: string, timer: string): string => `${machine}\0${timer}`;

/**
 * Durable timers. Their table is the truth: a timer is written in the commit of the request that
 * set it and removed in the commit of the request that delivered its input, so it fires once,
 * late after a crash but never lost and never twice. Replay ignores timer commands (the table
 * already holds their effect). In memory there is one Node.js timer, for the soonest due; due
 * timers are queued as requests of their machine, in due order, at most {@link DUE_PER_LOOK}
 * per look, so pending timers cost nothing until due.
 */
export class Timers {
  private changes: TimerChange[] = [];
  private fired: number[] = [];
  private readonly inFlight = new Map<string, InFlight>();
  private armed: ReturnType<typeof setTimeout> | null = null;
  private armedFor = Infinity;
  private running = false;
  private batchNow = 0;

  constructor(
    private readonly persistence: Persistence,
    private readonly loop: EventLoop<WorkerNode>,
    /** The machine a timer's row names (an entity is woken for it). */
    private readonly workers: { get(name: string): WorkerNode | undefined },
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /** Starts delivering: what fell due while the application was down is queued now, in due order. */
  start(): void {
    this.running = true;
    this.look();
  }

  /** Stops delivering (shutdown). Pending timers stay in the table for the next start. */
  stop(): void {
    this.running = false;
    this.disarm();
  }

  /** Starts a batch. */
  begin(): void {
    if (this.changes.length > 0) this.changes = [];
    if (this.fired.length > 0) this.fired = [];
    this.batchNow = 0;
  }

  /** Whether `r`, a timer's delivery, must be skipped: its timer was cancelled or set again since it was queued. */
  obsolete(r: Pending): boolean {
    const f = this.inFlight.get(r.timer!.key);
    return f === undefined || f.pending !== r || f.obsolete;
  }

  /**
   * Checks a step's timer commands (inside the step's crash boundary: throws TypeError). A
   * read-only input is never logged, so it cannot carry a durable effect.
   */
  prepare(r: Pending, commands: readonly TimerCommand[]): PreparedTimer[] {
    if (r.logged === null) throw new TypeError(`a read-only input of ${r.target.name} cannot set or cancel timers (it is never logged)`);
    if (this.batchNow === 0) this.batchNow = Date.now();
    return prepareTimerCommands(r.target.name, commands, this.batchNow);
  }

  /** Records a stepped request's timer commands for the batch's commit; voids deliveries they overtake. */
  record(machine: string, prepared: readonly PreparedTimer[], seq: number): void {
    for (const p of prepared) {
      this.changes.push(p.kind === 'set' ? { kind: 'set', machine, timer: p.timer, dueMs: p.dueMs, input: p.input, seq } : { kind: 'cancel', machine, timer: p.timer });
      const f = this.inFlight.get(keyOf(machine, p.timer));
      if (f) f.obsolete = true;
    }
  }

  /** A delivery was stepped: its row goes in this batch's commit. */
  delivered(r: Pending): void {
    const t = r.timer!;
    this.fired.push(t.row);
    this.metrics.timerLagSeconds.observe(Math.max(0, Date.now() - t.dueMs) / 1000);
  }

  /** The batch's timer rows to commit. */
  get firedTimers(): readonly number[] {
    return this.fired;
  }

  get timerChanges(): readonly TimerChange[] {
    return this.changes;
  }

  /** After the batch's commit: arm for timers it set. */
  committed(): void {
    for (const c of this.changes) if (c.kind === 'set') this.armAt(c.dueMs);
  }

  /** After a failed commit: nothing of the batch happened; look at the table again soon. */
  commitFailed(): void {
    this.armAt(Date.now() + RETRY_MS);
  }

  /** A delivery crashed its machine: its input is in failed_requests, and it is not delivered again. */
  crashed(r: Pending): void {
    if (r.timer && !this.persistence.dropTimer(r.timer.row)) this.armAt(Date.now() + RETRY_MS);
  }

  /** Pending timers (for metrics). */
  pendingCount(): number {
    return this.persistence.timerCount();
  }

  private disarm(): void {
    if (this.armed) clearTimeout(this.armed);
    this.armed = null;
    this.armedFor = Infinity;
  }

  private armAt(dueMs: number): void {
    if (!this.running || (this.armed && dueMs >= this.armedFor)) return;
    this.disarm();
    this.armedFor = dueMs;
    this.armed = setTimeout(() => this.look(), Math.min(Math.max(dueMs - Date.now(), 0), MAX_TIMER_MS));
    this.armed.unref();
  }

  /** Queues the timers due now (not already on their way) and arms for the next. */
  private look(): void {
    this.disarm();
    if (!this.running) return;
    const now = Date.now();
    let rows: TimerRow[];
    try {
      rows = this.persistence.dueTimers(now, DUE_PER_LOOK + this.inFlight.size);
    } catch (error) {
      this.log({ type: 'timers_failed', error });
      return this.armAt(now + RETRY_MS);
    }
    let more = rows.length === DUE_PER_LOOK + this.inFlight.size;
    for (const row of rows) {
      const key = keyOf(row.machine, row.timer);
      const f = this.inFlight.get(key);
      if (f) {
        // Its delivery is on its way; or an overtaken one still is, and this row waits for it to settle.
        if (f.row !== row.id) more = true;
        continue;
      }
      // A machine no longer in the tree: its timers wait in the table for it.
      const w = this.workers.get(row.machine);
      if (!w) continue;
      let input: unknown;
      try {
        input = decodeCbor(row.input);
      } catch (error) {
        this.log({ type: 'timers_failed', error: new Error(`timer ${JSON.stringify(row.timer)} of ${row.machine} has an undecodable input and stays in the table: ${describe(error)}`) });
        continue;
      }
      if (!this.enqueue(w, row, key, input)) {
        more = true;
        break;
      }
    }
    if (more) return this.armAt(now + SOON_MS);
    let next: number | null;
    try {
      next = this.persistence.nextTimerDue(now);
    } catch {
      next = now + RETRY_MS;
    }
    if (next !== null) this.armAt(next);
  }

  private enqueue(w: WorkerNode, row: TimerRow, key: string, input: unknown): boolean {
    const settled = (): boolean => {
      const f = this.inFlight.get(key);
      if (f?.pending !== req) return false;
      this.inFlight.delete(key);
      return !f.obsolete;
    };
    const req = new (w.family ? EntityPending : Pending)(
      w,
      input,
      false,
      () => {
        if (settled()) this.metrics.timersFired++;
      },
      (err) => {
        settled();
        // A crash removed the row (crashed()); anything else left it: deliver it again later.
        if (!(err instanceof MachineCrashedError)) this.armAt(Date.now() + RETRY_MS);
      },
      this.metrics,
    );
    req.timer = { row: row.id, key, dueMs: row.dueMs };
    try {
      this.loop.enqueue(req);
    } catch {
      return false;
    }
    this.inFlight.set(key, { row: row.id, pending: req, obsolete: false });
    return true;
  }
}
