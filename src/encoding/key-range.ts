import type { SortedKeys } from './sorted-keys.js';

/**
 * A range of string keys, in UTF-16 code unit order, as the KV store's range reads take it.
 * Every bound is optional; all that are given apply together.
 */
export interface KeyRange {
  /** Only keys starting with this string. */
  readonly prefix?: string | undefined;
  /** Only keys `>= start` (inclusive). */
  readonly start?: string | undefined;
  /** Only keys `< end` (exclusive). */
  readonly end?: string | undefined;
  /**
   * The cursor: only keys after this one in the order of iteration (exclusive), i.e. `> after`
   * ascending and `< after` with `reverse`.
   */
  readonly after?: string | undefined;
  /** Descending order: the same keys, from the highest. */
  readonly reverse?: boolean | undefined;
}

/**
 * The least string above every string that starts with `prefix` (undefined: there is none, the
 * prefix is empty or all U+FFFF). Used only to compare with, never stored, so it may hold a lone
 * surrogate.
 */
export function prefixEnd(prefix: string): string | undefined {
  let p = prefix;
  while (p.length > 0 && p.charCodeAt(p.length - 1) === 0xffff) p = p.slice(0, -1);
  if (p.length === 0) return undefined;
  return p.slice(0, -1) + String.fromCharCode(p.charCodeAt(p.length - 1) + 1);
}

const minOf = (a: string | undefined, b: string | undefined): string | undefined => (a === undefined ? b : b === undefined ? a : a < b ? a : b);

/** A range as two bounds: keys `k` with `low <= k` and (when `high` is defined) `k < high`. */
export function rangeBounds(range: KeyRange): { readonly low: string; readonly high: string | undefined } {
  const prefix = range.prefix ?? '';
  const start = range.start ?? '';
  return { low: start > prefix ? start : prefix, high: minOf(range.end, prefixEnd(prefix)) };
}

/** Whether `key` lies in `range` (the cursor `after` included). */
export function inRange(key: string, range: KeyRange): boolean {
  const { low, high } = rangeBounds(range);
  if (key < low || (high !== undefined && key >= high)) return false;
  if (range.after === undefined) return true;
  return range.reverse ? key < range.after : key > range.after;
}

/** The keys of `range` from an ordered index, lazily, in the range's order. */
export function* keysOfRange(index: SortedKeys, range: KeyRange): Generator<string> {
  const { low, high } = rangeBounds(range);
  if (range.reverse) {
    for (const k of index.below(minOf(high, range.after))) {
      if (k < low) return;
      yield k;
    }
    return;
  }
  for (const k of index.from(range.after, low)) {
    if (high !== undefined && k >= high) return;
    yield k;
  }
}
