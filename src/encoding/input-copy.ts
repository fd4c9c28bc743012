/**
 * The copy of a state-changing input that its step receives: exactly what replay will decode
 * from the request log, so live and recovered state cannot diverge, and never the caller's own
 * object, so a caller mutating it later cannot reach into the state.
 *
 * The general way is the CBOR round trip (encode for the log, decode for the step). For plain
 * data (objects with Object.prototype, arrays, well-formed strings, numbers, booleans, null,
 * undefined) {@link plainCopy} builds the same result directly, which is several times cheaper
 * than decoding; the log then holds the encoding of that copy. Node.js Buffers (CBOR byte
 * strings, which the codec decodes as Buffers) are copied too. Anything else (Map, Set, Date,
 * typed arrays, bigint, class instances, `__proto__` keys, lone surrogates, cycles, deep
 * nesting) answers {@link NEEDS_CBOR} and takes the round trip.
 */

/** {@link plainCopy}'s answer for values that need the CBOR round trip. */
export const NEEDS_CBOR: unique symbol = Symbol('needs the CBOR round trip');

/** Nesting beyond which the round trip is used (it reports cycles and hostile depth properly). */
const MAX_DEPTH = 64;

/**
 * Array elements or object keys beyond which the round trip is used. cbor-x refuses to decode
 * arrays over 112,810,000 elements and maps over 16,810,000 entries; a copy made without it
 * could be logged and acknowledged, and then never replayed.
 */
export const MAX_PLAIN_ENTRIES = 16_000_000;

type WellFormed = string & { isWellFormed(): boolean };

/**
 * A copy of `value` equal to what the shared CBOR codec decodes from `encodeCbor(value)`: same
 * types, same keys in the same order, same numbers (-0 becomes 0, as CBOR integers have no sign
 * of zero). Strings are immutable and shared, not copied. Returns {@link NEEDS_CBOR} when it
 * cannot promise that equality.
 */
export function plainCopy(value: unknown): unknown {
  // The encoder tells arrays and plain objects apart by their constructor: if other code has
  // reassigned these, its encoding is no longer what a copy would be.
  if (Array.prototype.constructor !== Array || Object.prototype.constructor !== Object) return NEEDS_CBOR;
  return copy(value, 0);
}

function copy(value: unknown, depth: number): unknown {
  switch (typeof value) {
    case 'string':
      return (value as WellFormed).isWellFormed() ? value : NEEDS_CBOR;
    case 'number':
      return value === 0 ? 0 : value;
    case 'boolean':
    case 'undefined':
      return value;
    case 'object':
      break;
    default:
      return NEEDS_CBOR; // bigint, symbol, function
  }
  if (value === null) return null;
  if (depth >= MAX_DEPTH) return NEEDS_CBOR;
  const proto = Object.getPrototypeOf(value);
  // A Node.js Buffer is a CBOR byte string without a tag, which the codec decodes as a Buffer:
  // a copy of its bytes is what replay sees (Redis values arrive as Buffers).
  if (proto === Buffer.prototype && !Object.prototype.hasOwnProperty.call(value, 'constructor')) return Buffer.from(value as Buffer);
  if (proto === Array.prototype) {
    const source = value as unknown[];
    const n = source.length;
    if (n > MAX_PLAIN_ENTRIES) return NEEDS_CBOR;
    const out = new Array<unknown>(n);
    for (let i = 0; i < n; i++) {
      const v = copy(source[i], depth + 1);
      if (v === NEEDS_CBOR) return NEEDS_CBOR;
      out[i] = v;
    }
    return out;
  }
  if (proto !== Object.prototype || Symbol.iterator in (value as object)) return NEEDS_CBOR;
  const source = value as Record<string, unknown>;
  // cbor-x keeps only own keys when hasOwnProperty is callable; otherwise its rule differs.
  if (typeof source['hasOwnProperty'] !== 'function') return NEEDS_CBOR;
  const out: Record<string, unknown> = {};
  let keys = 0;
  for (const key in source) {
    if (!Object.prototype.hasOwnProperty.call(source, key)) continue;
    if (key === '__proto__' || ++keys > MAX_PLAIN_ENTRIES) return NEEDS_CBOR;
    const v = copy(source[key], depth + 1);
    if (v === NEEDS_CBOR) return NEEDS_CBOR;
    out[key] = v;
  }
  return out;
}
