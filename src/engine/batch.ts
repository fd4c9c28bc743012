import { cbor } from '../encoding/cbor.js';
import { retryAfterMs } from './restart-backoff.js';
import { ApplicationStoppedError, EncodeError, MachineCrashedError, MachineRestartingError, MachineStoppedError, StorageError, describe } from '../errors.js';
import { checkStepResult, deletesEntity, stopsNormally, timerCommands } from '../model/machine.js';
import type { EntityRegistration, LogGroup } from '../storage/rows.js';
import type { BatchOutcome, BatchRunner } from './event-loop.js';
import { prepareInputs } from './input-preparation.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { Idempotency } from './idempotency.js';
import type { Pending } from './pending.js';
import type { Persistence } from './persistence.js';
import type { WorkerNode } from './runtime-tree.js';
import type { SnapshotScheduler } from './snapshot-scheduler.js';
import type { StorageGate } from './storage-gate.js';
import type { Supervision } from './supervision.js';
import type { PreparedTimer } from './timer-commands.js';
import type { Timers } from './timers.js';
import type { Subscriptions } from './subscriptions.js';
import type { ReadableBatch } from './readable-state.js';

/** One machine's logged requests within a batch. */
interface Group {
  readonly firstSeq: number;
  readonly parts: Uint8Array[];
  /** The inputs as JSON for the readable `requests` view (null: off for this machine). */
  readonly json: string[] | null;
  bytes: number;
}

/** The crash that ended a batch early, handed to supervision after the commit point. */
interface Crash {
  readonly at: number;
  readonly error: unknown;
  /** The log encoding of the crashing input (null if it was read-only). */
  readonly logged: Uint8Array | null;
}

/**
 * One cycle of the event loop, a batch at a time: step each request, pass the commit point
 * (one group commit of every logged request), release the replies, then hand any crash to
 * supervision. Synchronous up to the hand-off, so no other request can interleave.
 */
export class BatchCycle implements BatchRunner<WorkerNode> {
  constructor(
    private readonly persistence: Persistence,
    private readonly supervision: Supervision,
    private readonly snapshots: SnapshotScheduler,
    private readonly workers: readonly WorkerNode[],
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly isEnded: () => boolean,
    private readonly gate: StorageGate,
    private readonly idempotency: Idempotency,
    private readonly timers: Timers,
    private readonly subscriptions: Subscriptions,
    private readonly readable: ReadableBatch,
  ) {}

  /** The machine's `whenReady` for a request to a running machine (see {@link BatchRunner.readiness}). */
  readiness(r: Pending): PromiseLike<unknown> | null | undefined {
    const w = r.target;
    // Its requests wait for a delayed restart (backoff), in order, as for a slow whenReady.
    if (w.status === 'backoff') return w.backoff?.whileWaiting === 'fail' ? null : w.restarted;
    // An entity waking or going to sleep: its requests wait for it, in order, as for a whenReady.
    if (w.status !== 'running') return w.transition;
    if (!w.machine.whenReady) return null;
    return w.machine.whenReady(r.input, w.state);
  }

  runBatch(batch: Pending[]): BatchOutcome {
    const { groups, crash, stopAt = -1, deleted = null } = this.step(batch);
    // A normal stop (issue 12.4) ends the batch after its request, which is answered like any other.
    const done = crash ? batch.slice(0, crash.at) : stopAt >= 0 ? batch.slice(0, stopAt + 1) : batch;
    const storageError = this.commit(groups, deleted);
    for (const r of done) this.reply(r, storageError !== null && groups.has(r.target) ? storageError : r.error);
    if (!storageError) {
      this.snapshots.afterCommit(groups.keys());
      this.subscriptions.committed(done);
    }
    // After a failed commit a machine may be left crashed (its reload failed too).
    const unreloaded = storageError !== null && this.workers.some((w) => w.status === 'crashed');
    // A normal stop whose commit failed did not happen: its machine was reloaded and keeps running.
    const stopped = stopAt >= 0 && storageError === null && !deleted ? batch[stopAt]!.target : null;
    if (!crash && !unreloaded && stopAt < 0) return { crashedAt: -1 };
    return { crashedAt: crash ? crash.at : stopAt, supervise: () => this.supervise(batch, crash, stopped) };
  }

  /** Steps every request in order, up to the first crash; numbers and groups the logged ones. */
  private step(batch: Pending[]): { groups: Map<WorkerNode, Group>; crash: Crash | null; stopAt?: number; deleted?: WorkerNode } {
    const prepared = prepareInputs(batch);
    this.gate.refuseWrites(batch);
    this.idempotency.begin(batch);
    this.timers.begin();
    this.readable.begin();
    const groups = new Map<WorkerNode, Group>();
    for (let i = 0; i < batch.length; i++) {
      const r = batch[i]!;
      const w = r.target;
      if (i === prepared.readOnlyThrewAt) {
        // readOnly() itself threw: a crash of this machine like any other.
        w.status = 'crashed';
        return { groups, crash: { at: i, error: prepared.error, logged: null } };
      }
      if (r.error !== undefined) continue;
      if (w.status !== 'running') {
        r.error = this.isEnded() ? new ApplicationStoppedError() : w.status === 'backoff' ? new MachineRestartingError(w.name, retryAfterMs(w)) : new MachineStoppedError(w.name);
        continue;
      }
      if (r.timer !== null && this.timers.obsolete(r)) {
        // Its timer was cancelled or set again after this delivery was queued.
        r.logged = null;
        continue;
      }
      if (this.idempotency.answered(r)) continue;
      let stops = false;
      let deletes = false;
      let timers: PreparedTimer[] | null = null;
      try {
        this.readable.before(r);
        const result: unknown = w.machine.step(r.stepInput, w.state);
        checkStepResult(result, w.name);
        w.state = result[0];
        r.output = result[1];
        stops = stopsNormally(result);
        deletes = deletesEntity(result);
        if (deletes && w.family === null) throw new TypeError(`${w.name} is not an entity: only an entity may delete itself`);
        const commands = timerCommands(result);
        if (commands.length > 0) timers = this.timers.prepare(r, commands);
      } catch (error) {
        // Its memory may be half-mutated from here on: nothing may snapshot or step it.
        w.status = 'crashed';
        return { groups, crash: { at: i, error, logged: r.logged } };
      }
      if (deletes) {
        // Its rows go in this commit, and with them what this batch logged of it; a batch ends
        // here, as after a normal stop, so its later requests meet the entity afresh.
        groups.delete(w);
        r.logged = null;
        return { groups, crash: null, stopAt: i, deleted: w };
      }
      if (r.logged) {
        w.seq++;
        r.seq = w.seq;
        this.idempotency.record(r, w.seq);
        if (timers) this.timers.record(w.name, timers, w.seq);
        let g = groups.get(w);
        const json = this.readable.after(r, w.seq);
        if (!g) groups.set(w, (g = { firstSeq: w.seq, parts: [], json: json === null ? null : [], bytes: 0 }));
        g.parts.push(r.logged);
        if (json !== null) g.json?.push(json);
        g.bytes += r.logged.byteLength;
      }
      if (r.timer !== null) this.timers.delivered(r);
      if (stops) return { groups, crash: null, stopAt: i };
    }
    return { groups, crash: null };
  }

  /**
   * The commit point: nothing of this batch is released before its log rows are durable.
   * Returns the error that refused the commit, after bringing the machines back to what is durable.
   */
  private commit(groups: Map<WorkerNode, Group>, deleted: WorkerNode | null): StorageError | null {
    // A delivered timer whose input was read-only still has its row to remove.
    if (groups.size === 0 && this.timers.firedTimers.length === 0 && !deleted) return null;
    const rows: LogGroup[] = [];
    let count = 0;
    let entities: EntityRegistration[] | undefined;
    for (const [w, g] of groups) {
      rows.push({ machine: w.name, firstSeq: g.firstSeq, lastSeq: w.seq, count: g.parts.length, requests: g.parts.length === 1 ? g.parts[0]! : Buffer.concat(g.parts), requestsJson: g.json && `[${g.json.join(',')}]` });
      count += g.parts.length;
      // An entity's registry row comes with its first logged request.
      if (w.family !== null && !w.registered) (entities ??= []).push({ machine: w.name, family: w.family.name, key: w.key, version: w.machine.version });
    }
    const t0 = performance.now();
    try {
      const { keys, expireThrough } = this.idempotency.forCommit();
      this.persistence.commit(rows, { keys, keysExpireThrough: expireThrough, firedTimers: this.timers.firedTimers, timerChanges: this.timers.timerChanges, entries: this.readable.entries, entriesSeq: this.readable.entriesSeq, entities, deleted: deleted ? [deleted.name] : undefined });
    } catch (err) {
      const error = err instanceof StorageError ? err : new StorageError(describe(err), { cause: err });
      this.gate.commitFailed(error);
      this.timers.commitFailed();
      // Memory is ahead of the disk for these machines: bring them back to what is durable.
      this.supervision.reloadFromStorage(deleted ? [...groups.keys(), deleted] : groups.keys());
      this.log({ type: 'storage_failed', machines: [...groups.keys()].map((w) => w.name), error });
      return error;
    }
    this.gate.commitSucceeded();
    this.timers.committed();
    this.idempotency.committed();
    if (entities) registered(groups);
    if (deleted) forgotten(deleted);
    const now = performance.now();
    this.metrics.commitSeconds.observe((now - t0) / 1000);
    this.metrics.loggedRequests += count;
    for (const [w, g] of groups) {
      w.growth.requests += g.parts.length;
      w.growth.bytes += g.bytes;
      w.growth.firstAt ??= now;
    }
    return null;
  }

  private reply(r: Pending, error: unknown): void {
    if (error !== undefined) return r.settle(error);
    if (!r.encodeOutput) return r.settle(undefined, r.output);
    let bytes: Uint8Array;
    try {
      bytes = r.target.machine.codec.encode(r.output);
    } catch (err) {
      return r.settle(err instanceof EncodeError ? err : new EncodeError(`output of ${r.target.name} not encodable: ${describe(err)}`, { cause: err }));
    }
    r.settle(undefined, bytes);
  }

  /** Runs under the loop's lock, after the replies of the requests before the crash were released. */
  private async supervise(batch: Pending[], crash: Crash | null, stopped: WorkerNode | null = null): Promise<void> {
    if (stopped && !this.isEnded()) await this.supervision.exited(stopped);
    if (crash) {
      const r = batch[crash.at]!;
      const w = r.target;
      this.persistence.recordFailure(w, crash.logged ?? encodeForRecord(r.input), crash.error);
      this.timers.crashed(r);
      // The caller hears of the crash once its supervisor has acted, so its next call meets
      // the restarted machine.
      try {
        await this.supervision.crashed(w, crash.error);
      } finally {
        r.settle(new MachineCrashedError(w.name, crash.error));
      }
    }
    // Machines that could not be reloaded after a failed commit go through their supervisor too.
    for (const w of this.workers) if (w.status === 'crashed' && !this.isEnded()) await this.supervision.crashed(w, new StorageError(w.lastError ?? 'reload failed'));
  }
}

/** After the commit that wrote their registry rows: the entities among `written` are known. */
function registered(written: Map<WorkerNode, unknown>): void {
  for (const w of written.keys()) {
    if (w.family === null || w.registered) continue;
    w.registered = true;
    if (w.family.known !== null) w.family.known++;
  }
}

/** After the commit that removed its rows: a deleted entity goes on from init(), unregistered. */
function forgotten(w: WorkerNode): void {
  w.state = w.machine.init();
  w.seq = w.snapshotSeq = 0;
  w.snapshot = null;
  w.growth = { requests: 0, bytes: 0, firstAt: null };
  if (w.registered && w.family!.known !== null) w.family!.known--;
  w.registered = false;
}

/**
 * Read-only inputs were never encoded for the log; encode them now so the failure record
 * (`ssm failed`) shows what crashed the machine. Not encodable: recorded as NULL, as the schema says.
 */
function encodeForRecord(input: unknown): Uint8Array | null {
  try {
    return cbor.encode(input);
  } catch {
    return null;
  }
}
