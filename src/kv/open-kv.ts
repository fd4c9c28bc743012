import { dirname, join } from 'node:path';
import { startApplication, type App } from '../engine/application.js';
import type { ApplicationOptions } from '../engine/options.js';
import { decodeCbor, cbor } from '../encoding/cbor.js';
import { EncodeError, SsmError, describe } from '../errors.js';
import type { CallOptions } from '../engine/options.js';
import { LONE_SURROGATE, MAX_KEY_LENGTH, isWellFormed, kvMachine, kvStepWithExpiry, type KvInput, type KvState } from './kv-machine.js';
import { checkTtlMs, isLive } from './kv-expiry.js';
import { MAX_KEYS_PER_OP } from './kv-ops.js';
import { MAX_PAGE_LIMIT, type KvPage } from './kv-page.js';
import { defineMachine } from '../model/machine.js';
import { DEFAULT_DB_PATH } from '../storage/store-options.js';
import { supervisor, worker } from '../model/tree.js';

/** Default database of {@link openKV}, relative to the working directory. */
export const DEFAULT_KV_PATH = join(dirname(DEFAULT_DB_PATH), 'kv.db');

/** Name of the one machine behind an {@link openKV} store (as seen by `ssm inspect`). */
export const KV_MACHINE = 'kv';

/** A key that is not a string, is longer than {@link MAX_KEY_LENGTH} UTF-16 code units, or holds a lone surrogate. */
export class InvalidKeyError extends SsmError {
  constructor(message: string) {
    super('INVALID_KEY', message);
  }
}

/** Options of {@link openKV}: those of {@link startApplication} except `db` (the path argument). */
export interface KVOptions extends Omit<ApplicationOptions, 'db'> {}

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
   * 1024 bytes of UTF-8.
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
   * batch before anything is sent.
   */
  batch(ops: readonly BatchOp<V>[], options?: WriteOptions): Promise<void>;
  /**
   * `[key, value]` pairs of a range (`prefix`, `start` inclusive, `end` exclusive), in ascending
   * key order (UTF-16 code unit order) or descending with `reverse`. Fetched as pages of
   * {@link KV.page}, so other callers are served between pages: on a store being written, the
   * result is not one atomic view (each page is; a key changed meanwhile may be seen either way).
   */
  entries(options?: EntriesOptions): Promise<[string, V][]>;
  /**
   * One page of at most `limit` entries (default 1000, at most 10,000) and about 1 MiB, in key
   * order, with the cursor to pass as `after` for the next one (`null`: nothing is left).
   * Costs O(log n + limit) once the store's ordered index exists (the first range read waits
   * for it to be built in the background, see `ShardedMap.whenIndexed`).
   */
  page(options?: EntriesOptions): Promise<KvPage<V>>;
  /**
   * Finishes queued work, snapshots the state and closes the database. Idempotent. Calls made
   * afterwards reject with ApplicationStoppedError.
   */
  close(): Promise<void>;
}

/**
 * {@link kvMachine} with one difference: a lookup answers `undefined` for a missing key, so that
 * a stored `null` stays distinct. Inputs, state and log format are the same, so `ssm inspect`
 * reads both alike.
 */
function embeddedKvMachine() {
  const base = kvMachine();
  return defineMachine<KvState, KvInput, unknown>({
    ...base,
    step: (input, state) => (input.op === 'lookup' ? [state, isLive(state, input.key, input.now) ? state.get(input.key) : undefined] : kvStepWithExpiry(input, state)),
  });
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new InvalidKeyError(`key must be a string, got ${key === null ? 'null' : typeof key}`);
  if (key.length > MAX_KEY_LENGTH) throw new InvalidKeyError(`key of ${key.length} characters exceeds the limit of ${MAX_KEY_LENGTH}`);
  if (!isWellFormed(key)) throw new InvalidKeyError(LONE_SURROGATE);
}

function checkTtl(ttlMs: unknown): number | undefined {
  if (ttlMs === undefined) return undefined;
  try {
    return checkTtlMs(ttlMs);
  } catch (err) {
    throw new InvalidOperationError(describe(err));
  }
}

function checkRange(what: string, { prefix, after, start, end, limit, reverse }: EntriesOptions): void {
  for (const [name, v] of [['prefix', prefix], ['after', after], ['start', start], ['end', end]] as const) {
    if (v !== undefined && typeof v !== 'string') throw new TypeError(`${what}: ${name} must be a string`);
    if (v !== undefined && !isWellFormed(v)) throw new InvalidKeyError(LONE_SURROGATE);
  }
  if (reverse !== undefined && typeof reverse !== 'boolean') throw new TypeError(`${what}: reverse must be a boolean`);
  if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 0) && limit !== Number.POSITIVE_INFINITY) throw new RangeError(`${what}: limit must be a non-negative integer`);
}

/** The range fields of a page request, without the undefined ones (they would be logged as such). */
function rangeOf(options: EntriesOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of ['prefix', 'start', 'end', 'after'] as const) if (options[f] !== undefined) out[f] = options[f];
  if (options.reverse) out['reverse'] = true;
  return out;
}

/** `{ idempotencyKey }` for the engine, or nothing. */
function callOptions(options: WriteOptions | undefined): CallOptions {
  return options?.idempotencyKey === undefined ? {} : { idempotencyKey: options.idempotencyKey };
}

class AppKV<V> implements KV<V> {
  constructor(private readonly app: App) {}

  get path(): string {
    return this.app.databasePath;
  }

  private async send(input: KvInput, options: CallOptions = {}): Promise<unknown> {
    let bytes: Uint8Array;
    try {
      bytes = cbor.encode(input);
    } catch (err) {
      throw new EncodeError(`value is not encodable as CBOR: ${describe(err)}`, { cause: err });
    }
    return decodeCbor(await this.app.callBytes(KV_MACHINE, bytes, options));
  }

  async get(key: string): Promise<V | undefined> {
    checkKey(key);
    return (await this.send({ op: 'lookup', key })) as V | undefined;
  }

  async set(key: string, value: V, options?: SetOptions): Promise<void> {
    checkKey(key);
    const ttlMs = checkTtl(options?.ttlMs);
    await this.send({ op: 'store', key, value, ...(ttlMs === undefined ? {} : { ttlMs }) }, callOptions(options));
  }

  async delete(key: string, options?: WriteOptions): Promise<boolean> {
    checkKey(key);
    return (await this.send({ op: 'delete', key }, callOptions(options))) as boolean;
  }

  async has(key: string): Promise<boolean> {
    checkKey(key);
    return (await this.send({ op: 'has', key })) as boolean;
  }

  async size(): Promise<number> {
    return (await this.send({ op: 'size' })) as number;
  }

  async ttl(key: string): Promise<number | null | undefined> {
    checkKey(key);
    const ms = (await this.send({ op: 'ttl', key })) as number;
    return ms === -2 ? undefined : ms === -1 ? null : ms;
  }

  async expire(key: string, ttlMs: number, options?: WriteOptions): Promise<boolean> {
    checkKey(key);
    if (ttlMs === undefined) throw new InvalidOperationError('expire needs a ttlMs');
    return (await this.send({ op: 'expire', key, ttlMs: checkTtl(ttlMs)! }, callOptions(options))) as boolean;
  }

  async persist(key: string, options?: WriteOptions): Promise<boolean> {
    checkKey(key);
    return (await this.send({ op: 'persist', key }, callOptions(options))) as boolean;
  }

  async setIfAbsent(key: string, value: V, options?: SetOptions): Promise<boolean> {
    checkKey(key);
    const ttlMs = checkTtl(options?.ttlMs);
    const out = (await this.send({ op: 'storeIf', key, value, when: 'absent', returnOld: false, ...(ttlMs === undefined ? {} : { ttlMs }) }, callOptions(options))) as { stored: boolean };
    return out.stored;
  }

  async compareAndSet(key: string, expected: V | undefined, next: V, options?: SetOptions): Promise<boolean> {
    checkKey(key);
    const ttlMs = checkTtl(options?.ttlMs);
    return (await this.send({ op: 'compareAndSet', key, expected, value: next, ...(ttlMs === undefined ? {} : { ttlMs }) }, callOptions(options))) as boolean;
  }

  async update(key: string, fn: (value: V | undefined) => V, options: UpdateOptions = {}): Promise<V> {
    checkKey(key);
    if (typeof fn !== 'function') throw new InvalidOperationError('update needs a function');
    const attempts = options.maxAttempts ?? DEFAULT_UPDATE_ATTEMPTS;
    if (!Number.isSafeInteger(attempts) || attempts < 1) throw new InvalidOperationError(`update: maxAttempts must be a positive integer, got ${String(attempts)}`);
    const ttlMs = checkTtl(options.ttlMs);
    for (let i = 0; i < attempts; i++) {
      const current = await this.get(key);
      const next = fn(current);
      if (await this.compareAndSet(key, current, next, ttlMs === undefined ? {} : { ttlMs })) return next;
    }
    throw new UpdateConflictError(key, attempts);
  }

  async batch(ops: readonly BatchOp<V>[], options?: WriteOptions): Promise<void> {
    if (!Array.isArray(ops)) throw new InvalidOperationError('batch needs an array of ops');
    if (ops.length > MAX_KEYS_PER_OP) throw new InvalidOperationError(`batch: more than ${MAX_KEYS_PER_OP} ops`);
    // Every op is checked before anything is sent: an invalid one applies nothing.
    const checked = ops.map((o, i): KvInput => {
      const op = (o as { op?: unknown } | null)?.op;
      try {
        if (op === 'set') {
          checkKey(o.key);
          const ttlMs = checkTtl((o as { ttlMs?: number }).ttlMs);
          return { op: 'store', key: o.key, value: (o as { value: V }).value, ...(ttlMs === undefined ? {} : { ttlMs }) };
        }
        if (op === 'delete') {
          checkKey(o.key);
          return { op: 'delete', key: o.key };
        }
      } catch (err) {
        if (err instanceof SsmError) throw new (err.constructor as new (m: string) => SsmError)(`batch op ${i}: ${err.message}; nothing was applied`);
        throw err;
      }
      throw new InvalidOperationError(`batch op ${i}: unknown op ${JSON.stringify(op)} (expected "set" or "delete"); nothing was applied`);
    });
    await this.send({ op: 'batch', ops: checked }, callOptions(options));
  }

  async entries(options: EntriesOptions = {}): Promise<[string, V][]> {
    checkRange('entries', options);
    const { limit = Number.POSITIVE_INFINITY } = options;
    const out: [string, V][] = [];
    const range = rangeOf(options);
    while (out.length < limit) {
      const page = (await this.send({ op: 'scan', ...range, limit: Math.min(limit - out.length, MAX_PAGE_LIMIT) } as KvInput)) as KvPage<V>;
      out.push(...page.entries);
      if (page.next === null) break;
      range['after'] = page.next;
    }
    return out;
  }

  async page(options: EntriesOptions = {}): Promise<KvPage<V>> {
    checkRange('page', options);
    if (options.limit !== undefined && options.limit > MAX_PAGE_LIMIT) throw new RangeError(`page: limit must be at most ${MAX_PAGE_LIMIT}`);
    return (await this.send({ op: 'scan', ...rangeOf(options), limit: options.limit } as KvInput)) as KvPage<V>;
  }

  close(): Promise<void> {
    return this.app.stop();
  }
}

/**
 * Opens (or creates) a durable key-value store at `path` (default `storage/kv.db`, folder
 * created). Behind it: one KV state machine under a supervisor, its request log and snapshots
 * in SQLite. The same file cannot be opened twice at once (DatabaseLockedError).
 *
 * Values are anything cbor-x round-trips: plain objects, arrays, strings, numbers, booleans,
 * `null`, `undefined`, `Map`, `Set`, `Date`, `Uint8Array` and other typed arrays, `bigint`.
 * Keys are strings of at most 4096 UTF-16 code units (InvalidKeyError otherwise). One `set`
 * (key and value encoded) may not exceed `maxPayloadBytes` (default 1 MiB; PayloadTooLargeError).
 *
 * `options` are those of the application (durability, snapshot policy, queue, timeouts); the
 * logger is silent unless one is given.
 *
 * @example
 * ```ts
 * const kv = await openKV<{ n: number }>('storage/counters.db');
 * await kv.set('a', { n: 1 });
 * console.log(await kv.get('a')); // { n: 1 }
 * await kv.close();
 * ```
 */
export async function openKV<V = unknown>(path: string = DEFAULT_KV_PATH, options: KVOptions = {}): Promise<KV<V>> {
  const tree = supervisor('one_for_one', [worker(KV_MACHINE, embeddedKvMachine())], { name: 'kv_root' });
  const app = await startApplication(tree, { ...options, logger: options.logger ?? false, db: path });
  return new AppKV<V>(app);
}
