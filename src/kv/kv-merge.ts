import { approxCborSize } from '../encoding/approx-size.js';
import { FAN_OUT, fanOut } from './fan-out.js';
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
  /** Cursors with buffered entries, as a binary heap by their next key in the scan's order. */
  private readonly heap: Cursor<V>[] = [];

  constructor(
    private readonly fetch: FetchPage<V>,
    partitions: number,
    private readonly range: Readonly<Record<string, unknown>>,
    private readonly width: number = FAN_OUT,
  ) {
    this.reverse = range['reverse'] === true;
    this.cursors = Array.from({ length: partitions }, (_, partition) => ({ partition, entries: [], pos: 0, next: undefined }));
  }

  private buffered(c: Cursor<V>): boolean {
    return c.pos < c.entries.length;
  }

  /** Whether cursor a's next key comes before b's in the scan's order. */
  private before(a: Cursor<V>, b: Cursor<V>): boolean {
    const x = a.entries[a.pos]![0];
    const y = b.entries[b.pos]![0];
    return this.reverse ? x > y : x < y;
  }

  private push(c: Cursor<V>): void {
    const h = this.heap;
    h.push(c);
    for (let i = h.length - 1; i > 0; ) {
      const up = (i - 1) >> 1;
      if (!this.before(h[i]!, h[up]!)) break;
      [h[i], h[up]] = [h[up]!, h[i]!];
      i = up;
    }
  }

  /** Restores the heap after its top changed (advanced, or removed). */
  private siftDown(): void {
    const h = this.heap;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.before(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.before(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }

  /** Fetches the next page of every partition whose buffer is empty and that has more (in parallel). */
  private async refill(limit: number): Promise<void> {
    // A uniform hash puts about limit/P of the result in each partition: ask for twice that, so
    // that most reads are one round of requests, and refill the few partitions that run dry.
    const chunk = Math.max(1, Math.min(MAX_PAGE_LIMIT, Math.ceil((2 * limit) / this.cursors.length) + 8));
    const empty = this.cursors.filter((c) => !this.buffered(c) && c.next !== null);
    await fanOut(
      empty,
      async (c) => {
        const range = c.next === undefined ? this.range : { ...this.range, after: c.next };
        const page = await this.fetch(c.partition, range, chunk);
        c.entries = page.entries;
        c.pos = 0;
        c.next = page.entries.length === 0 ? null : page.next;
      },
      this.width,
    );
    for (const c of empty) if (this.buffered(c)) this.push(c);
  }

  /**
   * The next at most `limit` entries of the scan in its order, stopping (after at least one
   * entry) once their estimated size reaches `maxBytes` (null: no byte bound), with `next` as the
   * single machine's readPage gives it: the last key when another live key follows, else null.
   */
  async take(limit: number, maxBytes: number | null): Promise<KvPage<V>> {
    const entries: [string, V][] = [];
    let bytes = 0;
    // Cursors whose buffer is empty and that have more: the merge cannot go on without them.
    let dry = this.cursors.filter((c) => !this.buffered(c) && c.next !== null).length;
    for (;;) {
      if (entries.length >= limit || (maxBytes !== null && entries.length > 0 && bytes >= maxBytes)) {
        const more = limit > 0 && (this.heap.length > 0 || this.cursors.some((c) => c.next !== null));
        return { entries, next: more ? entries[entries.length - 1]![0] : null };
      }
      if (dry > 0) {
        await this.refill(limit - entries.length);
        dry = 0;
      }
      const c = this.heap[0];
      if (!c) return { entries, next: null };
      const entry = c.entries[c.pos++]!;
      if (this.buffered(c)) this.siftDown();
      else {
        // Its buffer is spent: out of the heap; a refill comes before the next entry if it has more.
        const last = this.heap.pop()!;
        if (this.heap.length > 0) {
          this.heap[0] = last;
          this.siftDown();
        }
        if (c.next !== null) dry++;
      }
      // The estimate readPage makes, on the same values: the cut falls after the same entry.
      if (maxBytes !== null) bytes += entry[0].length + 3 + approxCborSize(entry[1], MAX_PAGE_BYTES);
      entries.push(entry);
    }
  }
}
