import type { HeldMachine } from '../storage/reports.js';
import type { ResolvedBackoff } from '../model/backoff.js';
import type { AnyMachine } from '../model/machine.js';
import type { RestartType, Strategy, SupervisorSpec, WorkerSpec } from '../model/tree.js';
import type { EntitiesSpec } from '../model/entities.js';

/** A snapshot as shown in status: what it covers, when, how big. */
export interface SnapshotInfo {
  readonly seq: number;
  readonly takenAt: string;
  readonly size: number;
}

/** A machine's state of life. */
/**
 * `held`: held back after a crash loop across process starts (ApplicationOptions.crashLoop)
 * until released; `backoff`: waiting for its delayed restart (WorkerOptions.backoff).
 */
export type WorkerStatus = 'starting' | 'running' | 'crashed' | 'restarting' | 'stopped' | 'failed' | 'held' | 'backoff' | 'sleeping';
export type SupervisorStatus = 'running' | 'restarting' | 'failed' | 'stopped';

/** Log growth since the latest snapshot, the input of the snapshot policy. */
export interface Growth {
  requests: number;
  bytes: number;
  firstAt: number | null;
}

/** A running worker: its machine, its live state and its persistence counters. */
export class WorkerNode {
  readonly kind = 'worker' as const;
  readonly name: string;
  readonly machine: AnyMachine;
  readonly restart: RestartType;
  readonly shutdownMs: number;
  state: unknown = undefined;
  status: WorkerStatus = 'stopped';
  /** Last sequence number applied to `state` (and, outside a batch, durable). */
  seq = 0;
  /** Sequence number of the latest good snapshot. */
  snapshotSeq = 0;
  /** The latest good snapshot, without its state. */
  snapshot: SnapshotInfo | null = null;
  growth: Growth = { requests: 0, bytes: 0, firstAt: null };
  restarts = 0;
  lastError: string | null = null;
  /** A policy snapshot is scheduled and has not run yet. */
  snapshotPending = false;
  /** Stopped by its own step (stopNormally) and not restarted: a transient or temporary child. */
  normalExit = false;
  /** Why it is held back, while its status is `held`. */
  held: HeldMachine | null = null;
  /** Whether its readable tables (request JSON, kv_entries, machine_states) are kept. */
  readable = false;
  readonly backoff: ResolvedBackoff | null;
  /** Crashes in a row (reset by a run of `backoff.resetAfterMs`), and when (monotonic ms) it last started. */
  consecutiveCrashes = 0;
  startedAt = 0;
  /** While its status is `backoff`: when (monotonic ms, performance.now()) it restarts, and a promise settled then. */
  restartAt = 0;
  restarted: Promise<void> | null = null;
  /** The family of an entity (null: a machine of the tree). */
  family: EntityFamilyNode | null = null;
  /** An entity's key within its family ('' for a machine of the tree). */
  key = '';
  /** An entity's requests admitted and not yet settled: it is not put to sleep while any are. */
  inFlight = 0;
  /** When (monotonic ms) an entity last got a request. */
  lastUsed = 0;
  /** Whether an entity has its row in the registry (it has committed a request). */
  registered = false;
  /** While an entity wakes or goes to sleep: settles when it is done (its requests wait for it). */
  transition: Promise<void> | null = null;

  constructor(spec: WorkerSpec, readonly parent: SupervisorNode, readonly index: number) {
    this.name = spec.name;
    this.machine = spec.machine;
    this.restart = spec.restart;
    this.shutdownMs = spec.shutdownMs;
    this.backoff = spec.backoff;
  }
}

/** A running supervisor: its children and its restart window. */
export class SupervisorNode {
  readonly kind = 'supervisor' as const;
  readonly name: string;
  readonly strategy: Strategy;
  readonly intensity: number;
  readonly periodMs: number;
  readonly children: RuntimeNode[] = [];
  restartTimes: number[] = [];
  status: SupervisorStatus = 'stopped';

  constructor(spec: SupervisorSpec, readonly parent: SupervisorNode | null, readonly index: number, path: string) {
    this.name = spec.name ?? path;
    this.strategy = spec.strategy;
    this.intensity = spec.intensity;
    this.periodMs = spec.periodMs;
    spec.children.forEach((child, i) => {
      this.children.push(child.kind === 'worker' ? new WorkerNode(child, this, i) : child.kind === 'entities' ? new EntityFamilyNode(child, this, i) : new SupervisorNode(child, this, i, `${this.name}/${i}`));
    });
  }
}

/**
 * A family of entities: a supervisor of its entities, which it holds only while they are
 * awake (at most `maxActive`, least recently used first out). Its logic is in EntityRuntime.
 */
export class EntityFamilyNode {
  readonly kind = 'entities' as const;
  readonly name: string;
  /** Awake entities by key, least recently used first (a request moves its entity last). */
  readonly awake = new Map<string, WorkerNode>();
  restartTimes: number[] = [];
  status: SupervisorStatus = 'stopped';
  /** Registered entities (rows in the registry), read from storage when first needed. */
  known: number | null = null;
  /** Keys of entities that crashed since the application started. */
  readonly crashedKeys = new Set<string>();
  restarts = 0;
  /** The sweep that puts idle entities to sleep, while the family runs. */
  sweep: NodeJS.Timeout | null = null;
  /** An eviction past `maxActive` is scheduled. */
  evicting = false;
  readable = false;

  constructor(readonly spec: EntitiesSpec, readonly parent: SupervisorNode, readonly index: number) {
    this.name = spec.name;
  }
}

export type RuntimeNode = WorkerNode | SupervisorNode | EntityFamilyNode;

/** Workers below `node` in start (depth-first, left-to-right) order (not entities). */
export function workersOf(node: RuntimeNode): WorkerNode[] {
  if (node.kind === 'worker') return [node];
  if (node.kind === 'entities') return [];
  return node.children.flatMap(workersOf);
}

/** Whether a node is up (a worker running, a supervisor with its children started). */
export function isAlive(node: RuntimeNode): boolean {
  if (node.kind === 'entities') return node.status === 'running';
  return node.kind === 'worker' ? node.status === 'running' : node.status === 'running' || node.status === 'restarting';
}

/** Families of entities below `node`, in start order. */
export function familiesOf(node: RuntimeNode): EntityFamilyNode[] {
  if (node.kind === 'entities') return [node];
  if (node.kind === 'worker') return [];
  return node.children.flatMap(familiesOf);
}

/** The status tree returned by {@link App.status}. */
export type StatusNode =
  | {
      readonly kind: 'supervisor';
      readonly name: string;
      readonly strategy: Strategy;
      readonly status: SupervisorStatus;
      readonly children: readonly StatusNode[];
    }
  | {
      readonly kind: 'worker';
      readonly name: string;
      readonly status: WorkerStatus;
      readonly restarts: number;
      readonly lastError: string | null;
      /** Last applied (and durable) request sequence number. */
      readonly seq: number;
      /** Sequence number of the latest snapshot. */
      readonly snapshotSeq: number;
      /** The latest snapshot (null if none yet). */
      readonly snapshot: SnapshotInfo | null;
      readonly version: number;
    }
  | {
      /** A family of entities: one node with counts, never a child per entity. */
      readonly kind: 'entities';
      readonly name: string;
      readonly status: SupervisorStatus;
      /** Entities with a row in the registry (that committed a request). */
      readonly known: number;
      /** Entities in memory now. */
      readonly awake: number;
      /** Known entities not in memory. */
      readonly sleeping: number;
      /** Entities that crashed since the application started. */
      readonly crashed: number;
      /** Restarts of its entities after crashes since the application started. */
      readonly restarts: number;
    };

export function statusOf(node: RuntimeNode, knownOf: (f: EntityFamilyNode) => number = (f) => f.known ?? 0): StatusNode {
  if (node.kind === 'entities') {
    const known = knownOf(node);
    let awakeKnown = 0;
    for (const w of node.awake.values()) if (w.registered) awakeKnown++;
    return { kind: 'entities', name: node.name, status: node.status, known, awake: node.awake.size, sleeping: Math.max(0, known - awakeKnown), crashed: node.crashedKeys.size, restarts: node.restarts };
  }
  if (node.kind === 'supervisor') {
    return { kind: 'supervisor', name: node.name, strategy: node.strategy, status: node.status, children: node.children.map((c) => statusOf(c, knownOf)) };
  }
  return {
    kind: 'worker',
    name: node.name,
    status: node.status,
    restarts: node.restarts,
    lastError: node.lastError,
    seq: node.seq,
    snapshotSeq: node.snapshotSeq,
    snapshot: node.snapshot,
    version: node.machine.version,
  };
}

/**
 * Whether a sibling restart (one_for_all, rest_for_one) takes `c` in: a running child, or, as in
 * OTP where a transient child that exited normally keeps its spec (pid undefined) and
 * `start_children` starts it again, a transient worker that stopped normally.
 */
export function present(c: RuntimeNode): boolean {
  // A held-back child is still there: a restart of its siblings starts it again if released.
  return isAlive(c) || (c.kind === 'worker' && ((c.normalExit && c.restart === 'transient') || c.status === 'held'));
}
