import { approxCborSize } from '../encoding/approx-size.js';
import { fanOut } from './fan-out.js';
import { MAX_PAGE_BYTES, MAX_PAGE_LIMIT, type KvPage } from './kv-page.js';

/*
 * Range reads of a partitioned store: a k-way merge of each partition's ordered scan. Keys are
 * unique across partitions (a key lives in exactly one), so merging the partitions' pages in
 * key order gives exactly the single machine's order; and the page is cut where the single
 * machine's readPage cuts it (`limit` entries, or about MAX_PAGE_BYTES estimated the same way),
 * so `page` and its cursor `next` answer the same for the same data.
 *
 * Each partition's page is one atomic view of that partition; the merged page is not one view of
 * the whole store (partitions are read by separate requests, other requests run in between).
 */

/** Reads one page of partition `partition`: the given range fields (with `after`), at most `limit`. */
export type FetchPage<V> = (partition: number, range: Record<string, unknown>, limit: number) => Promise<KvPage<V>>;

/** One partition's scan: what was fetched and not yet merged, and its own cursor. */
interface Cursor<V> {
  readonly partition: number;
  entries: [string, V][];
  pos: number;
  /** Cursor of the partition's next page; null once it has nothing left; undefined before the first fetch. */
  next: string | null | undefined;
}

/** A merged scan over every partition, consumed by {@link MergedScan.take}. */
export class MergedScan<V> {
  private readonly cursors: Cursor<V>[];
  private readonly reverse: boolean;

  constructor(
    private readonly fetch: FetchPage<V>,
    partitions: number,
    private readonly range: Readonly<Record<string, unknown>>,
  ) {
    this.reverse = range['reverse'] === true;
    this.cursors = Array.from({ length: partitions }, (_, partition) => ({ partition, entries: [], pos: 0, next: undefined }));
  }

  private buffered(c: Cursor<V>): boolean {
    return c.pos < c.entries.length;
  }

  /** Fetches the next page of every partition whose buffer is empty and that has more (in parallel). */
  private async refill(limit: number): Promise<void> {
    // A uniform hash puts about limit/P of the result in each partition: ask for twice that, so
    // that most reads are one round of requests, and refill the few partitions that run dry.
    const chunk = Math.max(1, Math.min(MAX_PAGE_LIMIT, Math.ceil((2 * limit) / this.cursors.length) + 8));
    const empty = this.cursors.filter((c) => !this.buffered(c) && c.next !== null);
    await fanOut(empty, async (c) => {
      const range = c.next === undefined ? this.range : { ...this.range, after: c.next };
      const page = await this.fetch(c.partition, range, chunk);
      c.entries = page.entries;
      c.pos = 0;
      c.next = page.entries.length === 0 ? null : page.next;
    });
  }

  /** The cursor holding the next key in the scan's order, or undefined when every partition is done. */
  private head(): Cursor<V> | undefined {
    let best: Cursor<V> | undefined;
    let bestKey = '';
    // Linear in the partition count per entry; P is at most a few thousand and pages are
    // bounded, so this stays below the cost of decoding the entries themselves.
    for (const c of this.cursors) {
      if (!this.buffered(c)) continue;
      const k = c.entries[c.pos]![0];
      if (best === undefined || (this.reverse ? k > bestKey : k < bestKey)) {
        best = c;
        bestKey = k;
      }
    }
    return best;
  }

  /**
   * The next at most `limit` entries of the scan in its order, stopping (after at least one
   * entry) once their estimated size reaches `maxBytes` (null: no byte bound), with `next` as the
   * single machine's readPage gives it: the last key when another live key follows, else null.
   */
  async take(limit: number, maxBytes: number | null): Promise<KvPage<V>> {
    const entries: [string, V][] = [];
    let bytes = 0;
    for (;;) {
      if (entries.length >= limit || (maxBytes !== null && entries.length > 0 && bytes >= maxBytes)) {
        const more = limit > 0 && this.cursors.some((c) => this.buffered(c) || c.next !== null);
        return { entries, next: more ? entries[entries.length - 1]![0] : null };
      }
      if (this.cursors.some((c) => !this.buffered(c) && c.next !== null)) await this.refill(limit - entries.length);
      const c = this.head();
      if (!c) return { entries, next: null };
      const entry = c.entries[c.pos++]!;
      // The estimate readPage makes, on the same values: the cut falls after the same entry.
      if (maxBytes !== null) bytes += entry[0].length + 3 + approxCborSize(entry[1], MAX_PAGE_BYTES);
      entries.push(entry);
    }
  }
}
