import { dirname, join } from 'node:path';
import { startApplication, type App } from '../engine/application.js';
import { InvalidKeyError, InvalidOperationError, UpdateConflictError, DEFAULT_UPDATE_ATTEMPTS, type BatchOp, type EntriesOptions, type KV, type KVOptions, type SetOptions, type UpdateOptions, type WriteOptions } from './kv-api.js';
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

export { InvalidKeyError, InvalidOperationError, UpdateConflictError, DEFAULT_UPDATE_ATTEMPTS, type BatchOp, type EntriesOptions, type KV, type KVOptions, type SetOptions, type UpdateOptions, type WriteOptions } from './kv-api.js';

/** Default database of {@link openKV}, relative to the working directory. */
export const DEFAULT_KV_PATH = join(dirname(DEFAULT_DB_PATH), 'kv.db');

/** Name of the one machine behind an {@link openKV} store (as seen by `ssm inspect`). */
export const KV_MACHINE = 'kv';

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
