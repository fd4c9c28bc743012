import { MachineStoppedError, RecoveryError, StartError, UnknownMachineError, describe } from '../errors.js';
import { entityKeyProblem } from '../model/entities.js';
import type { AnyMachine } from '../model/machine.js';
import type { EntityListing, EntityPageOptions, SnapshotMeta } from '../storage/rows.js';
import type { EventLoop } from './event-loop.js';
import { runHook } from './hooks.js';
import { knownEntities, listEntities } from './entity-listing.js';
import { checkpointEntities } from './entity-checkpoint.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { Persistence } from './persistence.js';
import { WorkerNode, type EntityFamilyNode } from './runtime-tree.js';

/** Why an entity leaves memory: put to sleep (idle, LRU), its family stopping, or a start being undone (nothing written). */
type SleepReason = 'sleep' | 'stop' | 'abort';

/**
 * The run-time side of entity families: waking an entity on its first request (from its own
 * snapshot and log, synchronously at the door unless its machine has an `onStart` hook),
 * putting idle and least recently used ones to sleep, and rebuilding a crashed one from disk.
 * An awake entity is a {@link WorkerNode} named `'<family>/<key>'`, so the batch cycle, the
 * log, snapshots, failure rows and idempotency keys treat it as any machine. Crash policy
 * (intensity, escalation) is {@link Supervision}'s.
 */
export class EntityRuntime {
  private readonly families = new Map<string, EntityFamilyNode>();

  constructor(
    families: readonly EntityFamilyNode[],
    readable: (name: string) => boolean,
    private readonly persistence: Persistence,
    private readonly loop: EventLoop<WorkerNode>,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    for (const f of families) {
      f.readable = readable(f.name);
      this.families.set(f.name, f);
    }
  }

  /** `workers`, and the entities (woken on lookup): where a durable timer's row is delivered. An unknown name waits in the table. */
  withEntities(workers: ReadonlyMap<string, WorkerNode>): { get(name: string): WorkerNode | undefined } {
    return {
      get: (name) => {
        try {
          return workers.get(name) ?? this.resolve(name);
        } catch {
          return undefined;
        }
      },
    };
  }

  get size(): number {
    return this.families.size;
  }

  /** All families, in no particular order. */
  all(): IterableIterator<EntityFamilyNode> {
    return this.families.values();
  }

  /** The family `name` addresses (`'<family>/<key>'`), or undefined. */
  private split(name: string): { f: EntityFamilyNode; key: string } | undefined {
    const slash = name.indexOf('/');
    if (slash <= 0) return undefined;
    const f = this.families.get(name.slice(0, slash));
    return f && { f, key: name.slice(slash + 1) };
  }

  /** The machine of the family `name` addresses (for validating an input before waking anything). */
  machineOf(name: string): AnyMachine | undefined {
    return this.split(name)?.f.spec.machine;
  }

  /**
   * The entity `name` addresses, woken if it sleeps (throws UnknownMachineError for no such
   * family or an invalid key, MachineStoppedError while its family is not running, StartError or
   * RecoveryError when its state cannot be rebuilt). Marks it most recently used.
   */
  resolve(name: string): WorkerNode | undefined {
    const found = this.split(name);
    if (!found) return undefined;
    const { f, key } = found;
    let w = f.awake.get(key);
    if (w) {
      // Most recently used goes last: the sweep and the LRU look at the head only.
      f.awake.delete(key);
      f.awake.set(key, w);
    } else {
      const problem = entityKeyProblem(key);
      if (problem) throw new UnknownMachineError(`${name} (${problem})`);
      if (f.status !== 'running') throw new MachineStoppedError(name);
      w = this.wake(f, key, name);
    }
    w.lastUsed = performance.now();
    return w;
  }

  /** A node for entity `key` of `f`, not started. */
  private node(f: EntityFamilyNode, key: string, name: string): WorkerNode {
    const s = f.spec;
    const w = new WorkerNode({ kind: 'worker', name, machine: s.machine, restart: s.restart, shutdownMs: s.shutdownMs, backoff: null }, f.parent, -1);
    w.family = f;
    w.key = key;
    w.readable = f.readable;
    return w;
  }

  private wake(f: EntityFamilyNode, key: string, name: string): WorkerNode {
    const s = f.spec;
    const w = this.node(f, key, name);
    this.start(w);
    f.awake.set(key, w);
    if (f.awake.size > s.maxActive) this.scheduleEviction(f);
    return w;
  }

  /** Rebuilds `w` from disk; with an `onStart` hook, `w.transition` settles once it ran. Throws StartError or RecoveryError. */
  private start(w: WorkerNode): void {
    const t0 = performance.now();
    w.status = 'starting';
    try {
      this.persistence.restore(w);
    } catch (err) {
      w.status = 'failed';
      w.lastError = describe(err);
      throw err instanceof RecoveryError ? err : new StartError(w.name, err);
    }
    w.registered = w.seq > 0;
    this.metrics.wakes++;
    const started = (): void => {
      w.status = 'running';
      w.startedAt = performance.now();
      this.metrics.wakeSeconds.observe((w.startedAt - t0) / 1000);
    };
    if (!w.machine.onStart) return started();
    const done = runHook(w, 'onStart', this.log).then(() => {
      if (w.transition === done) w.transition = null;
      if (w.status === 'starting') started();
    });
    w.transition = done;
  }

  /** Starts a family: nothing is loaded; its sweep starts. */
  startFamily(f: EntityFamilyNode): void {
    f.status = 'running';
    f.restartTimes = [];
    const every = Math.min(1000, Math.max(10, Math.floor(f.spec.idleMs / 4)));
    f.sweep = setInterval(() => this.sweepIdle(f), every);
    f.sweep.unref();
  }

  /** Stops a family: every awake entity goes to sleep (snapshotted unless `abort` or crashed). Under the loop's lock. */
  async stopFamily(f: EntityFamilyNode, reason: 'stop' | 'abort'): Promise<void> {
    if (f.sweep) clearInterval(f.sweep);
    f.sweep = null;
    if (f.status !== 'failed') f.status = 'stopped';
    await this.sleep([...f.awake.values()], reason);
    f.awake.clear();
  }

  private sweepIdle(f: EntityFamilyNode): void {
    if (f.status !== 'running' || f.evicting) return;
    const head = f.awake.values().next().value;
    if (head && head.lastUsed <= performance.now() - f.spec.idleMs) this.underLock(f);
  }

  private scheduleEviction(f: EntityFamilyNode): void {
    if (!f.evicting) this.underLock(f);
  }

  /**
   * Between batches: puts to sleep the entities idle for `idleMs`, and the least recently used
   * beyond `maxActive` (down to a little under it, so one transaction holds many snapshots).
   * Chosen under the lock, from the head of the LRU order; never one with a request in flight.
   */
  private underLock(f: EntityFamilyNode): void {
    f.evicting = true;
    void this.loop
      .exclusive(async () => {
        f.evicting = false;
        if (f.status !== 'running') return;
        const idleBefore = performance.now() - f.spec.idleMs;
        const target = f.spec.maxActive - Math.floor(f.spec.maxActive / 64);
        let over = f.awake.size - target;
        const victims: WorkerNode[] = [];
        for (const w of f.awake.values()) {
          if (over <= 0 && w.lastUsed > idleBefore) break;
          if (w.inFlight === 0 && w.status === 'running') {
            victims.push(w);
            over--;
          }
        }
        await this.sleep(victims, 'sleep');
      })
      .catch((error: unknown) => this.log({ type: 'snapshot_failed', machine: f.name, error }));
  }

  /**
   * Puts `victims` to sleep, between batches: their snapshots in one transaction, then their
   * hooks, then out of memory. A request that arrived meanwhile waits on `transition` and wakes
   * its entity again (from the snapshot just written) once it is asleep.
   */
  private async sleep(victims: readonly WorkerNode[], reason: SleepReason): Promise<void> {
    if (victims.length === 0) return;
    let settle!: () => void;
    const transition = new Promise<void>((r) => (settle = r));
    const snapshot: WorkerNode[] = [];
    for (const w of victims) {
      if (w.status === 'running' && reason !== 'abort') snapshot.push(w);
      if (w.status === 'running' || w.status === 'starting') w.status = 'sleeping';
      w.transition = transition;
    }
    const large = snapshot.filter((w) => this.persistence.isLarge(w));
    const small = snapshot.filter((w) => !this.persistence.isLarge(w));
    try {
      this.persistence.entities.transaction(() => {
        for (const w of small) this.persistence.tryCheckpointNow(w, 'terminate');
      });
    } catch (error) {
      // Their logs are intact: a wake replays them instead.
      this.log({ type: 'snapshot_failed', machine: victims[0]!.name, error });
    }
    for (const w of large) await this.persistence.tryCheckpoint(w, 'terminate');
    for (const w of victims) if (w.machine.onTerminate && reason !== 'abort') await runHook(w, 'onTerminate', this.log);
    for (const w of victims) {
      const f = w.family!;
      w.state = undefined;
      this.metrics.sleeps++;
      w.transition = null;
      if (w.inFlight > 0 && reason === 'sleep' && f.status === 'running' && f.awake.get(w.key) === w) {
        // Asked for while it went to sleep: back at once, from what was just written.
        try {
          this.start(w);
          // Its requests wait on the transition of the sleep: it ends once the entity runs again.
          if (w.transition) await w.transition;
          continue;
        } catch (error) {
          this.log({ type: 'crashed', machine: w.name, error });
        }
      }
      w.status = 'stopped';
      if (f.awake.get(w.key) === w) f.awake.delete(w.key);
    }
    settle();
  }

  /** Snapshots entity `name`, or every entity changed since its last snapshot (see {@link checkpointEntities}), each under the loop's lock in turn. */
  checkpoint(name?: string): Promise<SnapshotMeta[]> {
    return checkpointEntities(this.families.values(), this.persistence, name, (entity) => this.resolve(entity)!, (f, key, entity) => this.node(f, key, entity), (fn) => this.loop.exclusive(fn));
  }

  /** Rebuilds a crashed entity from disk (its supervisor decided so). Throws StartError or RecoveryError, leaving it out of memory. */
  async restart(w: WorkerNode): Promise<void> {
    if (w.machine.onTerminate) await runHook(w, 'onTerminate', this.log);
    w.state = undefined;
    w.restarts++;
    w.family!.restarts++;
    this.metrics.restarts++;
    try {
      this.start(w);
    } catch (err) {
      this.forget(w);
      throw err;
    }
    if (w.transition) await w.transition;
  }

  /** A crashed (or unloadable) entity leaves memory without a snapshot; its next request wakes it from disk. */
  async drop(w: WorkerNode): Promise<void> {
    if (w.machine.onTerminate && w.state !== undefined) await runHook(w, 'onTerminate', this.log);
    this.forget(w);
  }

  /** An entity that stopped normally goes to sleep now (under the loop's lock). */
  async sleepNow(w: WorkerNode): Promise<void> {
    if (w.status === 'running') await this.sleep([w], 'sleep');
  }

  /** Takes `w` out of memory at once, without a snapshot or hooks. */
  forget(w: WorkerNode): void {
    w.state = undefined;
    w.status = 'stopped';
    const f = w.family!;
    if (f.awake.get(w.key) === w) f.awake.delete(w.key);
  }

  /** The number of registered entities of `f`. */
  known(f: EntityFamilyNode): number {
    return knownEntities(this.persistence, f);
  }

  /** One page of family `name`'s registered entities (see App.entities). */
  list(name: string, options: EntityPageOptions): EntityListing[] {
    return listEntities(this.persistence, this.families.get(name), name, options);
  }
}
