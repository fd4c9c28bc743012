/**
 * The KV ops that the Redis protocol (src/resp/) needs to be atomic: each is one request, so it
 * is one step of the machine and one entry of the log, and no other request runs between its
 * read and its write (MSET, SET NX/XX/GET, GETDEL, DEL of many keys, INCRBY, APPEND).
 *
 * None of them throws on a value it cannot use (a step that throws crashes the machine, and a
 * client must not be able to do that): they answer `{ error }` instead, and change nothing.
 */

import { checkExpiresAt, checkTtlMs, isLive, setExpiry, type ExpiryTable } from './kv-expiry.js';

/** A key check shared with kv-machine.ts (length, lone surrogates); throws TypeError. */
export type KeyCheck = (key: unknown, what: string) => string;

/**
 * `now` (ms since the epoch) is the time the input is judged at: a key whose expiry time is at
 * or before it is absent (see kv-expiry.ts); stamped at the door, never read by the step.
 * `expiresAt` gives the written key that expiry time, `keepTtl` keeps the one it had (SET
 * KEEPTTL); without either a write by storeMany or storeIf clears it, as Redis's SET does.
 * incrBy and append keep it, as Redis does.
 */
export type KvByteOpInput =
  | { readonly op: 'storeMany'; readonly entries: readonly (readonly [string, unknown])[] }
  | { readonly op: 'storeIf'; readonly key: string; readonly value: unknown; readonly when: 'always' | 'absent' | 'present'; readonly returnOld: boolean; readonly ttlMs?: number; readonly expiresAt?: number; readonly keepTtl?: boolean; readonly now?: number }
  | { readonly op: 'take'; readonly key: string; readonly now?: number }
  | { readonly op: 'deleteMany'; readonly keys: readonly string[]; readonly now?: number }
  | { readonly op: 'lookupMany'; readonly keys: readonly string[]; readonly now?: number }
  | { readonly op: 'incrBy'; readonly key: string; readonly by: bigint; readonly now?: number }
  | { readonly op: 'append'; readonly key: string; readonly value: Uint8Array; readonly now?: number };

/** Ops of {@link KvByteOpInput} that change nothing. */
export const BYTE_OPS_READ_ONLY: ReadonlySet<string> = new Set(['lookupMany']);
export const BYTE_OPS: ReadonlySet<string> = new Set(['storeMany', 'storeIf', 'take', 'deleteMany', 'lookupMany', 'incrBy', 'append']);

/** Most keys in one storeMany/deleteMany/lookupMany: one request stays one bounded step. */
export const MAX_KEYS_PER_OP = 100_000;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function keyList(v: unknown, check: KeyCheck, op: string): string[] {
  if (!Array.isArray(v)) throw new TypeError(`op ${op} needs an array "keys"`);
  if (v.length > MAX_KEYS_PER_OP) throw new TypeError(`op ${op}: more than ${MAX_KEYS_PER_OP} keys`);
  return v.map((k) => check(k, op));
}

/** Validates an input whose op is in {@link BYTE_OPS}. */
export function validateByteOp(o: Record<string, unknown>, check: KeyCheck): KvByteOpInput {
  const op = o['op'] as string;
  switch (op) {
    case 'storeMany': {
      const entries = o['entries'];
      if (!Array.isArray(entries)) throw new TypeError('op storeMany needs an array "entries" of [key, value] pairs');
      if (entries.length > MAX_KEYS_PER_OP) throw new TypeError(`op storeMany: more than ${MAX_KEYS_PER_OP} entries`);
      return {
        op,
        entries: entries.map((e) => {
          if (!Array.isArray(e) || e.length !== 2) throw new TypeError('op storeMany: each entry must be a [key, value] pair');
          return [check(e[0], op), e[1]] as const;
        }),
      };
    }
    case 'storeIf': {
      const when = o['when'] ?? 'always';
      if (when !== 'always' && when !== 'absent' && when !== 'present') throw new TypeError('op storeIf: "when" must be always, absent or present');
      if (!('value' in o)) throw new TypeError('op storeIf needs a "value"');
      return { op, key: check(o['key'], op), value: o['value'], when, returnOld: o['returnOld'] === true, ...expiryFields(o, op) };
    }
    case 'take':
      return { op, key: check(o['key'], op) };
    case 'deleteMany':
    case 'lookupMany':
      return { op, keys: keyList(o['keys'], check, op) };
    case 'incrBy': {
      const by = o['by'];
      const big = typeof by === 'bigint' ? by : Number.isSafeInteger(by) ? BigInt(by as number) : null;
      if (big === null || big < INT64_MIN || big > INT64_MAX) throw new TypeError('op incrBy needs an integer "by" within 64 bits');
      return { op, key: check(o['key'], op), by: big };
    }
    case 'append': {
      const value = o['value'];
      if (!(value instanceof Uint8Array)) throw new TypeError('op append needs a byte string "value"');
      return { op, key: check(o['key'], op), value };
    }
    default:
      throw new TypeError(`unknown op ${JSON.stringify(op)}`);
  }
}

/**
 * The expiry fields of a writing op, checked: `ttlMs` (relative, turned into `expiresAt` by the
 * stamp at the door), `expiresAt` (absolute) or `keepTtl`, at most one of them. Throws TypeError.
 */
export function expiryFields(o: Record<string, unknown>, op: string): { expiresAt?: number; ttlMs?: number; keepTtl?: true } {
  const given = (['ttlMs', 'expiresAt', 'keepTtl'] as const).filter((f) => o[f] !== undefined && o[f] !== null && o[f] !== false);
  if (given.length > 1) throw new TypeError(`op ${op}: give at most one of ttlMs, expiresAt and keepTtl`);
  if (o['ttlMs'] !== undefined && o['ttlMs'] !== null) return { ttlMs: checkTtlMs(o['ttlMs']) };
  if (o['expiresAt'] !== undefined && o['expiresAt'] !== null) return { expiresAt: checkExpiresAt(o['expiresAt']) };
  if (o['keepTtl'] === true) return { keepTtl: true };
  if (o['keepTtl'] !== undefined && o['keepTtl'] !== false) throw new TypeError(`op ${op}: "keepTtl" must be a boolean`);
  return {};
}

const utf8 = new TextEncoder();

/**
 * A stored value read as a Redis string: bytes as they are, a text string as its UTF-8, and
 * anything else (a number, map, list stored over HTTP JSON or CBOR) as its JSON text. `null` and
 * `undefined` read as absent (a lookup cannot tell them from a missing key either).
 */
export function valueAsBytes(value: unknown): Uint8Array | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return utf8.encode(value);
  if (typeof value === 'bigint') return utf8.encode(value.toString());
  let text: string | undefined;
  try {
    text = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v instanceof Map ? Object.fromEntries(v) : v));
  } catch {
    text = undefined;
  }
  return utf8.encode(text ?? String(value));
}

/** Redis's integer syntax: optional minus, no leading zeros, no plus, no spaces, within 64 bits. */
function parseInt64(bytes: Uint8Array): bigint | null {
  if (bytes.length === 0 || bytes.length > 20) return null;
  const s = String.fromCharCode(...bytes);
  if (!/^(0|-?[1-9][0-9]*)$/.test(s)) return null;
  const n = BigInt(s);
  return n < INT64_MIN || n > INT64_MAX ? null : n;
}

/** The table a byte op works on (a subset of kv-machine.ts's KvTable). */
export interface ByteOpTable extends ExpiryTable {
  get(key: string): unknown;
  has(key: string): boolean;
  set(key: string, value: unknown): unknown;
  delete(key: string): boolean;
}

/** The value of `key` if it is live at `now`; an expired one is deleted first (it is gone). */
export function liveValue(state: ByteOpTable, key: string, now: number | undefined): { present: boolean; value: unknown } {
  if (isLive(state, key, now)) return { present: true, value: state.get(key) };
  if (state.has(key)) state.delete(key);
  return { present: false, value: null };
}

/** Output of incrBy: the new value, or why nothing changed. */
export type IncrOutput = { readonly value: bigint } | { readonly error: 'NOT_INTEGER' | 'OVERFLOW' };

/** One step of a byte op at `now` (the input's own by default); mutates the table in place, like kvStep. */
export function byteOpStep(input: KvByteOpInput, state: ByteOpTable, now: number | undefined = (input as { now?: number }).now): unknown {
  switch (input.op) {
    case 'storeMany':
      for (const [k, v] of input.entries) {
        state.set(k, v);
        setExpiry(state, k, undefined);
      }
      return input.entries.length;
    case 'storeIf': {
      const { present, value: old } = liveValue(state, input.key, now);
      const stored = input.when === 'always' || (input.when === 'absent') !== present;
      if (stored) {
        state.set(input.key, input.value);
        if (!input.keepTtl) setExpiry(state, input.key, input.expiresAt);
      }
      return input.returnOld ? { stored, old } : { stored };
    }
    case 'take': {
      const { present, value: old } = liveValue(state, input.key, now);
      if (!present) return null;
      state.delete(input.key);
      return old;
    }
    case 'deleteMany': {
      let n = 0;
      for (const k of input.keys) {
        const live = isLive(state, k, now);
        if (state.delete(k) && live) n++;
      }
      return n;
    }
    case 'lookupMany':
      return input.keys.map((k) => (isLive(state, k, now) ? state.get(k) : null));
    case 'incrBy': {
      const { present, value } = liveValue(state, input.key, now);
      const old = present ? valueAsBytes(value) : null;
      const current = old === null ? 0n : parseInt64(old);
      if (current === null) return { error: 'NOT_INTEGER' } satisfies IncrOutput;
      const next = current + input.by;
      if (next < INT64_MIN || next > INT64_MAX) return { error: 'OVERFLOW' } satisfies IncrOutput;
      // Stored as the decimal text's bytes, as Redis keeps it: GET answers "11", APPEND works.
      state.set(input.key, utf8.encode(next.toString()));
      return { value: next } satisfies IncrOutput;
    }
    case 'append': {
      const { present, value } = liveValue(state, input.key, now);
      const old = present ? valueAsBytes(value) : null;
      const next = new Uint8Array((old?.length ?? 0) + input.value.length);
      if (old) next.set(old, 0);
      next.set(input.value, old?.length ?? 0);
      state.set(input.key, next);
      return next.length;
    }
  }
}
