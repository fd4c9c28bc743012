import { dirname, join } from 'node:path';
import { startApplication, type App } from '../engine/application.js';
import type { ApplicationOptions } from '../engine/options.js';
import { decodeCbor, cbor } from '../encoding/cbor.js';
import { EncodeError, SsmError, describe } from '../errors.js';
import { LONE_SURROGATE, MAX_KEY_LENGTH, isWellFormed, kvStep, kvMachine, type KvInput, type KvState } from './kv-machine.js';
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

/** Options of {@link KV.entries}. */
export interface EntriesOptions {
  /** Only keys starting with this string. */
  prefix?: string;
  /** Only keys after this one (exclusive): the cursor of the previous page. */
  after?: string;
  /**
   * At most this many entries (a non-negative integer). For {@link KV.entries} any number (it
   * pages); for {@link KV.page} at most {@link MAX_PAGE_LIMIT} (RangeError otherwise).
   * @default every entry for `entries`; 1000 for `page`
   */
  limit?: number;
}

/**
 * A durable key-value store. Every method is asynchronous because it goes through the engine's
 * event loop; writes resolve only once durable (after the group commit of their batch).
 *
 * Values are copied in and out through CBOR: what `get` returns is exactly what the store would
 * return after a restart, and mutating a value after `set` (or one returned by `get`) never
 * changes the store.
 */
export interface KV<V = unknown> {
  /** Path of the database file. */
  readonly path: string;
  /** The value stored under `key`, or `undefined` if there is none. */
  get(key: string): Promise<V | undefined>;
  /** Stores `value` under `key`; resolves once the write is durable. */
  set(key: string, value: V): Promise<void>;
  /** Removes `key`; resolves with whether it existed, once the removal is durable. */
  delete(key: string): Promise<boolean>;
  /** Whether `key` has a value. */
  has(key: string): Promise<boolean>;
  /** Number of keys. */
  size(): Promise<number>;
  /**
   * `[key, value]` pairs in ascending key order (UTF-16 code unit order). Fetched as pages of
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
    step: (input, state) => (input.op === 'lookup' ? [state, state.get(input.key)] : kvStep(input, state)),
  });
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new InvalidKeyError(`key must be a string, got ${key === null ? 'null' : typeof key}`);
  if (key.length > MAX_KEY_LENGTH) throw new InvalidKeyError(`key of ${key.length} characters exceeds the limit of ${MAX_KEY_LENGTH}`);
  if (!isWellFormed(key)) throw new InvalidKeyError(LONE_SURROGATE);
}

function checkRange(what: string, { prefix, after, limit }: EntriesOptions): void {
  for (const [name, v] of [['prefix', prefix], ['after', after]] as const) {
    if (v !== undefined && typeof v !== 'string') throw new TypeError(`${what}: ${name} must be a string`);
    if (v !== undefined && !isWellFormed(v)) throw new InvalidKeyError(LONE_SURROGATE);
  }
  if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 0) && limit !== Number.POSITIVE_INFINITY) throw new RangeError(`${what}: limit must be a non-negative integer`);
}

class AppKV<V> implements KV<V> {
  constructor(private readonly app: App) {}

  get path(): string {
    return this.app.databasePath;
  }

  private async send(input: KvInput): Promise<unknown> {
    let bytes: Uint8Array;
    try {
      bytes = cbor.encode(input);
    } catch (err) {
      throw new EncodeError(`value is not encodable as CBOR: ${describe(err)}`, { cause: err });
    }
    return decodeCbor(await this.app.callBytes(KV_MACHINE, bytes));
  }

  async get(key: string): Promise<V | undefined> {
    checkKey(key);
    return (await this.send({ op: 'lookup', key })) as V | undefined;
  }

  async set(key: string, value: V): Promise<void> {
    checkKey(key);
    await this.send({ op: 'store', key, value });
  }

  async delete(key: string): Promise<boolean> {
    checkKey(key);
    return (await this.send({ op: 'delete', key })) as boolean;
  }

  async has(key: string): Promise<boolean> {
    checkKey(key);
    return (await this.send({ op: 'has', key })) as boolean;
  }

  async size(): Promise<number> {
    return (await this.send({ op: 'size' })) as number;
  }

  async entries(options: EntriesOptions = {}): Promise<[string, V][]> {
    checkRange('entries', options);
    const { prefix, limit = Number.POSITIVE_INFINITY } = options;
    const out: [string, V][] = [];
    let after = options.after;
    while (out.length < limit) {
      const page = (await this.send({ op: 'scan', prefix, after, limit: Math.min(limit - out.length, MAX_PAGE_LIMIT) })) as KvPage<V>;
      out.push(...page.entries);
      if (page.next === null) break;
      after = page.next;
    }
    return out;
  }

  async page(options: EntriesOptions = {}): Promise<KvPage<V>> {
    checkRange('page', options);
    if (options.limit !== undefined && options.limit > MAX_PAGE_LIMIT) throw new RangeError(`page: limit must be at most ${MAX_PAGE_LIMIT}`);
    return (await this.send({ op: 'scan', prefix: options.prefix, after: options.after, limit: options.limit })) as KvPage<V>;
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
