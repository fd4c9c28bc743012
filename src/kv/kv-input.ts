import { MAX_EXPIRY_MS } from '../encoding/expiring-map.js';
import { MAX_PAGE_LIMIT } from './kv-page.js';
import { isWellFormed } from '../engine/identifier.js';
import { EXPIRE_CONDITIONS, checkTtlMs, type ExpireCondition } from './kv-expiry.js';
import { BYTE_OPS, BYTE_OPS_READ_ONLY, MAX_KEYS_PER_OP, expiryFields, validateByteOp } from './kv-ops.js';
import type { KvGuard, KvInput } from './kv-machine.js';

/*
 * A KV input before it reaches the step: what is accepted (validateKvInput), what is read-only,
 * and the clock put on it at the door (stampKvInput).
 */

/** Longest key accepted, in UTF-16 code units. */
export const MAX_KEY_LENGTH = 4096;

/**
 * Why a key with a lone surrogate is refused: CBOR and UTF-8 cannot carry it, so it would be
 * stored as U+FFFD and alias every other key that differs from it only there.
 */
export const LONE_SURROGATE = 'key contains a lone surrogate (not valid Unicode): it cannot be stored exactly, and would alias other keys';

export { isWellFormed } from '../engine/identifier.js';

const READ_ONLY = new Set(['lookup', 'has', 'size', 'entries', 'scan', 'ttl', 'digest', ...BYTE_OPS_READ_ONLY]);
/** Ops a batch may not hold: range reads (paged, unbounded), batches, and the timer's removal. */
const NOT_IN_BATCH = new Set(['entries', 'scan', 'batch', 'removeExpired', 'digest']);
/** Ops that neither read nor depend on expiry: no `now` is stamped on them. */
const CLOCKLESS = new Set(['storeMany', 'removeExpired']);

/** A batch's `guard` (see KvGuard), checked: at most MAX_KEYS_PER_OP keys, each `{ key, digest }` (a digest op's answer). */
function validateGuard(guard: unknown): KvGuard[] {
  if (!Array.isArray(guard) || guard.length > MAX_KEYS_PER_OP) throw new TypeError(`op batch: "guard" must be an array of at most ${MAX_KEYS_PER_OP} { key, digest } objects`);
  return guard.map((g: unknown, i) => {
    const o = g as Record<string, unknown> | null;
    const digest = o?.['digest'];
    if (!o || typeof o !== 'object' || typeof o['key'] !== 'string' || !(digest === null || (typeof digest === 'string' && /^[0-9a-f]{64}$/.test(digest)))) {
      throw new TypeError(`op batch: guard ${i} must be { key: string, digest: string | null } (digest: what op digest answered for the key, null for absent)`);
    }
    return { key: o['key'], digest };
  });
}

/** Whether a KV input changes nothing (never logged): a read, or a batch of reads only. */
export function isReadOnlyKvInput(input: KvInput): boolean {
  if (input.op === 'batch') return input.ops.every(isReadOnlyKvInput);
  return READ_ONLY.has(input.op);
}

/** The checks every key gets: a string, at most {@link MAX_KEY_LENGTH}, valid Unicode. */
function checkKey(key: unknown, op: string): string {
  if (typeof key !== 'string') throw new TypeError(`op ${op} needs a string "key"`);
  if (key.length > MAX_KEY_LENGTH) throw new TypeError(`key longer than ${MAX_KEY_LENGTH}`);
  if (!isWellFormed(key)) throw new TypeError(LONE_SURROGATE);
  return key;
}

const OPS = 'store (or set), lookup, delete, has, size, entries, scan, ttl, expire, persist, compareAndSet, batch, digest';

/**
 * Rejects anything that is not a well-formed {@link KvInput} (TypeError, which the engine turns
 * into a DecodeError), and drops what an untrusted caller may not give: `now` (the door stamps
 * the clock) and the timer's own `removeExpired`.
 */
export function validateKvInput(input: unknown): KvInput {
  return validateOne(input, false);
}

function validateOne(input: unknown, inBatch: boolean): KvInput {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new TypeError('input must be a map with an "op" field');
  const o = input as Record<string, unknown>;
  const key = o['key'];
  const needsKey = (): string => checkKey(key, String(o['op']));
  if (inBatch && NOT_IN_BATCH.has(o['op'] as string)) throw new TypeError(`op ${String(o['op'])} cannot be part of a batch`);
  // Refused, not ignored: a write that its sender believes checked must not apply unchecked.
  if (o['guard'] !== undefined && (o['op'] !== 'batch' || inBatch)) throw new TypeError(`op ${String(o['op'])}: only a batch (not one inside a batch) takes a "guard"`);
  if (BYTE_OPS.has(o['op'] as string)) return validateByteOp(o, checkKey);
  switch (o['op']) {
    case 'store':
    case 'set':
      needsKey();
      if (!('value' in o)) throw new TypeError(`op ${o['op']} needs a "value"`);
      return { op: 'store', key: key as string, value: o['value'], ...expiryFields(o, 'store') };
    case 'lookup':
    case 'delete':
    case 'has':
    case 'ttl':
    case 'persist':
      needsKey();
      return { op: o['op'], key: key as string };
    case 'expire': {
      needsKey();
      const fields = expiryFields(o, 'expire');
      if (fields.keepTtl || (fields.ttlMs === undefined && fields.expiresAt === undefined)) throw new TypeError('op expire needs "ttlMs" or "expiresAt" (op persist removes an expiry)');
      const when = o['when'];
      if (when === undefined || when === null) return { op: 'expire', key: key as string, ...fields };
      if (!(EXPIRE_CONDITIONS as readonly unknown[]).includes(when)) throw new TypeError(`op expire: "when" must be one of ${EXPIRE_CONDITIONS.map((c) => `"${c}"`).join(', ')}`);
      return { op: 'expire', key: key as string, ...fields, when: when as ExpireCondition };
    }
    case 'compareAndSet':
      needsKey();
      if (!('value' in o)) throw new TypeError('op compareAndSet needs a "value" (and "expected"; omitted, it matches a missing key)');
      return { op: 'compareAndSet', key: key as string, expected: o['expected'], value: o['value'], ...expiryFields(o, 'compareAndSet') };
    case 'digest': {
      const keys = o['keys'];
      if (!Array.isArray(keys) || keys.length === 0 || keys.length > MAX_KEYS_PER_OP) throw new TypeError(`op digest needs "keys": an array of 1 to ${MAX_KEYS_PER_OP} keys`);
      for (const k of keys) checkKey(k, 'digest');
      return { op: 'digest', keys: keys as string[] };
    }
    case 'size':
      if (o['expiring'] !== undefined && typeof o['expiring'] !== 'boolean') throw new TypeError('op size: "expiring" must be a boolean');
      return o['expiring'] ? { op: 'size', expiring: true } : { op: 'size' };
    case 'batch': {
      const ops = o['ops'];
      if (!Array.isArray(ops)) throw new TypeError('op batch needs an array "ops"');
      if (ops.length > MAX_KEYS_PER_OP) throw new TypeError(`op batch: more than ${MAX_KEYS_PER_OP} ops`);
      const guard = o['guard'] === undefined ? undefined : validateGuard(o['guard']);
      return {
        op: 'batch',
        ...(guard ? { guard } : {}),
        ops: ops.map((sub, i) => {
          try {
            return validateOne(sub, true);
          } catch (err) {
            throw new TypeError(`op batch: op ${i}: ${(err as Error).message}; nothing was applied`);
          }
        }),
      };
    }
    case 'entries':
    case 'scan': {
      const { prefix, after, start, end, limit, reverse } = o;
      for (const [name, v] of [['prefix', prefix], ['after', after], ['start', start], ['end', end]] as const) {
        if (v !== undefined && typeof v !== 'string') throw new TypeError(`"${name}" must be a string`);
        if (v !== undefined && !isWellFormed(v)) throw new TypeError(LONE_SURROGATE);
      }
      if (reverse !== undefined && typeof reverse !== 'boolean') throw new TypeError('"reverse" must be a boolean');
      if (limit !== undefined && !(Number.isSafeInteger(limit) && (limit as number) >= 0)) throw new TypeError('"limit" must be a non-negative integer');
      // Refused rather than clamped: a caller asking for more must learn to page, not get less silently.
      if ((limit as number) > MAX_PAGE_LIMIT) throw new TypeError(`"limit" must be at most ${MAX_PAGE_LIMIT}; page with "after" (op scan answers the cursor)`);
      return {
        op: o['op'],
        prefix: prefix as string | undefined,
        after: after as string | undefined,
        limit: limit as number | undefined,
        ...(start === undefined ? {} : { start: start as string }),
        ...(end === undefined ? {} : { end: end as string }),
        ...(reverse === true ? { reverse: true } : {}),
        ...(o['op'] === 'entries' && o['keysOnly'] === true ? { keysOnly: true } : {}),
      };
    }
    case 'removeExpired':
      throw new TypeError('op removeExpired is sent by the store\'s own expiry timer only');
    default:
      throw new TypeError(`unknown op ${JSON.stringify(o['op'])}; expected ${OPS}, ${[...BYTE_OPS].join(', ')}`);
  }
}

/** `ttlMs` as the absolute `expiresAt` it means at `now` (the rest of the op unchanged). */
function absoluteExpiry<T extends object>(op: T, now: number): T {
  const ttlMs = (op as { ttlMs?: unknown }).ttlMs;
  if (ttlMs === undefined || ttlMs === null) return op;
  const { ttlMs: _, ...rest } = op as T & { ttlMs?: unknown };
  return { ...rest, expiresAt: Math.min(now + checkTtlMs(ttlMs), MAX_EXPIRY_MS) } as T;
}

/**
 * The KV machine's `stamp`: reads the clock once for the input (unless the caller gave `now`,
 * which only a trusted `app.call` can), turns every `ttlMs` into an `expiresAt`, and puts `now`
 * on every input whose answer or effect depends on expiry. A plain `store` needs no clock and
 * gets none (its log entry stays as it was). Throws TypeError for a malformed `ttlMs`.
 */
export function stampKvInput(input: KvInput, clock: () => number = Date.now): KvInput {
  const o = input as { op?: unknown; now?: unknown; ttlMs?: unknown; keepTtl?: unknown; ops?: unknown };
  if (typeof o !== 'object' || o === null || CLOCKLESS.has(o.op as string)) return input;
  if ((o.op === 'store' || o.op === 'set') && o.ttlMs === undefined && o.keepTtl !== true) return input;
  const now = typeof o.now === 'number' ? o.now : clock();
  if (o.op === 'batch' && Array.isArray(o.ops)) return { ...(input as object), ops: (o.ops as object[]).map((sub) => absoluteExpiry(sub, now)), now } as unknown as KvInput;
  return { ...absoluteExpiry(input, now), now } as KvInput;
}
