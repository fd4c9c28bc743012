/**
 * Review 3: the k-way merge of kv-merge.ts finds the next entry by scanning every partition's
 * cursor (head(), and take()'s `some` over all cursors), so a range read of N entries costs
 * O(N x P), synchronously between refills. On 4096 partitions (MAX_PARTITIONS) holding 40,960
 * keys, merging alone takes seconds (~4 s here, with no I/O at all; entries() of the real store
 * ~10 s against ~0.16 s for the single store), and a full scan of 1M keys would take minutes.
 * A heap of cursors (O(N log P)) makes it milliseconds.
 */
import test from 'ava';
import { MergedScan } from '../src/kv/kv-merge.js';

test('merging 40,960 entries from 4096 partitions takes well under a second (the merge, no I/O)', async (t) => {
  const P = 4096;
  const data: [string, number][][] = Array.from({ length: P }, () => []);
  for (let i = 0; i < 40_960; i++) data[i % P]!.push([`k${String(i).padStart(6, '0')}`, i]);
  const scan = new MergedScan<number>(
    async (p, range, limit) => {
      const after = range['after'] as string | undefined;
      const rows = data[p]!.filter(([k]) => after === undefined || k > after);
      const entries = rows.slice(0, limit);
      return { entries, next: rows.length > limit ? entries[entries.length - 1]![0] : null };
    },
    P,
    {},
  );
  const t0 = performance.now();
  const page = await scan.take(Number.POSITIVE_INFINITY, null);
  const ms = performance.now() - t0;
  t.is(page.entries.length, 40_960);
  t.is(page.entries[0]![0], 'k000000');
  t.is(page.entries[40_959]![0], 'k040959');
  t.log(`merge took ${Math.round(ms)} ms`);
  t.true(ms < 1000, `merge took ${Math.round(ms)} ms`);
});
