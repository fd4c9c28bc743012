/** Row types: what the store writes and what its readers get back. */

/** One machine's requests from one batch. */
export interface LogGroup {
  readonly machine: string;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly count: number;
  /** CBOR sequence of the inputs, in order. */
  readonly requests: Uint8Array;
  /** The same inputs as a JSON array, for the `requests` view (null: readable tables off). */
  readonly requestsJson?: string | null;
}

/** A changed row of `kv_entries`: its JSON value, or null when the key is gone. */
export interface EntryChange {
  readonly machine: string;
  readonly key: string;
  readonly value: string | null;
  readonly seq: number;
}

/** A machine's whole state as JSON for `machine_states` (null state: see the note). */
export interface ReadableState {
  readonly state: string | null;
  readonly note: string | null;
}

/**
 * One machine's idempotency keys of one batch: one row, written in the batch's commit (a row per
 * key would cost an index entry at a random place per key in every commit).
 */
export interface IdempotencyBatchRow {
  /** Assigned by the engine, in commit order. */
  readonly id: number;
  readonly machine: string;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly count: number;
  /** JSON array of `[key, seq]` per request, `[key, seq, 0]` where no reply is kept. */
  readonly entries: string;
  /** `keyFingerprint` of each entry, in order, as little-endian u32. */
  readonly fingerprints: Uint8Array;
  /** The first 16 bytes of sha256 of each logged input, in order. */
  readonly hashes: Uint8Array;
  /** CBOR array of the replies, in order (null where none is kept). */
  readonly replies: Uint8Array;
}

/** An idempotency row as read back for a retry. */
export interface StoredIdempotencyBatch {
  readonly id: number;
  readonly machine: string;
  readonly createdAt: string;
  readonly entries: string;
  /** Null for rows migrated from version 7 (their entries hold the hash and reply). */
  readonly hashes: Uint8Array | null;
  readonly replies: Uint8Array | null;
}

/** A change to the timers table, in the order the steps of a batch asked for it. */
export type TimerChange =
  | { readonly kind: 'set'; readonly machine: string; readonly timer: string; readonly dueMs: number; readonly input: Uint8Array; readonly seq: number }
  | { readonly kind: 'cancel'; readonly machine: string; readonly timer: string };

/** A pending timer as stored. */
export interface TimerRow {
  /** The row's id: a timer set again gets a new one. */
  readonly id: number;
  readonly machine: string;
  readonly timer: string;
  readonly dueMs: number;
  readonly dueAt: string;
  /** CBOR of the input it delivers. */
  readonly input: Uint8Array;
  readonly setSeq: number;
  readonly setAt: string;
}

/** What a batch commits besides its log rows, in the same transaction. */
export interface BatchExtras {
  readonly keys: readonly IdempotencyBatchRow[];
  /** Idempotency rows up to this id are past retention: removed in this commit. */
  readonly keysExpireThrough: number | null;
  /** Rows (ids) of the timers whose input this batch delivered. */
  readonly firedTimers: readonly number[];
  readonly timerChanges: readonly TimerChange[];
  /** Rows of `kv_entries` this batch changed, and the seq each projected machine's rows now reflect. */
  readonly entries: readonly EntryChange[];
  readonly entriesSeq: readonly { readonly machine: string; readonly seq: number }[];
  /** Entities whose first state-changing request this batch commits: their registry rows. */
  readonly entities?: readonly EntityRegistration[];
  /** Entities a step of this batch deleted: every row of each goes, after the rest of the batch. */
  readonly deleted?: readonly string[];
}

export interface SnapshotMeta {
  readonly id: number;
  readonly machine: string;
  readonly seq: number;
  readonly stateVersion: number;
  readonly takenAt: string;
  readonly reason: string;
  readonly size: number;
  readonly checksum: string;
  /** Why recovery quarantined this snapshot, or null if it is good. */
  readonly rejected: string | null;
}

/** A snapshot with its state, for checking it (`ssm verify`). */
export interface StoredSnapshot {
  readonly id: number;
  readonly seq: number;
  readonly checksum: string;
  readonly state: Uint8Array;
}

export interface LogRow {
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** The count the row was written with: `ssm verify` checks it against the range and the blob. */
  readonly count: number;
  readonly loggedAt: string;
  readonly requests: Uint8Array;
  /** sha256 (hex) of `requests` as written; null for rows written before schema version 3 (not checked). */
  readonly checksum: string | null;
}

export interface FailedRequest {
  readonly id: number;
  readonly machine: string;
  readonly afterSeq: number;
  readonly failedAt: string;
  readonly errorName: string;
  readonly errorMessage: string;
  readonly stack: string | null;
  readonly input: Uint8Array | null;
}

export interface MachineRow {
  readonly name: string;
  readonly status: string;
  readonly stateVersion: number;
  readonly restarts: number;
  readonly lastError: string | null;
  /** The seq recorded durable at the last snapshot or clean close (null: not recorded). */
  readonly durableSeq: number | null;
}

/** One row of `PRAGMA foreign_key_check`: a reference to a parent row that does not exist. */
export interface ForeignKeyViolation {
  readonly table: string;
  readonly rowid: number | null;
  readonly parent: string;
  readonly fkid: number;
}

/** What the retention rule removed. */
export interface Pruned {
  readonly snapshots: number;
  readonly logRows: number;
}

/** An entity to register in the commit of its first state-changing request. */
export interface EntityRegistration {
  readonly machine: string;
  readonly family: string;
  readonly key: string;
  readonly version: number;
}

/** One registered entity, as `app.entities()` lists it. */
export interface EntityListing {
  readonly key: string;
  /** Its last durable seq (its live seq while awake). */
  readonly seq: number;
  readonly awake: boolean;
  /** Seq of its latest good snapshot (0: none). */
  readonly snapshotSeq: number;
}

/** Paging of `app.entities()`: keys starting with `prefix`, after `after`, at most `limit` (default 100, at most 1000). */
export interface EntityPageOptions {
  readonly prefix?: string;
  readonly after?: string;
  readonly limit?: number;
}
