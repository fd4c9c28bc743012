/**
 * Review 3: a page of a partitioned store reads far more than it answers. Every page asks
 * every partition for ceil(2 * limit / P) + 8 entries (at least 9), each partition's reply cut
 * only at ~128 KiB, so page({ limit: 1 }) decodes up to P x 128 KiB: 64 partitions holding
 * 100 KiB values move ~12.8 MB to answer one 100 KiB entry (4096 partitions: up to 512 MiB),
 * where the single store moves one entry. kv-page.ts's promise ("no single read builds a reply
 * of many megabytes") holds per request, not per page() call. A merge over keys (or a first
 * round of one entry per partition, then values only for the entries taken) would bound it.
 */
import test from 'ava';
import { openKV } from '../src/kv/open-kv.js';
import { MAX_PAGE_BYTES } from '../src/kv/kv-page.js';
import type { PartitionedKV } from '../src/kv/partitioned-kv.js';
import { tempDb } from './helpers/persistence-kv.js';

// Known, not fixed yet (test.failing: it turns red once fixed, to be made a plain test): the
// merge reads values along with keys; reading keys first and then only the values taken is the fix.
test.failing('page({ limit: 1 }) of 64 partitions of 100 KiB values reads at most a few pages of bytes, not P x 128 KiB', async (t) => {
  const kv = (await openKV<string>(tempDb(t), { partitions: 64, warm: false, durability: 'normal' })) as PartitionedKV<string>;
  try {
    const value = 'v'.repeat(100 * 1024);
    const ps: Promise<void>[] = [];
    for (let i = 0; i < 128; i++) ps.push(kv.set(`k${String(i).padStart(4, '0')}`, value));
    await Promise.all(ps);
    const app = (kv as unknown as { app: { callBytes: (m: string, b: Uint8Array, o: unknown) => Promise<Uint8Array> } }).app;
    const original = app.callBytes.bind(app);
    let received = 0;
    app.callBytes = async (m, b, o) => {
      const reply = await original(m, b, o);
      received += reply.byteLength;
      return reply;
    };
    const page = await kv.page({ limit: 1 });
    t.is(page.entries.length, 1);
    t.is(page.entries[0]![0], 'k0000');
    t.log(`bytes received for one entry of 100 KiB: ${received}`);
    t.true(received <= 4 * MAX_PAGE_BYTES, `page({ limit: 1 }) received ${received} bytes`);
  } finally {
    await kv.close();
  }
});
