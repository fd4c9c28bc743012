import type { HeldMachine } from '../storage/reports.js';
import type { ResolvedBackoff } from '../model/backoff.js';
import type { AnyMachine } from '../model/machine.js';
import type { RestartType, Strategy, SupervisorSpec, WorkerSpec } from '../model/tree.js';

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
export type WorkerStatus = 'starting' | 'running' | 'crashed' | 'restarting' | 'stopped' | 'failed' | 'held' | 'backoff';
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
  /** While its status is `backoff`: when (wall clock ms) it restarts, and a promise settled then. */
  restartAt = 0;
  restarted: Promise<void> | null = null;

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
      this.children.push(child.kind === 'worker' ? new WorkerNode(child, this, i) : new SupervisorNode(child, this, i, `${this.name}/${i}`));
    });
  }
}

export type RuntimeNode = WorkerNode | SupervisorNode;

/** Workers below `node` in start (depth-first, left-to-right) order. */
export function workersOf(node: RuntimeNode): WorkerNode[] {
  if (node.kind === 'worker') return [node];
  return node.children.flatMap(workersOf);
}

/** Whether a node is up (a worker running, a supervisor with its children started). */
export function isAlive(node: RuntimeNode): boolean {
  return node.kind === 'worker' ? node.status === 'running' : node.status === 'running' || node.status === 'restarting';
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
    };

export function statusOf(node: RuntimeNode): StatusNode {
  if (node.kind === 'supervisor') {
    return { kind: 'supervisor', name: node.name, strategy: node.strategy, status: node.status, children: node.children.map(statusOf) };
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
