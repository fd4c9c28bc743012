import { DecodeError } from '../errors.js';
import { isMapLike } from './sharded-map.js';

/**
 * The one JSON rendering of CBOR values, used by HTTP JSON replies, `jsonCodec`, and every CLI
 * command's `--json` and text output. JSON cannot say everything CBOR can, so the mapping is
 * lossy by necessity, and the same everywhere:
 *
 * | value | JSON |
 * |---|---|
 * | `undefined` | `null` |
 * | `bigint` | decimal string |
 * | `NaN`, `Infinity`, `-Infinity` | the strings `"NaN"`, `"Infinity"`, `"-Infinity"` |
 * | `Uint8Array` (a CBOR byte string) | base64 string |
 * | other typed arrays | arrays of numbers (bigints as strings) |
 * | `Map`, `ShardedMap` | object if every key is a string, else an array of `[key, value]` pairs |
 * | `Set` | array |
 * | `Date` | ISO 8601 string (`null` for an invalid date) |
 * | `Error` | `{ name, message }` |
 * | a cycle | the string `"[Circular]"` |
 */
export function toJsonValue(value: unknown, seen: Set<object> = new Set()): unknown {
  switch (typeof value) {
    case 'undefined':
      return null;
    case 'bigint':
      return value.toString();
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'string':
    case 'boolean':
      return value;
    case 'symbol':
    case 'function':
      return String(value);
  }
  if (value === null) return null;
  const obj = value as object;
  if (seen.has(obj)) return '[Circular]';
  if (obj instanceof Date) return Number.isNaN(obj.getTime()) ? null : obj.toISOString();
  if (obj instanceof Uint8Array) return Buffer.from(obj.buffer, obj.byteOffset, obj.byteLength).toString('base64');
  if (ArrayBuffer.isView(obj)) return obj instanceof DataView ? Buffer.from(obj.buffer, obj.byteOffset, obj.byteLength).toString('base64') : Array.from(obj as unknown as ArrayLike<number | bigint>, (x) => toJsonValue(x, seen));
  if (obj instanceof RegExp) return String(obj);
  if (obj instanceof Error) return { name: obj.name, message: obj.message };
  seen.add(obj);
  try {
    if (isMapLike(obj)) {
      const entries: [unknown, unknown][] = [...obj.entries()];
      if (entries.every(([k]) => typeof k === 'string')) {
        const out: Record<string, unknown> = {};
        for (const [k, v] of entries) defineOwn(out, k as string, toJsonValue(v, seen));
        return out;
      }
      return entries.map(([k, v]) => [toJsonValue(k, seen), toJsonValue(v, seen)]);
    }
    if (obj instanceof Set) return [...obj].map((v) => toJsonValue(v, seen));
    if (Array.isArray(obj)) return obj.map((v) => toJsonValue(v, seen));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) defineOwn(out, k, toJsonValue(v, seen));
    return out;
  } finally {
    seen.delete(obj);
  }
}

/** `__proto__` included: an own property, never the prototype. */
function defineOwn(out: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
}

/** JSON text of any value, per {@link toJsonValue}. */
export function toJson(value: unknown, indent?: number): string {
  // Plain data (most inputs and values) renders the same either way: skip the copy.
  return JSON.stringify(isPlainJson(value, 0) ? value : toJsonValue(value), null, indent);
}

const MAX_PLAIN_DEPTH = 64;

/**
 * Whether JSON.stringify renders `value` exactly as {@link toJsonValue} would: finite numbers,
 * strings, booleans, null, arrays and plain objects of those, nothing undefined (stringify
 * would drop it), no `toJSON`, no cycle (bounded by depth).
 */
function isPlainJson(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object':
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (depth >= MAX_PLAIN_DEPTH) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!isPlainJson(value[i], depth + 1)) return false;
    return true;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  for (const k in value) {
    if (k === 'toJSON') return false;
    if (!isPlainJson((value as Record<string, unknown>)[k], depth + 1)) return false;
  }
  return true;
}

/**
 * `JSON.parse` for untrusted input, refusing objects with a `__proto__` key. JSON.parse makes
 * such a key an ordinary own property, but the CBOR decoder renames it to `__proto_` (cbor-x's
 * guard against prototype pollution), so the input would be logged as something that replays
 * differently and recovery would not reproduce the state. Throws {@link DecodeError}.
 */
export function parseUntrustedJson(text: string): unknown {
  return JSON.parse(text, refuseProtoKey);
}

function refuseProtoKey(key: string, value: unknown): unknown {
  if (key === '__proto__') throw new DecodeError('the JSON key "__proto__" is not accepted');
  return value;
}
