/**
 * Review 3: range reads and size of a partitioned store fan out 64 requests at once (FAN_OUT)
 * whatever the application's queueCapacity is. With a queueCapacity below 64 (a documented,
 * accepted option of openKV), `size`, `entries` and `page` reject with QueueFullError on an
 * idle store, while the single-machine store answers the same calls.
 */
import test from 'ava';
import { openKV } from '../src/kv/open-kv.js';
import { tempDb } from './helpers/persistence-kv.js';

const FAST = { durability: 'normal' } as const;

test('an idle partitioned store with queueCapacity 16 answers size, entries and page as the single store does', async (t) => {
  const single = await openKV<number>(tempDb(t), { queueCapacity: 16, ...FAST });
  const parted = await openKV<number>(tempDb(t), { partitions: 64, queueCapacity: 16, warm: false, ...FAST });
  try {
    for (let i = 0; i < 100; i++) {
      await single.set(`k${i}`, i);
      await parted.set(`k${i}`, i);
    }
    t.is(await single.size(), 100);
    t.is(await parted.size(), 100);
    t.deepEqual(await parted.entries(), await single.entries());
    t.deepEqual(await parted.page({ limit: 5 }), await single.page({ limit: 5 }));
  } finally {
    await single.close();
    await parted.close();
  }
});
