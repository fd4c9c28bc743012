import { isMapLike } from './sharded-map.js';

/**
 * JSON rendering of machine outputs, which may hold values JSON lacks (they arrive over CBOR or
 * from the machine itself). The mapping is lossy by necessity and documented: bigint -> decimal
 * string, Uint8Array (any typed array) -> base64 string, Map or ShardedMap -> object (array of [key, value]
 * pairs if a key is not a string), Set -> array, Date -> ISO string, undefined -> null.
 */
export function toJson(value: unknown): string {
  return JSON.stringify(value === undefined ? null : value, replacer) ?? 'null';
}

function replacer(_key: string, v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (isMapLike(v)) {
    const entries: [unknown, unknown][] = [...v.entries()];
    return entries.every(([k]) => typeof k === 'string') ? Object.fromEntries(entries) : entries;
  }
  if (v instanceof Set) return [...v];
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  return v;
}
