import { approxCborSize } from '../encoding/approx-size.js';

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
  keysInOrder?(prefix?: string, after?: string): Iterator<string>;
}

/** A request for a page, as validated: `limit` within 0..{@link MAX_PAGE_LIMIT}. */
export interface PageRequest {
  readonly prefix?: string | undefined;
  readonly after?: string | undefined;
  readonly limit?: number | undefined;
}

/** Keys from `after` (exclusive) with `prefix`, ascending: the index if the table has one. */
function orderedKeys(table: PageSource, prefix: string, after: string | undefined): Iterator<string> {
  if (table.keysInOrder) return table.keysInOrder(prefix, after);
  // A plain Map (models in tests): sort per read, the cost the index exists to avoid.
  return [...table.keys()].filter((k) => k.startsWith(prefix) && (after === undefined || k > after)).sort()[Symbol.iterator]();
}

/** Reads one page: at most `limit` entries and about {@link MAX_PAGE_BYTES}, in key order. */
export function readPage(table: PageSource, request: PageRequest): KvPage {
  const limit = Math.min(request.limit ?? DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT);
  const keys = orderedKeys(table, request.prefix ?? '', request.after);
  const entries: [string, unknown][] = [];
  let bytes = 0;
  for (;;) {
    if (entries.length >= limit || (entries.length > 0 && bytes >= MAX_PAGE_BYTES)) {
      // Stopped by a bound: there is more only if another key follows.
      const more = limit > 0 && !keys.next().done;
      return { entries, next: more ? entries[entries.length - 1]![0] : null };
    }
    const r = keys.next();
    if (r.done) return { entries, next: null };
    const value = table.get(r.value);
    bytes += r.value.length + 3 + approxCborSize(value, MAX_PAGE_BYTES);
    entries.push([r.value, value]);
  }
}
