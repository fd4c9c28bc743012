import type { CallOptions } from '../engine/options.js';
import { SsmError, describe } from '../errors.js';
import { InvalidKeyError, InvalidOperationError, type BatchOp, type EntriesOptions, type WriteOptions } from './kv-api.js';
import { checkTtlMs } from './kv-expiry.js';
import { LONE_SURROGATE, MAX_KEY_LENGTH, isWellFormed } from './kv-input.js';
import type { KvInput } from './kv-machine.js';
import { MAX_KEYS_PER_OP } from './kv-ops.js';
import { MAX_PAGE_LIMIT } from './kv-page.js';

/*
 * The argument checks of the embedded KV store's methods, shared by the single-machine store
 * and the partitioned one: both must refuse exactly the same calls with the same errors, and
 * every check runs before anything is sent, so a refused call applies nothing.
 */

/** Throws InvalidKeyError unless `key` is a string the store takes. */
export function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new InvalidKeyError(`key must be a string, got ${key === null ? 'null' : typeof key}`);
  if (key.length > MAX_KEY_LENGTH) throw new InvalidKeyError(`key of ${key.length} characters exceeds the limit of ${MAX_KEY_LENGTH}`);
  if (!isWellFormed(key)) throw new InvalidKeyError(LONE_SURROGATE);
}

/** A `ttlMs` option checked (InvalidOperationError), or undefined when not given. */
export function checkTtl(ttlMs: unknown): number | undefined {
  if (ttlMs === undefined) return undefined;
  try {
    return checkTtlMs(ttlMs);
  } catch (err) {
    throw new InvalidOperationError(describe(err));
  }
}

/** `{ ttlMs }` for an input, or nothing (an undefined field would be logged as such). */
export function ttlField(ttlMs: number | undefined): { ttlMs?: number } {
  return ttlMs === undefined ? {} : { ttlMs };
}

/** Checks the options of a range read (`what` is the method, for the message). */
export function checkRange(what: string, { prefix, after, start, end, limit, reverse }: EntriesOptions): void {
  for (const [name, v] of [['prefix', prefix], ['after', after], ['start', start], ['end', end]] as const) {
    if (v !== undefined && typeof v !== 'string') throw new TypeError(`${what}: ${name} must be a string`);
    if (v !== undefined && !isWellFormed(v)) throw new InvalidKeyError(LONE_SURROGATE);
  }
  if (reverse !== undefined && typeof reverse !== 'boolean') throw new TypeError(`${what}: reverse must be a boolean`);
  if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 0) && limit !== Number.POSITIVE_INFINITY) throw new RangeError(`${what}: limit must be a non-negative integer`);
}

/** {@link checkRange} for `page`, whose limit is also bounded by {@link MAX_PAGE_LIMIT}. */
export function checkPageRange(options: EntriesOptions): void {
  checkRange('page', options);
  if (options.limit !== undefined && options.limit > MAX_PAGE_LIMIT) throw new RangeError(`page: limit must be at most ${MAX_PAGE_LIMIT}`);
}

/** The range fields of a page request, without the undefined ones (they would be logged as such). */
export function rangeOf(options: EntriesOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of ['prefix', 'start', 'end', 'after'] as const) if (options[f] !== undefined) out[f] = options[f];
  if (options.reverse) out['reverse'] = true;
  return out;
}

/** `{ idempotencyKey }` for the engine, or nothing. */
export function callOptions(options: WriteOptions | undefined): CallOptions {
  return options?.idempotencyKey === undefined ? {} : { idempotencyKey: options.idempotencyKey };
}

/**
 * The ops of a `batch` as store inputs, every one checked first: an invalid op refuses the whole
 * batch (its error says which op, and that nothing was applied).
 */
export function checkBatchOps<V>(ops: readonly BatchOp<V>[]): { op: 'store' | 'delete'; key: string }[] {
  if (!Array.isArray(ops)) throw new InvalidOperationError('batch needs an array of ops');
  if (ops.length > MAX_KEYS_PER_OP) throw new InvalidOperationError(`batch: more than ${MAX_KEYS_PER_OP} ops`);
  return ops.map((o, i) => {
    const op = (o as { op?: unknown } | null)?.op;
    try {
      if (op === 'set') {
        checkKey(o.key);
        const ttlMs = checkTtl((o as { ttlMs?: number }).ttlMs);
        return { op: 'store', key: o.key, value: (o as { value: V }).value, ...ttlField(ttlMs) } satisfies KvInput;
      }
      if (op === 'delete') {
        checkKey(o.key);
        return { op: 'delete', key: o.key } satisfies KvInput;
      }
    } catch (err) {
      if (err instanceof SsmError) throw new (err.constructor as new (m: string) => SsmError)(`batch op ${i}: ${err.message}; nothing was applied`);
      throw err;
    }
    throw new InvalidOperationError(`batch op ${i}: unknown op ${JSON.stringify(op)} (expected "set" or "delete"); nothing was applied`);
  });
}
