/**
 * What storage reports to the engine and to users: types only, with no dependency on the SQLite
 * driver, so the package's public types need nothing but this package (and @types/node).
 */
import type { SnapshotMeta } from './rows.js';

/** How a machine's state was rebuilt. */
export interface RecoveryReport {
  /** `snapshot`: the newest snapshot; `older-snapshot`: newer ones failed verification; `init`: no usable snapshot. */
  readonly path: 'snapshot' | 'older-snapshot' | 'init';
  /** Sequence number of the snapshot used (0 for init). */
  readonly snapshotSeq: number;
  readonly snapshotVersion: number | null;
  /** The snapshot's state version when `migrate()` had to bring it to the machine's, else null. */
  readonly migratedFrom: number | null;
  /** The snapshot used, without its state (null for init). */
  readonly snapshot: SnapshotMeta | null;
  /** Snapshots skipped, with why. */
  readonly rejected: readonly { readonly seq: number; readonly id: number; readonly reason: string }[];
  /** Requests replayed from the log. */
  readonly replayed: number;
  /** Bytes of log replayed. */
  readonly replayedBytes: number;
  /** Sequence number the state now includes. */
  readonly seq: number;
  readonly ms: { readonly load: number; readonly migrate: number; readonly replay: number };
}

export interface Recovered<S> {
  readonly state: S;
  readonly report: RecoveryReport;
}


/** Problems `PRAGMA integrity_check` (or `quick_check`) found in one table, or in the file as a whole (`table` null). */
export interface TableIntegrity {
  readonly table: string | null;
  readonly problems: readonly string[];
}

/** What a finished backup wrote. */
export interface BackupReport {
  /** The backup file (absolute). */
  readonly path: string;
  readonly bytes: number;
  readonly pages: number;
  /** Time copying, then time verifying the copy (ms). */
  readonly copyMs: number;
  readonly verifyMs: number;
}

/** Options of a backup. */
export interface BackupOptions {
  /** Called as pages are copied (`done` of `total`). */
  readonly onProgress?: (done: number, total: number) => void;
}

/** A machine held back after a crash loop (a row of `held_machines` not released). */
export interface HeldMachine {
  readonly machine: string;
  readonly heldAt: string;
  readonly runs: number;
  readonly windowMs: number;
  readonly lastError: string | null;
}
