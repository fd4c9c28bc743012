import type { ApplicationOptions } from '../engine/options.js';
import { SsmError } from '../errors.js';
import type { KvPage } from './kv-page.js';
import type { MAX_KEY_LENGTH } from './kv-machine.js';
import type { MAX_PARTITIONS } from './partition-hash.js';

/*
 * The public API of the embedded key-value store: its interface, options and errors.
 * The implementation is open-kv.ts.
 */

/** A key that is not a string, is longer than {@link MAX_KEY_LENGTH} UTF-16 code units, or holds a lone surrogate. */
export class InvalidKeyError extends SsmError {
  constructor(message: string) {
    super('INVALID_KEY', message);
  }
}

/**
 * Options of {@link openKV}: those of {@link startApplication} except `db` (the path argument),
 * and the layout of the store. Every invalid value is refused with ConfigError.
 */
export interface KVOptions extends Omit<ApplicationOptions, 'db'> {
  /**
   * Number of partitions, an integer from 1 to {@link MAX_PARTITIONS} (4096). With 1, the store
   * is one machine `kv`. With P > 1, keys are spread over P entities of the family `kv`
   * (`kv/p0`..`kv/p<P-1>`; a key's partition is `fnv1a32(utf8(key)) % P`, see
   * partition-hash.ts), each with its own log and snapshots: a snapshot costs the partition
   * that changed, not the store, and after a restart the first request is served once its own
   * partition is loaded. Every method behaves as with one machine, except that a `batch` must
   * keep to one partition (see {@link KV.batch}) and idempotency keys are scoped to a partition.
   *
   * Part of the on-disk format: the count is recorded in the file at its first open, and opening
   * it with another count (or a single-machine file with P > 1, or the reverse) is refused with
   * ConfigError, with nothing changed on disk.
   * @default 1
   */
  partitions?: number;
  /**
   * With `partitions` > 1: after opening, load every partition in the background, one at a time,
   * yielding to requests between them (a request waits for at most the partition being loaded).
   * `false`: a partition is loaded only by its first request (and `size` or a range read loads
   * them all).
   * @default true
   */
  warm?: boolean;
  /**
   * With `partitions` > 1: a partition without a request for this long (ms) is snapshotted (if it
   * changed) and leaves memory; its next request loads it again. `Infinity`: partitions stay in
   * memory once loaded, as the single machine does (its ordered index, built for range reads,
   * stays too). All P may be awake at once (the family's maxActive is P).
   * @default Infinity
   */
  partitionIdleMs?: number;
}

/**
 * An argument of a KV method that is not one it takes: a `ttlMs` that is not a positive
 * integer, a batch op that is not `set` or `delete`, a bad range bound or option. Nothing was
 * sent to the store, so nothing was applied.
 */
export class InvalidOperationError extends SsmError {
  constructor(message: string) {
    super('INVALID_OPERATION', message);
  }
}

/**
 * {@link KV.update} found the key changed under it on each of its attempts (another writer won
 * every time). Nothing of this update was applied; the key holds the other writers' value.
 */
export class UpdateConflictError extends SsmError {
  constructor(readonly key: string, readonly attempts: number) {
    super('UPDATE_CONFLICT', `update of ${JSON.stringify(key.slice(0, 64))} conflicted with other writers ${attempts} times; nothing of it was applied`);
  }
}

/** Options of {@link KV.entries} and {@link KV.page}: a key range (all bounds optional, all applied). */
export interface EntriesOptions {
  /** Only keys starting with this string. */
  prefix?: string;
  /** Only keys `>= start` (inclusive). */
  start?: string;
  /** Only keys `< end` (exclusive). */
  end?: string;
  /**
   * Only keys after this one in the order read (exclusive: `> after` ascending, `< after` with
   * `reverse`): the cursor `next` of the previous page.
   */
  after?: string;
  /**
   * The same range in descending key order.
   * @default false
   */
  reverse?: boolean;
  /**
   * At most this many entries (a non-negative integer). For {@link KV.entries} any number (it
   * pages); for {@link KV.page} at most {@link MAX_PAGE_LIMIT} (RangeError otherwise).
   * @default every entry for `entries`; 1000 for `page`
   */
  limit?: number;
}

/** Options of every write: see {@link KV}. */
export interface WriteOptions {
  /**
   * Makes the write safe to retry (the engine's idempotency keys, scoped to this store): the
   * first call with this key is applied and its reply kept; a retry with the same key and the
   * same arguments (in flight, or after a crash and restart) gets that reply and is not applied
   * again, even with a `ttlMs` (matched as given, not as the expiry time it became). The same key
   * with other arguments rejects with IdempotencyKeyReusedError. A non-empty string of at most
   * 1024 bytes of UTF-8. In a store with `partitions`, keys are scoped to the partition written:
   * a retry goes to the same partition and is recognised as above, but a key reused for a write
   * to a key of another partition is not detected (it is applied): use one idempotency key per
   * write.
   * @default none
   */
  idempotencyKey?: string;
}

/** Options of {@link KV.set}, {@link KV.setIfAbsent} and {@link KV.compareAndSet}. */
export interface SetOptions extends WriteOptions {
  /**
   * Time to live in ms (a positive integer): the key expires `ttlMs` after the call reaches the
   * store (by this process's clock), then reads as absent. Without it the key has no expiry (a
   * `set` clears the one it had).
   * @default no expiry
   */
  ttlMs?: number;
}

/** One op of {@link KV.batch}. */
export type BatchOp<V = unknown> = { readonly op: 'set'; readonly key: string; readonly value: V; readonly ttlMs?: number } | { readonly op: 'delete'; readonly key: string };

/** Options of {@link KV.update}. */
export interface UpdateOptions {
  /**
   * Attempts (read, `fn`, compare-and-set) before rejecting with UpdateConflictError.
   * @default 16
   */
  maxAttempts?: number;
  /**
   * Time to live of the written value, as {@link SetOptions.ttlMs}; without it the key keeps no
   * expiry (as `set`).
   * @default no expiry
   */
  ttlMs?: number;
}

/** Attempts of {@link KV.update} when not given. */
export const DEFAULT_UPDATE_ATTEMPTS = 16;

/**
 * A durable key-value store. Every method is asynchronous because it goes through the engine's
 * event loop; writes resolve only once durable (after the group commit of their batch).
 *
 * Values are copied in and out through CBOR: what `get` returns is exactly what the store would
 * return after a restart, and mutating a value after `set` (or one returned by `get`) never
 * changes the store.
 *
 * Keys may expire (`ttlMs`): an expired key is absent to every method at once, even before the
 * store's timer has removed it (see the README, "Time to live").
 */
export interface KV<V = unknown> {
  /** Path of the database file. */
  readonly path: string;
  /** Number of partitions (1: one machine). See {@link KVOptions.partitions}. */
  readonly partitions: number;
  /**
   * The partition (0..partitions-1) that holds `key` (always 0 without partitions); keys of one
   * partition can share a {@link batch}. Throws InvalidKeyError for a key the store refuses.
   */
  partitionOf(key: string): number;
  /**
   * Resolves once background warming (`warm: true`, the default) has been through every
   * partition (a partition that could not be loaded is skipped: its own requests get the
   * RecoveryError or StartError, and it is tried again on its next one), or stopped because the
   * store closed. At once for a store without partitions (everything is
   * loaded before {@link openKV} resolves) and with `warm: false`. Requests need not wait for it.
   */
  whenWarm(): Promise<void>;
  /** The value stored under `key`, or `undefined` if there is none (or it has expired). */
  get(key: string): Promise<V | undefined>;
  /** Stores `value` under `key` (with `ttlMs`, for that long); resolves once the write is durable. */
  set(key: string, value: V, options?: SetOptions): Promise<void>;
  /** Removes `key`; resolves with whether it existed, once the removal is durable. */
  delete(key: string, options?: WriteOptions): Promise<boolean>;
  /** Whether `key` has a value. */
  has(key: string): Promise<boolean>;
  /** Number of keys (expired ones not counted). */
  size(): Promise<number>;
  /** Remaining time to live of `key` in ms; `null` for a key without expiry, `undefined` for a missing one. */
  ttl(key: string): Promise<number | null | undefined>;
  /**
   * Gives an existing key a time to live of `ttlMs`; resolves with whether the key existed.
   */
  expire(key: string, ttlMs: number, options?: WriteOptions): Promise<boolean>;
  /** Removes the expiry of `key`; resolves with whether it had one. */
  persist(key: string, options?: WriteOptions): Promise<boolean>;
  /** Stores `value` only if `key` is absent; resolves with whether it wrote. One atomic request. */
  setIfAbsent(key: string, value: V, options?: SetOptions): Promise<boolean>;
  /**
   * Stores `next` only if the value under `key` is `expected`, compared by their CBOR bytes (so
   * a Map or an object must hold the same entries in the same order); a missing key compares as
   * `undefined`, what `get` answers for it. Resolves with whether it wrote. One atomic request.
   */
  compareAndSet(key: string, expected: V | undefined, next: V, options?: SetOptions): Promise<boolean>;
  /**
   * Read-modify-write: reads the value (undefined when missing), computes `fn(value)` here, in
   * the caller, and stores the result with {@link compareAndSet} against what was read; when
   * another writer changed the key in between, reads again and calls `fn` again, at most
   * `maxAttempts` times (then UpdateConflictError, nothing of it applied). Resolves with the
   * value written. `fn` is code, not data: it is never logged and never runs in the store's
   * step, and it may run several times, so it must not have side effects. No idempotencyKey: a
   * retried update calls `fn` on what it then reads (use compareAndSet with a key instead).
   */
  update(key: string, fn: (value: V | undefined) => V, options?: UpdateOptions): Promise<V>;
  /**
   * Applies `ops` (`set`, with an optional `ttlMs`, and `delete`) atomically, in order: one
   * request, one log entry. An invalid op (bad key, unknown op, bad `ttlMs`) rejects the whole
   * batch before anything is sent. In a store with `partitions`, every key of a batch must be in
   * one partition (same {@link partitionOf}): a batch across partitions is refused with
   * InvalidOperationError before anything is sent, never applied in part.
   */
  batch(ops: readonly BatchOp<V>[], options?: WriteOptions): Promise<void>;
  /**
   * `[key, value]` pairs of a range (`prefix`, `start` inclusive, `end` exclusive), in ascending
   * key order (UTF-16 code unit order) or descending with `reverse`. Fetched as pages of
   * {@link KV.page}, so other callers are served between pages: on a store being written, the
   * result is not one atomic view (each page is; a key changed meanwhile may be seen either way).
   * With `partitions`, a k-way merge of the partitions' ordered scans: the same entries in the
   * same order.
   */
  entries(options?: EntriesOptions): Promise<[string, V][]>;
  /**
   * One page of at most `limit` entries (default 1000, at most 10,000) and about 1 MiB, in key
   * order, with the cursor to pass as `after` for the next one (`null`: nothing is left).
   * Costs O(log n + limit) once the store's ordered index exists (the first range read waits
   * for it to be built in the background, see `ShardedMap.whenIndexed`). With `partitions`, the
   * same page and `next` as one machine gives for the same data, merged from every partition's
   * pages (so one page is an atomic view of each partition, not of the whole store).
   */
  page(options?: EntriesOptions): Promise<KvPage<V>>;
  /**
   * Finishes queued work, snapshots the state (each partition that changed) and closes the
   * database; stops background warming. Idempotent. Calls made afterwards reject with
   * ApplicationStoppedError.
   */
  close(): Promise<void>;
}
