import type { ShardedMap } from '../encoding/sharded-map.js';
import { sortedEntries } from './format.js';

/** Which entries of a Map-like state to show: `ssm inspect --limit/--offset/--prefix`. */
export interface PageOptions {
  /** Most entries shown; undefined for all. */
  readonly limit?: number | undefined;
  /** Entries skipped first, in key order. @default 0 */
  readonly offset?: number | undefined;
  /** Only keys whose text starts with this. @default '' (every key) */
  readonly prefix?: string | undefined;
}

/** One page of a Map-like state, its entries sorted by key text. */
export interface StatePage {
  /** Entries in the state. */
  readonly total: number;
  /** Entries whose key matches the prefix (all of them without one). */
  readonly matched: number;
  readonly offset: number;
  readonly limit: number | null;
  readonly prefix: string | null;
  /** The page: `[key text, key, value]`, sorted by key text. */
  readonly entries: readonly (readonly [string, unknown, unknown])[];
}

/** Sorts, filters by key prefix and slices the entries of a Map or ShardedMap. */
export function pageMap(state: ReadonlyMap<unknown, unknown> | ShardedMap<unknown>, options: PageOptions = {}): StatePage {
  const prefix = options.prefix ?? '';
  const offset = options.offset ?? 0;
  const rows = sortedEntries(state, prefix);
  const end = options.limit === undefined ? rows.length : offset + options.limit;
  return { total: state.size, matched: rows.length, offset, limit: options.limit ?? null, prefix: prefix || null, entries: rows.slice(offset, end) };
}

/** The entry count for a header line: `400000 entries`, or `12 of 400000 entries match "k1"`. */
export function countText(page: StatePage): string {
  const noun = (n: number): string => `${n} ${n === 1 ? 'entry' : 'entries'}`;
  return page.prefix === null ? noun(page.total) : `${page.matched} of ${noun(page.total)} ${page.matched === 1 ? 'matches' : 'match'} prefix ${JSON.stringify(page.prefix)}`;
}

/**
 * The line after a page that does not show every matching entry: how many are left out and the
 * flags that show them. Null when nothing is left out.
 */
export function moreText(page: StatePage, indent = '  '): string | null {
  const shown = page.entries.length;
  if (page.matched === 0) return page.total === 0 ? null : `${indent}(no key starts with ${JSON.stringify(page.prefix)})`;
  if (shown === 0) return `${indent}(nothing at --offset ${page.offset}: ${page.matched} matching entries)`;
  const after = page.matched - page.offset - shown;
  if (page.offset === 0 && after === 0) return null;
  const range = `entries ${page.offset + 1}-${page.offset + shown} of ${page.matched}`;
  if (after === 0) return `${indent}(${range}, the last)`;
  return `${indent}... ${after} more (${range} shown); see the next with --offset ${page.offset + shown}, more at once with --limit N, or narrow with --prefix P`;
}
