import { isMapLike } from '../sharded-map.js';

/**
 * Turning decoded CBOR values (Maps, Dates, bigint, byte strings, ...) into JSON and into short
 * readable text for the CLI. JSON cannot say everything CBOR can, so the conversion is
 * "lossless-ish": Maps with string keys become objects (others become [key, value] entry arrays),
 * Sets become arrays, bigint becomes a decimal string, byte strings become base64, Dates ISO text.
 */

/** Converts a decoded value to something `JSON.stringify` renders faithfully. */
export function toJson(value: unknown, seen: Set<object> = new Set()): unknown {
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
  if (ArrayBuffer.isView(obj)) return Array.from(obj as unknown as ArrayLike<number | bigint>, (x) => toJson(x, seen));
  if (obj instanceof RegExp) return String(obj);
  if (obj instanceof Error) return { name: obj.name, message: obj.message };
  seen.add(obj);
  try {
    if (isMapLike(obj)) {
      const entries: [unknown, unknown][] = [...obj.entries()];
      if (entries.every(([k]) => typeof k === 'string')) {
        const out: Record<string, unknown> = {};
        for (const [k, v] of entries) Object.defineProperty(out, k as string, { value: toJson(v, seen), enumerable: true, writable: true, configurable: true });
        return out;
      }
      return entries.map(([k, v]) => [toJson(k, seen), toJson(v, seen)]);
    }
    if (obj instanceof Set) return [...obj].map((v) => toJson(v, seen));
    if (Array.isArray(obj)) return obj.map((v) => toJson(v, seen));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) Object.defineProperty(out, k, { value: toJson(v, seen), enumerable: true, writable: true, configurable: true });
    return out;
  } finally {
    seen.delete(obj);
  }
}

/** One line of JSON for any decoded value. */
export function compact(value: unknown): string {
  return JSON.stringify(toJson(value));
}

/** A Map key as text: bare when unambiguous, JSON-quoted otherwise. */
function keyText(key: unknown): string {
  if (typeof key === 'string' && /^[A-Za-z0-9_.:/@+-]+$/.test(key)) return key;
  return compact(key);
}

/**
 * Readable multi-line text for a machine's state: a Map as `key => value` lines sorted by key,
 * anything else as indented JSON. Each line is prefixed with `indent`.
 */
export function stateText(state: unknown, indent = '  '): string[] {
  if (isMapLike(state)) {
    if (state.size === 0) return [`${indent}(empty map)`];
    const rows = [...(state.entries() as Iterable<[unknown, unknown]>)].map(([k, v]) => [keyText(k), compact(v)] as const);
    rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return rows.map(([k, v]) => `${indent}${k} => ${v}`);
  }
  return JSON.stringify(toJson(state), null, 2)
    .split('\n')
    .map((l) => indent + l);
}

/** Left-aligned text table with a header row. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]): string =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** `1.2 MiB` style sizes. */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}
