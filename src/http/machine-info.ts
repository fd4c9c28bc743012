import type { StatusNode } from '../engine/runtime-tree.js';

/** One worker of the tree, flattened, as listed by `GET /v1/machines`. */
export interface MachineInfo {
  readonly name: string;
  /** Names of the supervisors above it, root first. */
  readonly supervisors: readonly string[];
  readonly status: string;
  readonly restarts: number;
  readonly lastError: string | null;
  /** Last durable request sequence number. */
  readonly seq: number;
  /** Sequence number of the latest snapshot (0: none yet). */
  readonly snapshotSeq: number;
  /** The latest snapshot: what it covers, when it was taken, its size in bytes. */
  readonly snapshot: { readonly seq: number; readonly takenAt: string; readonly size: number } | null;
  readonly version: number;
}

/**
 * The workers of a status tree in depth-first order, each with the path of supervisors above
 * it: a client that only wants "how is kv2 doing" should not have to walk the tree.
 */
export function machineInfos(node: StatusNode, supervisors: readonly string[] = []): MachineInfo[] {
  if (node.kind === 'supervisor') return node.children.flatMap((c) => machineInfos(c, [...supervisors, node.name]));
  // A family of entities is not a machine: its entities are listed by /v1/entities/FAMILY.
  if (node.kind === 'entities') return [];
  const { name, status, restarts, lastError, seq, snapshotSeq, snapshot, version } = node;
  return [{ name, supervisors, status, restarts, lastError, seq, snapshotSeq, snapshot, version }];
}
