import { approxCborSize } from '../encoding/approx-size.js';
import { inRange, type KeyRange } from '../encoding/key-range.js';

/**
 * Paging of the KV store's range reads (`entries` and `scan`): every reply is bounded in
 * entries and in bytes, so no single read holds the one event loop for long or builds a reply
 * of many megabytes. A read of 305k keys used to sort every key and encode ~11 MB (issue 18.7).
 */

/** Entries of a page when the request gives no `limit`. */
export const DEFAULT_PAGE_LIMIT = 1000;

/** Largest `limit` accepted; a larger one is refused at the door (DecodeError / RangeError). */
export const MAX_PAGE_LIMIT = 10_000;

/**
 * A page stops once its keys and values reach about this many bytes (estimated CBOR size), after
 * at least one entry, and says where to go on. Encoding the reply costs about 1 ms per 100 KB
 * here, so this keeps one read within a few ms of the event loop.
 */
export const MAX_PAGE_BYTES = 128 * 1024;

/** One page of a range read; `next` is the cursor to pass as `after`, null when nothing is left. */
export interface KvPage<V = unknown> {
  readonly entries: [string, V][];
  readonly next: string | null;
}

/** What a page is read from: a ShardedMap (ordered index) or any map-like table (sorted per read). */
export interface PageSource {
  get(key: string): unknown;
  keys(): IterableIterator<string>;
  keysInRange?(range: KeyRange): Iterator<string>;
  /** Whether a key is live at `now` (an ExpiringMap); without it no key has expired. */
  isLive?(key: string, now: number | undefined): boolean;
}

/**
 * A request for a page, as validated: `limit` within 0..{@link MAX_PAGE_LIMIT}, the range of
 * {@link KeyRange} (prefix, start inclusive, end exclusive, the cursor after, reverse), and
 * `now`, the time keys that expire are judged at (see kv-expiry.ts).
 */
export interface PageRequest extends KeyRange {
  readonly limit?: number | undefined;
  readonly now?: number | undefined;
}

/** The keys of the range, in its order: the index if the table has one. */
function orderedKeys(table: PageSource, range: KeyRange): Iterator<string> {
  if (table.keysInRange) return table.keysInRange(range);
  // A plain Map (models in tests): sort per read, the cost the index exists to avoid.
  const keys = [...table.keys()].filter((k) => inRange(k, range)).sort();
  return (range.reverse ? keys.reverse() : keys)[Symbol.iterator]();
}

/** The next key of `keys` that is live at `now` (expired keys are skipped: never returned). */
function nextLive(table: PageSource, keys: Iterator<string>, now: number | undefined): IteratorResult<string> {
  for (;;) {
    const r = keys.next();
    if (r.done || !table.isLive || table.isLive(r.value, now)) return r;
  }
}

/** Reads one page: at most `limit` entries and about {@link MAX_PAGE_BYTES}, in the range's order. */
export function readPage(table: PageSource, request: PageRequest): KvPage {
  const limit = Math.min(request.limit ?? DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT);
  const keys = orderedKeys(table, request);
  const entries: [string, unknown][] = [];
  let bytes = 0;
  for (;;) {
    if (entries.length >= limit || (entries.length > 0 && bytes >= MAX_PAGE_BYTES)) {
      // Stopped by a bound: there is more only if another live key follows.
      const more = limit > 0 && !nextLive(table, keys, request.now).done;
      return { entries, next: more ? entries[entries.length - 1]![0] : null };
    }
    const r = nextLive(table, keys, request.now);
    if (r.done) return { entries, next: null };
    const value = table.get(r.value);
    bytes += r.value.length + 3 + approxCborSize(value, MAX_PAGE_BYTES);
    entries.push([r.value, value]);
  }
}
