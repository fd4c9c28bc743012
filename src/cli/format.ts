import { toJson } from '../encoding/json.js';
import { isMapLike, type ShardedMap } from '../encoding/sharded-map.js';

/** A Map key as text: bare when unambiguous, JSON-quoted otherwise. */
export function keyText(key: unknown): string {
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
    return entryLines(sortedEntries(state), indent);
  }
  return toJson(state, 2)
    .split('\n')
    .map((l) => indent + l);
}

/**
 * The entries of a Map-like state whose key text starts with `prefix`, as `[key text, key,
 * value]` sorted by key text. Built entry by entry, never by spreading into a call, so a state
 * of millions of keys cannot overflow the stack.
 */
export function sortedEntries(state: ReadonlyMap<unknown, unknown> | ShardedMap<unknown>, prefix = ''): [string, unknown, unknown][] {
  const rows: [string, unknown, unknown][] = [];
  for (const [k, v] of state.entries() as Iterable<[unknown, unknown]>) {
    const text = keyText(k);
    if (text.startsWith(prefix)) rows.push([text, k, v]);
  }
  return rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** `key => value` lines for entries as {@link sortedEntries} returns them. */
export function entryLines(entries: readonly (readonly [string, unknown, unknown])[], indent = '  '): string[] {
  return entries.map(([k, , v]) => `${indent}${k} => ${toJson(v)}`);
}

/** Left-aligned text table with a header row. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  // A loop, not Math.max(...rows): spreading a few hundred thousand rows overflows the stack.
  const widths = header.map((h, i) => rows.reduce((w, r) => Math.max(w, (r[i] ?? '').length), h.length));
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
