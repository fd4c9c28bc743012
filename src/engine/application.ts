import { cbor } from '../encoding/cbor.js';
import {
  ApplicationStoppedError,
  CallTimeoutError,
  ConfigError,
  DecodeError,
  EncodeError,
  MachineCrashedError,
  MachineStoppedError,
  PayloadTooLargeError,
  SsmError,
  StorageError,
  UnknownMachineError,
  describe,
} from '../errors.js';
import { Deadlines } from './deadlines.js';
import { EventLoop, type Request } from './event-loop.js';
import { stderrLogger, silentLogger, type Logger } from './logger.js';
import { Metrics, renderPrometheus } from './metrics.js';
import { NEEDS_CBOR, plainCopy } from '../encoding/input-copy.js';
import { Persistence } from './persistence.js';
import { SupervisorNode, WorkerNode, statusOf, workersOf, type StatusNode } from './runtime-tree.js';
import { resolveSnapshotPolicy, type SnapshotPolicy } from './snapshot-policy.js';
import type { LogGroup, SnapshotMeta } from '../storage/rows.js';
import { Store } from '../storage/store.js';
import { DEFAULT_DB_PATH, type Durability, type StoreFaults } from '../storage/store-options.js';
import { Supervision } from './supervision.js';
import { workerNames, type SupervisorSpec } from '../model/tree.js';

export interface ApplicationOptions {
  /** SQLite database file; `':memory:'` for tests. Default `storage/ssm.db` (folder created). */
  db?: string;
  /** Default `'full'`: a reply is released only after fsync. See {@link Durability}. */
  durability?: Durability;
  /** Bounded request queue. Default 1024. */
  queueCapacity?: number;
  /** Most requests stepped per batch (one group commit). Default 512. */
  maxBatch?: number;
  /** Default call timeout in ms. Default 5000. */
  callTimeoutMs?: number;
  /** Largest accepted `callBytes` payload. Default 1 MiB. */
  maxPayloadBytes?: number;
  /** When to snapshot. */
  snapshot?: SnapshotPolicy;
  /** Lifecycle events; `false` silences them. Default: concise lines on stderr. */
  logger?: Logger | false;
  /** Test seams for fault injection. */
  faults?: StoreFaults;
}

export interface CallOptions {
  /** Default: the application's `callTimeoutMs` (5000). */
  timeoutMs?: number;
}

/** How the application ended: `app.stopped` resolves with this. */
export type StopResult = { readonly reason: 'normal' } | { readonly reason: 'failure'; readonly error: unknown };

/** A request and its caller's continuation; a class so the hot path allocates no closures. */
class Pending implements Request<WorkerNode> {
  status: Request<WorkerNode>['status'] = 'queued';
  output?: unknown;
  error?: unknown;
  /** The CBOR of the input for the request log (null: read-only, not logged). */
  logged: Uint8Array | null = null;
  /** What the step receives: the decoded copy of `logged`, or the input itself if read-only. */
  stepInput: unknown = undefined;
  constructor(
    readonly target: WorkerNode,
    readonly input: unknown,
    /** Encode the output with the machine's codec (the bytes path). */
    readonly wire: boolean,
    private readonly resolve: (v: unknown) => void,
    private readonly reject: (e: unknown) => void,
    private readonly metrics: Metrics,
  ) {}

  settle(err: unknown, output?: unknown): void {
    if (this.status === 'settled') return;
    this.status = 'settled';
    if (err === undefined) {
      this.resolve(output);
      return;
    }
    if (err instanceof SsmError) this.metrics.error(err.code);
    this.reject(err);
  }
}

const noop = (): void => {};
/** Longest delay a Node.js timer holds; longer ones fire after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A running supervision tree: one event loop owning every machine, backed by one database.
 * Create with {@link startApplication}.
 */
export class App {
  /** Settles when the application has stopped, normally or because the root supervisor gave up. */
  readonly stopped: Promise<StopResult>;
  readonly metrics = new Metrics();
  private readonly root: SupervisorNode;
  private readonly workers = new Map<string, WorkerNode>();
  private readonly order: WorkerNode[];
  private readonly loop: EventLoop<WorkerNode>;
  private readonly store: Store;
  private readonly persistence: Persistence;
  private readonly supervision: Supervision;
  private readonly log: Logger;
  private readonly callTimeoutMs: number;
  private readonly maxPayloadBytes: number;
  private accepting = false;
  private ended = false;
  private stopping: Promise<void> | null = null;
  private resolveStopped!: (r: StopResult) => void;
  private snapshotTimer: NodeJS.Timeout | null = null;
  /** Wakes deferred policy snapshots when the throttle lets them through. */
  private snapshotWake: NodeJS.Timeout | null = null;
  /** Machines whose policy fired while the throttle held it: candidates after every batch. */
  private readonly deferredSnapshots = new Set<WorkerNode>();
  // A request still queued is withdrawn and never applied. One already taken (a crashed request
  // waiting for its supervisor) has been stepped: only its reply is replaced by the timeout.
  private readonly deadlines = new Deadlines<Pending>(
    (req, ms) => {
      if (req.status === 'queued') this.loop.cancel(req);
      req.settle(new CallTimeoutError(req.target.name, ms));
    },
    (req) => req.status === 'queued' || req.status === 'taken',
  );

  /** @internal use {@link startApplication} */
  constructor(tree: SupervisorSpec, options: ApplicationOptions) {
    workerNames(tree);
    const logger = options.logger === false ? silentLogger : (options.logger ?? stderrLogger);
    // A logger that throws must not break a batch half-way (replies unsettled) or a restart.
    this.log = (event) => {
      try {
        logger(event);
      } catch {
        // Nothing sensible to do with a failing logger but keep serving.
      }
    };
    this.callTimeoutMs = options.callTimeoutMs ?? 5000;
    this.maxPayloadBytes = options.maxPayloadBytes ?? 1024 * 1024;
    if (!(this.callTimeoutMs > 0)) throw new ConfigError('callTimeoutMs must be > 0 (Infinity for none)');
    const policy = resolveSnapshotPolicy(options.snapshot);
    this.root = new SupervisorNode(tree, null, 0, tree.name ?? 'root');
    this.order = workersOf(this.root);
    for (const w of this.order) this.workers.set(w.name, w);
    this.loop = new EventLoop<WorkerNode>({ processBatch: (b) => this.processBatch(b as Pending[]) }, options);
    this.loop.onBatch = (n) => this.metrics.batchSize.observe(n);
    this.loop.onError = (err) => this.log({ type: 'application_stopped', reason: `internal error: ${describe(err)}` });
    this.stopped = new Promise((r) => (this.resolveStopped = r));
    this.store = Store.open(options.db ?? DEFAULT_DB_PATH, { durability: options.durability, faults: options.faults });
    try {
      this.store.registerMachines(this.order.map((w) => ({ name: w.name, version: w.machine.version })));
    } catch (err) {
      this.store.close();
      throw err;
    }
    this.persistence = new Persistence(this.store, policy, this.log, this.metrics);

    this.supervision = new Supervision(this.persistence, this.log, this.metrics, (err) => this.shutdown({ reason: 'failure', error: err }));
  }

  /** @internal */
  async start(): Promise<void> {
    try {
      await this.supervision.start(this.root);
    } catch (err) {
      // Undo the start without writing: the database stays as found, for whoever repairs it.
      await this.supervision.stop(this.root, 'abort');
      this.store.close();
      this.ended = true;
      this.resolveStopped({ reason: 'failure', error: err });
      throw err;
    }
    this.accepting = true;
    const { everyMs } = this.persistence.policy;
    if (everyMs > 0) {
      // Time-based snapshots must also happen when writes stop, so they cannot wait for a batch.
      this.snapshotTimer = setInterval(() => this.snapshotDueByTime(), Math.max(50, everyMs / 4));
      this.snapshotTimer.unref();
    }
  }

  /** Names of the machines, in start order. */
  machines(): string[] {
    return this.order.map((w) => w.name);
  }

  /** Path of the database file. */
  get databasePath(): string {
    return this.store.path;
  }

  /** Requests waiting in the queue. */
  get queueDepth(): number {
    return this.loop.depth;
  }

  /**
   * Sends `input` to machine `name` and resolves with its output once the request is durable.
   * Rejects with QueueFullError, UnknownMachineError, CallTimeoutError, MachineCrashedError,
   * StorageError, MachineStoppedError or ApplicationStoppedError.
   */
  call<O = unknown>(name: string, input: unknown, options: CallOptions = {}): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.submit(name, input, false, options.timeoutMs, resolve as (v: unknown) => void, reject);
    });
  }

  /**
   * The wire path: decodes `bytes` with the machine's codec, steps, and resolves with the
   * output encoded by the same codec. Undecodable bytes reject with DecodeError and never reach
   * the machine.
   */
  callBytes(name: string, bytes: Uint8Array, options: CallOptions = {}): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      const w = this.workers.get(name);
      if (!w) return this.fail(reject, new UnknownMachineError(name));
      if (bytes.byteLength > this.maxPayloadBytes) return this.fail(reject, new PayloadTooLargeError(bytes.byteLength, this.maxPayloadBytes));
      let input: unknown;
      try {
        input = w.machine.validate(w.machine.codec.decode(bytes));
      } catch (err) {
        return this.fail(reject, err instanceof DecodeError ? err : new DecodeError(`undecodable input for ${name}: ${describe(err)}`, { cause: err }));
      }
      this.submit(name, input, true, options.timeoutMs, resolve as (v: unknown) => void, reject);
    });
  }

  /**
   * Like {@link call}, for an input from an untrusted source that is already decoded (e.g. JSON
   * over HTTP): the machine's `validate` runs first, and a rejected input fails with DecodeError
   * without reaching the machine. Resolves with the output as a value (not encoded).
   */
  callValue<O = unknown>(name: string, input: unknown, options: CallOptions = {}): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      const w = this.workers.get(name);
      if (!w) return this.fail(reject, new UnknownMachineError(name));
      let valid: unknown;
      try {
        valid = w.machine.validate(input);
      } catch (err) {
        return this.fail(reject, err instanceof DecodeError ? err : new DecodeError(`invalid input for ${name}: ${describe(err)}`, { cause: err }));
      }
      this.submit(name, valid, false, options.timeoutMs, resolve as (v: unknown) => void, reject);
    });
  }

  /**
   * Fire-and-forget. Throws synchronously when the request cannot be queued (QueueFullError,
   * UnknownMachineError, ...); later failures are reported only through the logger and metrics.
   */
  cast(name: string, input: unknown): void {
    let error: unknown;
    this.submit(name, input, false, 0, noop, (e) => (error = e));
    if (error) throw error;
  }

  /** The supervision tree with each machine's state of life, restarts, last error and sequence numbers. */
  status(): StatusNode {
    return statusOf(this.root);
  }

  /**
   * Snapshots one machine (or all) now, between batches. Resolves with the snapshots written
   * (none for a machine unchanged since its last snapshot). Rejects with StorageError.
   */
  checkpoint(name?: string): Promise<SnapshotMeta[]> {
    const targets = name === undefined ? this.order : [this.workers.get(name)];
    if (targets.some((w) => !w)) return Promise.reject(new UnknownMachineError(name!));
    if (this.ended) return Promise.reject(new ApplicationStoppedError());
    return this.loop.exclusive(async () => {
      if (this.ended) throw new ApplicationStoppedError();
      const out: SnapshotMeta[] = [];
      for (const w of targets as WorkerNode[]) {
        if (w.life !== 'running') continue;
        const meta = await this.persistence.checkpoint(w, 'checkpoint');
        if (meta) out.push(meta);
      }
      return out;
    });
  }

  /** Prometheus text exposition of this application's metrics. */
  prometheus(): string {
    return renderPrometheus(this.metrics, {
      queueDepth: this.loop.depth,
      queueCapacity: this.loop.capacity,
      machines: this.order.map((w) => ({ name: w.name, status: w.life, seq: w.seq, restarts: w.restarts })),
    });
  }

  /**
   * Graceful stop: refuses new calls, finishes the queued ones, terminates every machine in
   * reverse start order (snapshotting each), closes the database. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.accepting = false;
      await this.loop.idle();
      await this.loop.exclusive(() => this.shutdown({ reason: 'normal' }));
    })();
    return this.stopping;
  }

  /** From a timer, so possibly while exclusive work is under way: always through the loop's lock. */
  private snapshotDueByTime(): void {
    if (this.ended) return;
    this.snapshotUnderLock(this.dueForSnapshot(this.order));
  }

  /**
   * The machines among `candidates`, and those deferred earlier, whose snapshot policy fires
   * now. Deferred machines stay candidates until they are snapshotted, so a machine that writes
   * rarely is not starved by a busy one that keeps using the shared budget; and a timer wakes
   * them when the throttle lets them through, so they do not wait for the next write.
   */
  private dueForSnapshot(candidates: Iterable<WorkerNode>): WorkerNode[] {
    const now = performance.now();
    const due: WorkerNode[] = [];
    const seen = new Set<WorkerNode>();
    const consider = (w: WorkerNode): void => {
      if (seen.has(w)) return;
      seen.add(w);
      if (w.life !== 'running' || w.snapshotPending) {
        this.deferredSnapshots.delete(w);
        return;
      }
      const verdict = this.persistence.verdict(w, now);
      if (verdict === 'deferred') this.deferredSnapshots.add(w);
      else this.deferredSnapshots.delete(w);
      if (verdict === 'due') due.push(w);
    };
    for (const w of this.deferredSnapshots) consider(w);
    for (const w of candidates) consider(w);
    if (this.deferredSnapshots.size > 0 && !this.snapshotWake && !this.ended) {
      const delay = Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(this.persistence.quietUntil - now)));
      this.snapshotWake = setTimeout(() => {
        this.snapshotWake = null;
        this.snapshotDueByTime();
      }, delay);
      this.snapshotWake.unref();
    }
    return due;
  }

  /**
   * Policy snapshots run between batches. A small state is encoded at once; a large one in
   * slices under the loop's lock, so steps wait but the Node.js event loop (I/O, timers) does
   * not stall for the whole encoding.
   */
  private snapshotLater(due: WorkerNode[]): void {
    const workers: WorkerNode[] = [];
    for (const w of due) {
      if (this.persistence.isLarge(w)) workers.push(w);
      else this.persistence.tryCheckpointNow(w, 'policy');
    }
    this.snapshotUnderLock(workers);
  }

  private snapshotUnderLock(workers: WorkerNode[]): void {
    if (workers.length === 0) return;
    for (const w of workers) w.snapshotPending = true;
    void this.loop.exclusive(async () => {
      for (const w of workers) {
        w.snapshotPending = false;
        if (w.life === 'running' && !this.ended) await this.persistence.tryCheckpoint(w, 'policy');
      }
    });
  }

  private fail(reject: (e: unknown) => void, err: unknown): void {
    if (err instanceof SsmError) this.metrics.error(err.code);
    reject(err);
  }

  private submit(name: string, input: unknown, wire: boolean, timeoutMs: number | undefined, resolve: (v: unknown) => void, reject: (e: unknown) => void): void {
    if (timeoutMs !== undefined && !(timeoutMs >= 0)) return this.fail(reject, new ConfigError(`timeoutMs must be a number >= 0, got ${timeoutMs}`));
    if (!this.accepting) return this.fail(reject, new ApplicationStoppedError());
    const w = this.workers.get(name);
    if (!w) return this.fail(reject, new UnknownMachineError(name));
    if (w.life === 'stopped' || w.life === 'failed') {
      if (!this.ended && (w.restart === 'temporary' || w.life === 'failed')) return this.fail(reject, new MachineStoppedError(name));
    }
    const req = new Pending(w, input, wire, resolve, reject, this.metrics);
    try {
      this.loop.enqueue(req);
    } catch (err) {
      return this.fail(reject, err);
    }
    this.metrics.calls++;
    const ms = timeoutMs ?? this.callTimeoutMs;
    // 0, Infinity and anything beyond what a Node.js timer can hold (~24.8 days) mean no timeout.
    if (ms > 0 && ms <= MAX_TIMER_MS && resolve !== noop) this.deadlines.add(req, ms);
  }

  /**
   * Gives every state-changing input of the batch its log encoding and the copy its step gets:
   * exactly what replay will see, never the caller's object, so live and recovered state cannot
   * diverge and a caller mutating its object later cannot reach into the state. Plain data is
   * copied directly and the copy encoded ({@link plainCopy}); anything else takes the CBOR round
   * trip, all such inputs decoded in one call. Returns where a throwing readOnly() stopped.
   */
  private prepareInputs(batch: Pending[]): { stoppedAt: number; error?: unknown } {
    const parts: Uint8Array[] = [];
    const roundTrip: Pending[] = [];
    let stoppedAt = -1;
    let error: unknown;
    for (let i = 0; i < batch.length; i++) {
      const r = batch[i]!;
      r.logged = null;
      r.stepInput = r.input;
      if (r.target.life !== 'running') continue;
      let readOnly: boolean;
      try {
        readOnly = r.target.machine.readOnly(r.input);
      } catch (err) {
        stoppedAt = i;
        error = err;
        break;
      }
      if (readOnly) continue;
      try {
        const copy = plainCopy(r.input);
        if (copy !== NEEDS_CBOR) {
          r.logged = cbor.encode(copy);
          r.stepInput = copy;
        } else {
          r.logged = cbor.encode(r.input);
          parts.push(r.logged);
          roundTrip.push(r);
        }
      } catch (err) {
        r.logged = null;
        r.error = new EncodeError(`input for ${r.target.name} is not encodable as CBOR: ${describe(err)}`, { cause: err });
      }
    }
    if (parts.length > 0) {
      let copies: unknown[] | null = null;
      try {
        copies = cbor.decodeMultiple(parts.length === 1 ? parts[0]! : Buffer.concat(parts)) as unknown[];
      } catch {
        // Some input encodes into something the decoder refuses (over its size limits): find
        // which, one at a time. Logging it would make the log unreplayable.
      }
      for (let k = 0; k < roundTrip.length; k++) {
        const r = roundTrip[k]!;
        if (copies) {
          r.stepInput = copies[k];
          continue;
        }
        try {
          r.stepInput = cbor.decode(r.logged!);
        } catch (err) {
          r.logged = null;
          r.error = new EncodeError(`input for ${r.target.name} does not survive the CBOR round trip (replay could not decode it): ${describe(err)}`, { cause: err });
        }
      }
    }
    return { stoppedAt, error };
  }

  /** Steps a batch, passes its commit point, releases its replies. Synchronous on purpose. */
  private processBatch(batch: Pending[]): { crashed: number; handle?: () => Promise<void> } {
    const prepared = this.prepareInputs(batch);
    const groups = new Map<WorkerNode, { firstSeq: number; parts: Uint8Array[]; bytes: number }>();
    let crashed = -1;
    let crashError: unknown;
    let crashInput: Uint8Array | null = null;
    for (let i = 0; i < batch.length; i++) {
      const r = batch[i]!;
      const w = r.target;
      if (i === prepared.stoppedAt) {
        // readOnly() itself threw: a crash of this machine like any other.
        w.life = 'crashed';
        crashed = i;
        crashError = prepared.error;
        break;
      }
      if (r.error !== undefined) continue;
      if (w.life !== 'running') {
        r.error = this.ended ? new ApplicationStoppedError() : new MachineStoppedError(w.name);
        continue;
      }
      try {
        const result = w.machine.step(r.stepInput, w.state);
        if (!Array.isArray(result) || result.length !== 2) throw new TypeError(`step of ${w.name} must return [state, output]`);
        w.state = result[0];
        r.output = result[1];
      } catch (err) {
        // Its memory may be half-mutated from here on: nothing may snapshot or step it.
        w.life = 'crashed';
        crashed = i;
        crashError = err;
        crashInput = r.logged;
        break;
      }
      if (r.logged) {
        w.seq++;
        let g = groups.get(w);
        if (!g) groups.set(w, (g = { firstSeq: w.seq, parts: [], bytes: 0 }));
        g.parts.push(r.logged);
        g.bytes += r.logged.byteLength;
      }
    }

    // The commit point: nothing of this batch is released before its log rows are durable.
    const done = crashed >= 0 ? batch.slice(0, crashed) : batch;
    let storageError: StorageError | null = null;
    if (groups.size > 0) {
      const rows: LogGroup[] = [];
      let count = 0;
      for (const [w, g] of groups) {
        rows.push({ machine: w.name, firstSeq: g.firstSeq, lastSeq: w.seq, count: g.parts.length, requests: g.parts.length === 1 ? g.parts[0]! : Buffer.concat(g.parts) });
        count += g.parts.length;
      }
      const t0 = performance.now();
      try {
        this.store.appendBatch(rows);
        this.metrics.commitSeconds.observe((performance.now() - t0) / 1000);
        this.metrics.loggedRequests += count;
        const now = performance.now();
        for (const [w, g] of groups) {
          w.growth.requests += g.parts.length;
          w.growth.bytes += g.bytes;
          w.growth.firstAt ??= now;
        }
      } catch (err) {
        storageError = err instanceof StorageError ? err : new StorageError(describe(err), { cause: err });
        // Memory is ahead of the disk for these machines: bring them back to what is durable.
        this.supervision.reloadFromStorage(groups.keys());
        this.log({ type: 'storage_failed', machines: [...groups.keys()].map((w) => w.name), error: storageError });
      }
    }
    for (const r of done) {
      if (storageError && groups.has(r.target)) r.settle(storageError);
      else if (r.error !== undefined) r.settle(r.error);
      else if (r.wire) {
        let bytes: Uint8Array;
        try {
          bytes = r.target.machine.codec.encode(r.output);
        } catch (err) {
          r.settle(err instanceof EncodeError ? err : new EncodeError(`output of ${r.target.name} not encodable: ${describe(err)}`, { cause: err }));
          continue;
        }
        r.settle(undefined, bytes);
      } else r.settle(undefined, r.output);
    }
    if (!storageError) this.snapshotLater(this.dueForSnapshot(groups.keys()));

    // After a failed commit a machine may be left crashed (its reload failed too).
    if (crashed < 0 && !(storageError && this.order.some((w) => w.life === 'crashed'))) return { crashed };
    const handle = async (): Promise<void> => {
      if (crashed >= 0) {
        const r = batch[crashed]!;
        const w = r.target;
        // Read-only inputs were never encoded for the log; encode them now so the failure
        // record (`ssm failed`) shows what crashed the machine.
        let input = crashInput;
        if (input === null) {
          try {
            input = cbor.encode(r.input);
          } catch {
            // Not encodable: recorded as NULL, as the schema says.
          }
        }
        try {
          this.store.recordFailure(w.name, w.seq, input, crashError);
        } catch {
          // A full disk must not prevent the restart; the crash is still logged below.
        }
        // The caller hears of the crash once its supervisor has acted, so its next call meets
        // the restarted machine.
        try {
          await this.supervision.crashed(w, crashError);
        } finally {
          r.settle(new MachineCrashedError(w.name, crashError));
        }
      }
      // Machines that could not be reloaded after a failed commit go through their supervisor too.
      for (const w of this.order) if (w.life === 'crashed' && !this.ended) await this.supervision.crashed(w, new StorageError(w.lastError ?? 'reload failed'));
    };
    return { crashed, handle };
  }

  /** Terminates everything and closes the store; settles `stopped`. Runs under the loop's lock. */
  private async shutdown(result: StopResult): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.accepting = false;
    const reason = result.reason === 'normal' ? 'application stopped' : `application stopped: root supervisor failed: ${describe(result.error)}`;
    for (const r of this.loop.takeAll()) r.settle(new ApplicationStoppedError(reason));
    await this.supervision.stop(this.root, 'stop');
    this.deadlines.clear();
    if (this.snapshotTimer) clearInterval(this.snapshotTimer);
    if (this.snapshotWake) clearTimeout(this.snapshotWake);
    this.store.close();
    this.log({ type: 'application_stopped', reason: result.reason === 'normal' ? 'normal' : reason });
    this.resolveStopped(result);
  }
}

/**
 * Starts a supervision tree: opens (or creates) the database, recovers every machine's state
 * depth-first, and starts the event loop. Rejects with ConfigError, DatabaseLockedError,
 * SchemaVersionError, StorageError or RecoveryError.
 */
export async function startApplication(tree: SupervisorSpec, options: ApplicationOptions = {}): Promise<App> {
  const app = new App(tree, options);
  await app.start();
  return app;
}
