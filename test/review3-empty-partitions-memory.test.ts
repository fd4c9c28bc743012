/**
 * Review 3: every partition is a full KV machine whose state (ExpiringMap over a ShardedMap)
 * allocates its 256 shard Maps up front, so a store of 4096 partitions (MAX_PARTITIONS) that
 * holds NOTHING takes ~200 MB of heap once warmed (warm: true is the default): ~49 KB per empty
 * partition, one million empty Maps. The README says only that "all P stay in memory once
 * loaded". Shards created on first use (or fewer shards per partition, since the keys are
 * already split P ways) would make an empty partition cost a few hundred bytes.
 */
import test from 'ava';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { openKV } from '../src/kv/open-kv.js';
import { tempDb } from './helpers/persistence-kv.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapMb = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 1048576;
};

test('an empty store of 4096 partitions, warmed, takes less than 50 MB of heap', async (t) => {
  const before = heapMb();
  const kv = await openKV(tempDb(t), { partitions: 4096, durability: 'normal' });
  try {
    await kv.whenWarm();
    t.is(await kv.size(), 0);
    const grown = heapMb() - before;
    t.log(`heap grew by ${grown.toFixed(1)} MB for 4096 empty partitions`);
    t.true(grown < 50, `heap grew by ${grown.toFixed(1)} MB`);
  } finally {
    await kv.close();
  }
});
