import { toJson } from '../encoding/json.js';
import { isMapLike } from '../encoding/sharded-map.js';

/** A Map key as text: bare when unambiguous, JSON-quoted otherwise. */
function keyText(key: unknown): string {
  if (typeof key === 'string' && /^[A-Za-z0-9_.:/@+-]+$/.test(key)) return key;
  return toJson(key);
}

/**
 * Readable multi-line text for a machine's state: a Map as `key => value` lines sorted by key,
 * anything else as indented JSON. Each line is prefixed with `indent`.
 */
export function stateText(state: unknown, indent = '  '): string[] {
  if (isMapLike(state)) {
    if (state.size === 0) return [`${indent}(empty map)`];
    const rows = [...(state.entries() as Iterable<[unknown, unknown]>)].map(([k, v]) => [keyText(k), toJson(v)] as const);
    rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return rows.map(([k, v]) => `${indent}${k} => ${v}`);
  }
  return toJson(state, 2)
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
