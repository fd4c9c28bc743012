import { ApplicationStoppedError, UnknownMachineError, describe } from '../errors.js';
import { workerNames, type SupervisorSpec } from '../model/tree.js';
import type { EntityListing, EntityPageOptions, SnapshotMeta } from '../storage/rows.js';
import type { BackgroundCheck, IntegrityStatus } from '../storage/background-check.js';
import type { BackupOptions, BackupReport } from '../storage/reports.js';
import { Store } from '../storage/store.js';
import { Admission } from './admission.js';
import { BatchCycle } from './batch.js';
import { CrashLoopGuard } from './crash-loop.js';
import { Idempotency } from './idempotency.js';
import { Timers } from './timers.js';
import { ReadableBatch } from './readable-state.js';
import { Subscriptions } from './subscriptions.js';
import type { ChangeListener, SubscribeOptions, Subscription } from './change-feed.js';
import { EventLoop } from './event-loop.js';
import type { Logger } from './logger.js';
import { Metrics, renderPrometheus } from './metrics.js';
import { gaugesOf } from './gauges.js';
import { resolveApplicationOptions, type ApplicationOptions, type CallOptions } from './options.js';
import type { Pending } from './pending.js';
import { Persistence } from './persistence.js';
import { SupervisorNode, WorkerNode, familiesOf, statusOf, workersOf, type StatusNode } from './runtime-tree.js';
import { EntityRuntime } from './entities.js';
import { SnapshotScheduler } from './snapshot-scheduler.js';
import { StorageHealth } from './storage-health.js';
import { StorageGate } from './storage-gate.js';
import { healthOf, watchIntegrity, type HealthReport } from './health-report.js';
import { Supervision } from './supervision.js';

/** How the application ended: `app.stopped` resolves with this. */
export type StopResult = { readonly reason: 'normal' } | { readonly reason: 'failure'; readonly error: unknown };

/**
 * A running supervision tree: one event loop owning every machine, backed by one database.
 * Create with {@link startApplication}. This class is the facade and the lifecycle; a request
 * goes through {@link Admission} (the door), the {@link EventLoop} (the queue) and
 * {@link BatchCycle} (step, commit point, replies).
 */
export class App {
  /** Settles when the application has stopped, normally or because the root supervisor gave up. */
  readonly stopped: Promise<StopResult>;
  readonly metrics = new Metrics();
  private readonly root: SupervisorNode;
  private readonly workers = new Map<string, WorkerNode>();
  private readonly order: WorkerNode[];
  private readonly loop: EventLoop<WorkerNode>;
  private readonly admission: Admission;
  private readonly persistence: Persistence;
  private readonly supervision: Supervision;
  private readonly snapshots: SnapshotScheduler;
  private readonly timers: Timers;
  private readonly subscriptions: Subscriptions;
  private readonly entityRuntime: EntityRuntime;
  private readonly log: Logger;
  private readonly storageHealth = new StorageHealth();
  private ended = false;
  private stopping: Promise<void> | null = null;
  private resolveStopped!: (r: StopResult) => void;

  /** @internal use {@link startApplication} */
  constructor(tree: SupervisorSpec, options: ApplicationOptions) {
    workerNames(tree);
    const o = resolveApplicationOptions(options);
    this.log = o.logger;
    this.root = new SupervisorNode(tree, null, 0, tree.name ?? 'root');
    this.order = workersOf(this.root);
    for (const w of this.order) this.workers.set(w.name, w);
    for (const w of this.order) w.readable = o.readable(w.name);
    this.stopped = new Promise((r) => (this.resolveStopped = r));
    const isEnded = (): boolean => this.ended;
    this.persistence = Persistence.open(Store.open(o.db, { durability: o.durability, create: o.create, faults: o.faults }), o.snapshot, this.log, this.metrics, this.order);
    this.supervision = new Supervision(this.persistence, this.log, this.metrics, new CrashLoopGuard(this.persistence.crashes, o.crashLoop, this.log), (err) => this.shutdown({ reason: 'failure', error: err }), (ms, fn) => this.loop.after(ms, fn));
    // The loop runs the cycle, and the cycle snapshots under the loop's lock: bound once both exist.
    let cycle!: BatchCycle;
    this.loop = new EventLoop<WorkerNode>({ runBatch: (b) => cycle.runBatch(b as Pending[]), readiness: (r) => cycle.readiness(r as Pending) }, o);
    this.loop.onBatch = (n) => this.metrics.batchSize.observe(n);
    this.loop.onError = (err) => this.log({ type: 'application_stopped', reason: `internal error: ${describe(err)}` });
    this.snapshots = new SnapshotScheduler(this.persistence, this.loop, this.order);
    this.supervision.superviseEntities((this.entityRuntime = new EntityRuntime(familiesOf(this.root), o.readable, this.persistence, this.loop, this.metrics, this.log)));
    const entities = this.entityRuntime.size > 0 ? this.entityRuntime : null;
    this.timers = new Timers(this.persistence, this.loop, entities ? this.entityRuntime.withEntities(this.workers) : this.workers, this.metrics, this.log);
    const idempotency = new Idempotency(this.persistence.idempotencyRecords, o.idempotency, this.metrics);
    this.subscriptions = new Subscriptions(this.persistence, this.workers);
    cycle = new BatchCycle(this.persistence, this.supervision, this.snapshots, this.order, this.metrics, this.log, isEnded, new StorageGate(this.storageHealth, this.persistence, isEnded), idempotency, this.timers, this.subscriptions, new ReadableBatch());
    this.admission = new Admission(this.workers, this.loop, this.metrics, o, isEnded, entities);
  }

  private integrityCheck: BackgroundCheck | null = null;

  /** @internal */
  async start(): Promise<void> {
    try {
      await this.supervision.start(this.root);
    } catch (err) {
      // Undo the start without writing: the database stays as found, for whoever repairs it.
      await this.supervision.stop(this.root, 'abort');
      this.persistence.close();
      this.ended = true;
      this.resolveStopped({ reason: 'failure', error: err });
      throw err;
    }
    this.admission.accepting = true;
    this.snapshots.start();
    this.timers.start();
    // After recovery, which may fail on its own terms first; in a worker, so serving starts now.
    this.integrityCheck = watchIntegrity(this.persistence.path, this.log);
  }

  /**
   * The start-up integrity check (`PRAGMA quick_check`, run in a worker thread while the
   * application serves): `checking`, `ok`, `failed` with the problems per table, or
   * `not-checked`. For health reporting (e.g. /healthz).
   */
  get integrity(): IntegrityStatus {
    return this.integrityCheck?.status ?? { state: 'not-checked', reason: 'in-memory database' };
  }

  /** Names of the machines, in start order. */
  machines(): string[] {
    return this.order.map((w) => w.name);
  }

  /** Path of the database file. */
  get databasePath(): string {
    return this.persistence.path;
  }

  /** Requests waiting in the queue. */
  get queueDepth(): number {
    return this.loop.depth;
  }

  /**
   * Sends `input` to machine `name` (or entity `'<family>/<key>'`) and resolves with its output once durable.
   * Rejects with QueueFullError, UnknownMachineError, CallTimeoutError, MachineCrashedError,
   * StorageError, MachineStoppedError or ApplicationStoppedError.
   */
  call<O = unknown>(name: string, input: unknown, options: CallOptions = {}): Promise<O> {
    return new Promise<O>((resolve, reject) => this.admission.admitValue(name, input, options, resolve as (v: unknown) => void, reject));
  }

  /**
   * The wire path: decodes `bytes` with the machine's codec, steps, and resolves with the
   * output encoded by the same codec. Undecodable bytes reject with DecodeError and never reach
   * the machine.
   */
  callBytes(name: string, bytes: Uint8Array, options: CallOptions = {}): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => this.admission.admitBytes(name, bytes, options, resolve as (v: unknown) => void, reject));
  }

  /**
   * Like {@link call}, for an input from an untrusted source that is already decoded (e.g. JSON
   * over HTTP): the machine's `validate` runs first, and a rejected input fails with DecodeError
   * without reaching the machine. Resolves with the output as a value (not encoded).
   */
  callValue<O = unknown>(name: string, input: unknown, options: CallOptions = {}): Promise<O> {
    return new Promise<O>((resolve, reject) => this.admission.admitUntrusted(name, input, options, resolve as (v: unknown) => void, reject));
  }

  /**
   * Fire-and-forget. Throws synchronously when the request cannot be queued (QueueFullError,
   * UnknownMachineError, ...); later failures are reported only through the logger and metrics.
   */
  cast(name: string, input: unknown): void {
    this.admission.admitCast(name, input);
  }

  /** The supervision tree: each machine's state of life, restarts, last error and seqs; a family as one node with counts. */
  status(): StatusNode {
    return statusOf(this.root, (f) => this.entityRuntime.known(f));
  }

  /**
   * A page of family `name`'s registered entities (those that committed a request) in key order:
   * keys starting with `prefix`, after `after` (the previous page's last key), at most `limit`
   * (default 100, at most 1000). Rejects with UnknownMachineError, ConfigError, StorageError.
   */
  async entities(name: string, options: EntityPageOptions = {}): Promise<EntityListing[]> {
    if (this.ended) throw new ApplicationStoppedError();
    return this.entityRuntime.list(name, options);
  }

  /** Snapshots one machine or entity (or all, and every entity changed since its last snapshot) now, between batches; resolves with those written. Rejects with StorageError. */
  async checkpoint(name?: string): Promise<SnapshotMeta[]> {
    const entity = name !== undefined && !this.workers.has(name) && this.entityRuntime.machineOf(name) !== undefined;
    const targets = name === undefined ? this.order : entity ? [] : [this.workers.get(name)];
    if (targets.some((w) => !w)) throw new UnknownMachineError(name!);
    if (this.ended) throw new ApplicationStoppedError();
    const fixed = await this.snapshots.checkpointNow(targets as WorkerNode[], () => this.ended);
    // Entities: the one named, or (no name) every one changed since its last snapshot.
    return name !== undefined && !entity ? fixed : [...fixed, ...(await this.entityRuntime.checkpoint(name))];
  }

  /**
   * Whether the application serves, and whether its storage takes writes. While storage is
   * `failing` (a commit was refused, e.g. disk full), writes are refused at once with
   * StorageError, without being stepped, until a probe write succeeds (tried with each write
   * and every 250 ms); reads and other machines are served as usual.
   */
  health(): HealthReport {
    return healthOf(this.ended, this.storageHealth.report(), this.integrity);
  }

  /** Prometheus text exposition of this application's metrics. */
  prometheus(): string {
    return renderPrometheus(this.metrics, gaugesOf(this.loop, this.storageHealth, this.ended ? null : this.timers, this.order, this.entityRuntime));
  }

  /**
   * Follows machine `name`: `listener` gets every committed state-changing request
   * `{ machine, seq, input, output }`, in seq order, only after its commit, from
   * `options.fromSeq` (read back from storage, outputs recomputed by replay) and then live.
   * Awaited if it returns a promise; the engine never waits for it: a listener more than
   * `maxBuffered` events behind is cut off with SubscriberTooSlowError, resumable with
   * `fromSeq: subscription.lastSeq + 1`. A `fromSeq` no longer retained ends it with
   * LogTruncatedError. Throws UnknownMachineError, ConfigError, ApplicationStoppedError.
   */
  subscribe(name: string, options: SubscribeOptions, listener: ChangeListener): Subscription {
    if (this.ended || this.stopping) throw new ApplicationStoppedError();
    return this.subscriptions.subscribe(name, options, listener);
  }

  /**
   * Copies the database to `dest` while the application serves: SQLite's online backup through
   * the writer's connection, in steps of a few ms, then verified (quick_check and every
   * checksum, in a worker thread) before the file appears under its name. Every request
   * acknowledged before the call (and any committed during the copy) is in it; the copy opens as
   * it is, as a database of its own (restoring is opening it). Never overwrites `dest`. Rejects
   * with StorageError (`dest` exists, disk full, the copy did not verify) or
   * ApplicationStoppedError; a stop waits for a backup under way.
   */
  async backup(dest: string, options: BackupOptions = {}): Promise<BackupReport> {
    if (this.ended || this.stopping) throw new ApplicationStoppedError();
    return this.persistence.backup(dest, options);
  }

  /**
   * Releases machine `name` held back after a crash loop (`ApplicationOptions.crashLoop`): its
   * earlier crashes no longer count; it (or a machine whose start failed) starts from its durable
   * state, and under rest_for_one the running siblings after it are restarted after it. Resolves with
   * whether it was held; rejects with UnknownMachineError, ApplicationStoppedError or StartError (it failed to start again: release it once fixed).
   */
  release(name: string): Promise<boolean> {
    const w = this.workers.get(name);
    if (!w) return Promise.reject(new UnknownMachineError(name));
    return this.loop.exclusive(async () => {
      if (this.ended) throw new ApplicationStoppedError();
      const released = this.persistence.crashes.release(name, Date.now());
      await this.supervision.release(w);
      return released;
    });
  }

  /**
   * Graceful stop: refuses new calls, finishes the queued ones, terminates every machine in
   * reverse start order (snapshotting each), closes the database. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.admission.accepting = false;
      this.timers.stop();
      this.supervision.endBackoffs((ended) => ended.forEach((w) => this.loop.takeFor(w).forEach((r) => r.settle(new ApplicationStoppedError()))));
      await this.loop.idle();
      await this.loop.exclusive(() => this.shutdown({ reason: 'normal' }));
    })();
    return this.stopping;
  }

  /** Terminates everything and closes the store; settles `stopped`. Runs under the loop's lock. */
  private async shutdown(result: StopResult): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.admission.accepting = false;
    this.snapshots.stop();
    this.timers.stop();
    this.subscriptions.stop();
    const reason = result.reason === 'normal' ? 'application stopped' : `application stopped: root supervisor failed: ${describe(result.error)}`;
    for (const r of this.loop.takeAll()) r.settle(new ApplicationStoppedError(reason));
    await this.supervision.stop(this.root, 'stop');
    this.admission.clear();
    await this.persistence.backupsEnded();
    // Its read transaction would keep the close from emptying the WAL.
    await this.integrityCheck?.cancel();
    this.persistence.close();
    this.log({ type: 'application_stopped', reason: result.reason === 'normal' ? 'normal' : reason });
    this.resolveStopped(result);
  }
}

/**
 * Starts a supervision tree: opens (or creates) the database, recovers every machine's state
 * depth-first, and starts the event loop. Rejects with ConfigError, DatabaseLockedError,
 * SchemaVersionError, StorageError, RecoveryError or StartError (a machine that failed to start,
 * named, with the cause).
 */
export async function startApplication(tree: SupervisorSpec, options: ApplicationOptions = {}): Promise<App> {
  const app = new App(tree, options);
  await app.start();
  return app;
}
