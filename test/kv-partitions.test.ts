/**
 * The partitioned KV store (`openKV(path, { partitions })`): routing (the on-disk hash),
 * the same answers as the single-machine store for every method on random data, batches within
 * and across partitions, the recorded layout, per-partition snapshots, and waking on demand.
 */
import test from 'ava';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { ConfigError, IdempotencyKeyReusedError } from '../src/errors.js';
import { InvalidKeyError, InvalidOperationError, openKV, type EntriesOptions, type KV } from '../src/kv/open-kv.js';
import { MAX_PARTITIONS, fnv1a32, partitionOf } from '../src/kv/partition-hash.js';
import type { PartitionedKV } from '../src/kv/partitioned-kv.js';
import { rawDb, tempDb } from './helpers/persistence-kv.js';
import { startApplication } from '../src/engine/application.js';
import { entities } from '../src/model/entities.js';
import { supervisor } from '../src/model/tree.js';
import { embeddedKvMachine } from '../src/kv/embedded-machine.js';

const FAST = { durability: 'normal' } as const;

test('the partition hash is 32-bit FNV-1a of UTF-8: its published test vectors, and fixed routes (the on-disk format)', (t) => {
  t.is(fnv1a32(''), 0x811c9dc5);
  t.is(fnv1a32('a'), 0xe40c292c);
  t.is(fnv1a32('foobar'), 0xbf9cf968);
  // Non-ASCII must hash its UTF-8 bytes, as TextEncoder gives them (2, 3 and 4-byte sequences).
  const viaBytes = (s: string): number => {
    let h = 0x811c9dc5;
    for (const b of new TextEncoder().encode(s)) h = Math.imul(h ^ b, 0x01000193);
    return h >>> 0;
  };
  for (const k of ['é', 'ü-key', '€uro', '😀', 'a😀b', 'ｋｅｙ', '\u0000', 'user:42']) t.is(fnv1a32(k), viaBytes(k), k);
  // Routes written by this version, computed by an independent implementation (Python's
  // bytes of str.encode()): a change here would lose every key of existing stores.
  t.deepEqual(['a', 'b', 'key:1', 'key:2', 'user:1', 'é', '😀', ''].map((k) => fnv1a32(k)), [0xe40c292c, 0xe70c2de5, 0x58140fa9, 0x55140af0, 0x6d1a4acb, 0x1e9de8c1, 0x33a29608, 0x811c9dc5]);
  t.deepEqual(['a', 'b', 'key:1', 'key:2', 'user:1', 'é', '😀', ''].map((k) => partitionOf(k, 64)), [44, 37, 41, 48, 11, 1, 8, 5]);
});

test('sequential keys spread evenly over the partitions', (t) => {
  const counts = new Array<number>(64).fill(0);
  for (let i = 0; i < 10_000; i++) counts[partitionOf(`user:${i}`, 64)]!++;
  const mean = 10_000 / 64;
  t.true(Math.min(...counts) > mean * 0.6 && Math.max(...counts) < mean * 1.4, `counts ${counts.join(',')}`);
});

test('partitions is validated: an integer from 1 to 4096, with warm and partitionIdleMs, ConfigError otherwise and no file made', async (t) => {
  const db = tempDb(t);
  for (const partitions of [0, -1, 1.5, MAX_PARTITIONS + 1, Number.NaN, '4' as unknown as number, Number.POSITIVE_INFINITY]) {
    await t.throwsAsync(openKV(db, { partitions }), { instanceOf: ConfigError, message: /partitions must be an integer from 1 to 4096/ }, String(partitions));
  }
  await t.throwsAsync(openKV(db, { partitions: 4, warm: 'yes' as unknown as boolean }), { instanceOf: ConfigError, message: /warm/ });
  await t.throwsAsync(openKV(db, { partitions: 4, partitionIdleMs: 0 }), { instanceOf: ConfigError, message: /partitionIdleMs/ });
  t.false(existsSync(db), 'nothing was created');
  const kv = await openKV(db, { partitions: MAX_PARTITIONS, warm: false, ...FAST });
  t.is(kv.partitions, MAX_PARTITIONS);
  await kv.set('x', 1);
  t.is(await kv.get('x'), 1);
  // Fanned out to 4096 partitions without filling the queue (1024 by default).
  t.is(await kv.size(), 1);
  t.deepEqual(await kv.page(), { entries: [['x', 1]], next: null });
  await kv.close();
});

/** sha256 of the database file and whether a WAL is beside it: what "nothing changed on disk" compares. */
function fileState(db: string): string {
  const wal = `${db}-wal`;
  return `${createHash('sha256').update(readFileSync(db)).digest('hex')} wal:${existsSync(wal) ? createHash('sha256').update(readFileSync(wal)).digest('hex') : 'none'}`;
}

test('the partition count is persisted: another count, or no partitions, is refused with ConfigError and nothing changes on disk', async (t) => {
  const db = tempDb(t);
  const kv = await openKV<number>(db, { partitions: 8, ...FAST });
  await kv.set('a', 1);
  await kv.close();
  const before = fileState(db);
  for (const partitions of [4, 16, 1, undefined]) {
    const err = await t.throwsAsync(openKV(db, partitions === undefined ? {} : { partitions }), { instanceOf: ConfigError });
    t.regex(err!.message, /written as partitions: 8, hash fnv1a32/);
    t.regex(err!.message, /nothing was changed on disk/);
  }
  t.is(fileState(db), before, 'the refused opens wrote nothing');
  const again = await openKV<number>(db, { partitions: 8, ...FAST });
  t.is(await again.get('a'), 1);
  await again.close();
});

test('a partitioned store records its count at its first open, before any write', async (t) => {
  const db = tempDb(t);
  await (await openKV(db, { partitions: 3, ...FAST })).close();
  await t.throwsAsync(openKV(db, { partitions: 5 }), { instanceOf: ConfigError, message: /partitions: 3/ });
  await t.throwsAsync(openKV(db), { instanceOf: ConfigError, message: /partitions: 3/ });
});

test('a single-machine store holding data cannot be opened with partitions, nor one without data left as it is', async (t) => {
  const db = tempDb(t);
  const single = await openKV<number>(db, FAST);
  await single.set('a', 1);
  await single.close();
  const before = fileState(db);
  await t.throwsAsync(openKV(db, { partitions: 4 }), { instanceOf: ConfigError, message: /written as one machine/ });
  t.is(fileState(db), before);
  const back = await openKV<number>(db, { partitions: 1 });
  t.is(await back.get('a'), 1, 'partitions: 1 is the single machine');
  await back.close();
  // A single store that never wrote holds nothing to misroute: partitions may take the file.
  const empty = tempDb(t);
  await (await openKV(empty, FAST)).close();
  const kv = await openKV<number>(empty, { partitions: 4, ...FAST });
  await kv.set('b', 2);
  await kv.close();
  await t.throwsAsync(openKV(empty), { instanceOf: ConfigError });
});

// ---- Differential: the same calls on a single-machine store and a partitioned one ----

const KEYS = [...new Set(['', 'a', 'ab', 'b', 'user:', 'é', '😀', 'z', 'ﬀ'].flatMap((p) => ['', '1', '2', '10', 'x', ':y'].map((s) => p + s)))];
const key = fc.constantFrom(...KEYS);
const bound = fc.option(fc.constantFrom(...KEYS, 'a1', 'u', 'user', 'zz'), { nil: undefined });
const value = fc.oneof(
  fc.integer(),
  fc.string({ maxLength: 8 }),
  fc.constant(null),
  fc.record({ n: fc.integer(), tags: fc.array(fc.string({ maxLength: 3 }), { maxLength: 3 }) }),
  // Large values: a page is cut by its byte bound (~128 KiB) after a few of them.
  fc.integer({ min: 5_000, max: 60_000 }).map((n) => 'v'.repeat(n)),
);
const ttl = fc.option(fc.constant(600_000), { nil: undefined });
const range: fc.Arbitrary<EntriesOptions> = fc.record(
  { prefix: fc.constantFrom('', 'a', 'u', 'user:', 'é', '😀'), start: bound, end: bound, after: bound, reverse: fc.boolean(), limit: fc.integer({ min: 0, max: 40 }) },
  { requiredKeys: [] },
);
type Op =
  | { op: 'set'; key: string; value: unknown; ttlMs: number | undefined; idem: string | undefined }
  | { op: 'get' | 'has' | 'delete' | 'ttl' | 'persist'; key: string }
  | { op: 'expire'; key: string }
  | { op: 'setIfAbsent'; key: string; value: unknown }
  | { op: 'compareAndSet'; key: string; expected: unknown; value: unknown }
  | { op: 'update'; key: string }
  | { op: 'batch'; ops: ({ op: 'set'; key: string; value: unknown } | { op: 'delete'; key: string })[] }
  | { op: 'size' }
  | { op: 'entries'; range: EntriesOptions }
  | { op: 'pages'; range: EntriesOptions };
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('set' as const), key, value, ttlMs: ttl, idem: fc.option(fc.constantFrom('i1', 'i2', 'i3'), { nil: undefined }) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constantFrom('get' as const, 'has' as const, 'delete' as const, 'ttl' as const, 'persist' as const), key }) },
  fc.record({ op: fc.constant('expire' as const), key }),
  fc.record({ op: fc.constant('setIfAbsent' as const), key, value }),
  fc.record({ op: fc.constant('compareAndSet' as const), key, expected: fc.oneof(value, fc.constant(undefined)), value }),
  fc.record({ op: fc.constant('update' as const), key }),
  fc.record({ op: fc.constant('batch' as const), ops: fc.array(fc.oneof(fc.record({ op: fc.constant('set' as const), key, value }), fc.record({ op: fc.constant('delete' as const), key })), { maxLength: 3 }) }),
  fc.record({ op: fc.constant('size' as const) }),
  { weight: 3, arbitrary: fc.record({ op: fc.constant('entries' as const), range }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('pages' as const), range }) },
);

/** What one call answers (or the class of what it throws), comparable across the two stores. */
async function apply(kv: KV, o: Op): Promise<unknown> {
  try {
    switch (o.op) {
      case 'set':
        return await kv.set(o.key, o.value, { ...(o.ttlMs ? { ttlMs: o.ttlMs } : {}), ...(o.idem ? { idempotencyKey: `${o.idem}:${o.key}` } : {}) });
      case 'get':
      case 'has':
      case 'delete':
      case 'persist':
        return await kv[o.op](o.key);
      case 'ttl': {
        const ms = await kv.ttl(o.key);
        return typeof ms === 'number' ? 'ms' : ms;
      }
      case 'expire':
        return await kv.expire(o.key, 600_000);
      case 'setIfAbsent':
        return await kv.setIfAbsent(o.key, o.value);
      case 'compareAndSet':
        return await kv.compareAndSet(o.key, o.expected, o.value);
      case 'update':
        return await kv.update(o.key, (v) => (typeof v === 'number' ? v + 1 : 1));
      case 'batch':
        return await kv.batch(o.ops);
      case 'size':
        return await kv.size();
      case 'entries':
        return await kv.entries(o.range);
      case 'pages': {
        // Every page of the walk, each with its cursor, until `next` is null.
        const pages = [];
        let page = await kv.page(o.range);
        pages.push(page);
        while (page.next !== null && pages.length < 50) pages.push((page = await kv.page({ ...o.range, after: page.next })));
        return pages;
      }
    }
  } catch (err) {
    return { threw: (err as Error).constructor.name };
  }
}

test('on random calls, a partitioned store answers exactly as the single-machine store, and so after reopening', async (t) => {
  t.timeout(110_000);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(2, 3, 7, 16), fc.array(op, { minLength: 20, maxLength: 120 }), async (partitions, ops) => {
      const dir = `${tempDb(t)}-${run++}`;
      const single = await openKV(`${dir}-single.db`, FAST);
      let parted = await openKV(`${dir}-parted.db`, { partitions, ...FAST });
      try {
        for (const [i, o] of ops.entries()) {
          if (o.op === 'batch' && new Set(o.ops.map((b) => parted.partitionOf(b.key))).size > 1) {
            // Across partitions: refused, nothing applied, and the single store is left alone too.
            const r = await apply(parted, o);
            if (!isDeepStrictEqual(r, { threw: 'InvalidOperationError' })) throw new Error(`op ${i} (batch across partitions) answered ${JSON.stringify(r)}`);
            continue;
          }
          const [a, b] = [await apply(single, o), await apply(parted, o)];
          if (!isDeepStrictEqual(a, b)) throw new Error(`op ${i} ${JSON.stringify(o).slice(0, 300)}: single ${JSON.stringify(a)?.slice(0, 300)} vs partitioned ${JSON.stringify(b)?.slice(0, 300)}`);
        }
        await parted.close();
        parted = await openKV(`${dir}-parted.db`, { partitions, ...FAST });
        const [a, b] = [await single.entries(), await parted.entries()];
        if (!isDeepStrictEqual(a, b)) throw new Error('entries differ after reopening the partitioned store');
      } finally {
        await single.close();
        await parted.close();
      }
    }),
    { numRuns: 12 },
  );
  t.pass();
});

test('on 3000 keys, every range and page walk of 16 partitions equals the single machine, byte-bounded pages included', async (t) => {
  t.timeout(110_000);
  const single = await openKV<unknown>(tempDb(t), FAST);
  const parted = await openKV<unknown>(tempDb(t), { partitions: 16, ...FAST });
  t.teardown(async () => {
    await single.close();
    await parted.close();
  });
  let seed = 7;
  const rand = (n: number): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % n;
  for (let chunk = 0; chunk < 30; chunk++) {
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 100; i++) {
      const k = `${['a', 'b', 'user:', 'é'][rand(4)]}${rand(100_000)}`;
      const v = rand(20) === 0 ? 'x'.repeat(2_000 + rand(30_000)) : { n: rand(1000) };
      writes.push(single.set(k, v), parted.set(k, v));
    }
    await Promise.all(writes);
  }
  t.is(await parted.size(), await single.size());
  t.true((await single.size()) > 2900);
  for (const options of [{}, { reverse: true }, { prefix: 'user:' }, { start: 'b', end: 'user:5', reverse: true }, { prefix: 'a', limit: 123 }, { after: 'b5' }]) {
    t.deepEqual(await parted.entries(options), await single.entries(options), JSON.stringify(options));
    for (const limit of [1, 7, 1000, undefined]) {
      let [p, s] = [await parted.page({ ...options, limit }), await single.page({ ...options, limit })];
      let pages = 1;
      t.deepEqual(p, s);
      while (s.next !== null && pages < 40) {
        [p, s] = [await parted.page({ ...options, limit, after: s.next }), await single.page({ ...options, limit, after: s.next })];
        t.deepEqual(p, s, `${JSON.stringify(options)} limit ${limit} page ${pages}`);
        pages++;
      }
    }
  }
  const cut = await single.page({ limit: 10_000 });
  t.true(cut.entries.length < 3000 && cut.next !== null, 'the byte bound cut a page');
  t.deepEqual(await parted.page({ limit: 10_000 }), cut);
});

/** Two keys of one partition and one of another, for batches. */
function keysFor(kv: KV): { same: [string, string]; other: string } {
  const home = kv.partitionOf('k0');
  const same = ['k0', ''] as [string, string];
  let other = '';
  for (let i = 1; !same[1] || !other; i++) {
    const k = `k${i}`;
    if (kv.partitionOf(k) === home) same[1] ||= k;
    else other ||= k;
  }
  return { same, other };
}

test('a batch within one partition is applied atomically; across partitions it is refused with InvalidOperationError and nothing is applied', async (t) => {
  const db = tempDb(t);
  const kv = await openKV<number>(db, { partitions: 8, ...FAST });
  const { same, other } = keysFor(kv);
  await kv.batch([
    { op: 'set', key: same[0], value: 1 },
    { op: 'set', key: same[1], value: 2 },
  ]);
  t.deepEqual([await kv.get(same[0]), await kv.get(same[1])], [1, 2]);
  const err = await t.throwsAsync(
    kv.batch([
      { op: 'delete', key: same[0] },
      { op: 'set', key: other, value: 3 },
    ]),
    { instanceOf: InvalidOperationError },
  );
  t.regex(err!.message, /2 partitions .* atomic only within one partition, so it was refused and nothing was applied/);
  t.regex(err!.message, /partitionOf/);
  t.deepEqual([await kv.get(same[0]), await kv.get(other)], [1, undefined], 'nothing of the refused batch applied');
  // Invalid ops are refused first, with the single store's errors.
  await t.throwsAsync(kv.batch([{ op: 'set', key: 5 as unknown as string, value: 1 }]), { instanceOf: InvalidKeyError, message: /batch op 0/ });
  await t.throwsAsync(kv.batch([{ op: 'nope' } as never]), { instanceOf: InvalidOperationError, message: /unknown op/ });
  await kv.batch([]);
  await kv.batch([{ op: 'delete', key: same[1] }], { idempotencyKey: 'b1' });
  await kv.close();
  const again = await openKV<number>(db, { partitions: 8, ...FAST });
  t.deepEqual([await again.get(same[0]), await again.get(same[1])], [1, undefined]);
  await again.close();
});

test('idempotency keys: a retry is not applied again (also after reopening); reuse with other arguments is refused', async (t) => {
  const db = tempDb(t);
  const kv = await openKV<number>(db, { partitions: 4, ...FAST });
  await kv.set('x', 1, { idempotencyKey: 'order-1' });
  await kv.delete('x');
  await kv.set('x', 1, { idempotencyKey: 'order-1' });
  t.is(await kv.get('x'), undefined, 'the retry was recognised');
  await t.throwsAsync(kv.set('x', 2, { idempotencyKey: 'order-1' }), { instanceOf: IdempotencyKeyReusedError });
  await kv.close();
  const again = await openKV<number>(db, { partitions: 4, ...FAST });
  await again.set('x', 1, { idempotencyKey: 'order-1' });
  t.is(await again.get('x'), undefined, 'recognised after a restart');
  await again.close();
});

test('TTL: keys expire in every partition for get, has, size, ttl and range reads, and stay expired after reopening', async (t) => {
  const db = tempDb(t);
  const kv = await openKV<number>(db, { partitions: 8, ...FAST });
  // Short TTLs are only checked after they passed (waited from the last acknowledgement), long
  // ones only before: the test holds however slowly a loaded machine writes.
  await Promise.all(Array.from({ length: 40 }, (_, i) => kv.set(`t${i}`, i, i % 2 === 0 ? { ttlMs: 300 } : {})));
  await Promise.all(Array.from({ length: 5 }, (_, i) => kv.set(`long${i}`, i, { ttlMs: 600_000 })));
  await new Promise((r) => setTimeout(r, 400));
  t.is(await kv.size(), 25);
  t.false(await kv.has('t0'));
  t.is(await kv.get('t2'), undefined);
  t.is(await kv.ttl('t4'), undefined);
  t.is(await kv.ttl('t1'), null);
  t.is(typeof (await kv.ttl('long3')), 'number');
  t.deepEqual((await kv.entries()).map(([k]) => k), [...Array.from({ length: 5 }, (_, i) => `long${i}`), ...Array.from({ length: 20 }, (_, i) => `t${2 * i + 1}`)].sort());
  t.true(await kv.expire('t1', 600_000));
  t.true(await kv.persist('t1'));
  t.false(await kv.expire('t0', 600_000), 'an expired key does not exist');
  await kv.close();
  const again = await openKV<number>(db, { partitions: 8, ...FAST });
  t.is(await again.size(), 25);
  t.is(await again.ttl('t1'), null);
  await again.close();
});

/** Snapshots per machine, from the file. */
function snapshotsPerMachine(db: string): Map<string, number> {
  const raw = rawDb(db);
  try {
    return new Map((raw.prepare('SELECT machine, count(*) FROM snapshots GROUP BY machine').raw().all() as [string, number][]));
  } finally {
    raw.close();
  }
}

test('each partition is snapshotted on its own: after one write, only its partition takes a new snapshot', async (t) => {
  const db = tempDb(t);
  const kv = await openKV<number>(db, { partitions: 8, ...FAST });
  for (let i = 0; i < 200; i++) await kv.set(`s${i}`, i);
  await kv.close();
  const before = snapshotsPerMachine(db);
  t.is(before.size, 8, 'every partition was written and snapshotted at close');
  t.false([...before.keys()].some((m) => m.startsWith('kv.partitions')), 'the layout marker holds no state');
  const again = await openKV<number>(db, { partitions: 8, warm: false, ...FAST });
  await again.set('s7', 700);
  const home = `kv/p${again.partitionOf('s7')}`;
  await again.close();
  const after = snapshotsPerMachine(db);
  for (const [m, n] of after) t.is(n, (before.get(m) ?? 0) + (m === home ? 1 : 0), m);
});

test('without warm, a request wakes only its own partition; size and range reads wake them all', async (t) => {
  const db = tempDb(t);
  const kv = await openKV<number>(db, { partitions: 16, ...FAST });
  for (let i = 0; i < 100; i++) await kv.set(`w${i}`, i);
  await kv.close();
  const lazy = (await openKV<number>(db, { partitions: 16, warm: false, ...FAST })) as PartitionedKV<number>;
  t.is(lazy.awake(), 0);
  t.is(await lazy.get('w5'), 5);
  t.is(lazy.awake(), 1);
  t.is(await lazy.size(), 100);
  t.is(lazy.awake(), 16);
  await lazy.close();
});

test('with warm (the default), the first request is served before every partition is loaded, and warming loads them all', async (t) => {
  const db = tempDb(t);
  const kv = await openKV<number>(db, { partitions: 64, ...FAST });
  for (let c = 0; c < 4; c++) await Promise.all(Array.from({ length: 500 }, (_, i) => kv.set(`w${c * 500 + i}`, c * 500 + i)));
  await kv.close();
  const warm = (await openKV<number>(db, { partitions: 64, ...FAST })) as PartitionedKV<number>;
  t.is(await warm.get('w1999'), 1999);
  const atFirstReply = warm.awake();
  t.true(atFirstReply < 64, `${atFirstReply} partitions were awake at the first reply`);
  await warm.whenWarm();
  t.is(warm.awake(), 64, 'every partition is loaded, and all stay awake (maxActive is P)');
  await new Promise((r) => setTimeout(r, 300));
  t.is(warm.awake(), 64);
  await warm.close();
});

test('partitionIdleMs puts idle partitions to sleep (snapshotted), and their next request wakes them with their data', async (t) => {
  const db = tempDb(t);
  const kv = (await openKV<number>(db, { partitions: 4, partitionIdleMs: 40, ...FAST })) as PartitionedKV<number>;
  for (let i = 0; i < 20; i++) await kv.set(`i${i}`, i);
  t.true(kv.awake() > 0);
  for (let i = 0; i < 250 && kv.awake() > 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.is(kv.awake(), 0);
  t.is(await kv.get('i3'), 3);
  t.is(await kv.size(), 20);
  await kv.close();
});

test('closing while warming stops it; the store opens again with its data', async (t) => {
  const db = tempDb(t);
  const kv = await openKV<number>(db, { partitions: 512, ...FAST });
  await kv.set('a', 1);
  await kv.close();
  const again = (await openKV<number>(db, { partitions: 512, ...FAST })) as PartitionedKV<number>;
  await again.close();
  await again.whenWarm();
  t.is(again.awake(), 0, 'warming ended with the store: nothing woke after the close');
  const third = await openKV<number>(db, { partitions: 512, warm: false, ...FAST });
  t.is(await third.get('a'), 1);
  await third.close();
});

test('key checks and readable tables: partitionOf refuses what the store refuses; kv_entries holds each key under its partition', async (t) => {
  const db = tempDb(t);
  const kv = await openKV<number>(db, { partitions: 4, readable: true, ...FAST });
  t.throws(() => kv.partitionOf(1 as unknown as string), { instanceOf: InvalidKeyError });
  t.throws(() => kv.partitionOf('\ud800'), { instanceOf: InvalidKeyError });
  await t.throwsAsync(kv.get('x'.repeat(5000)), { instanceOf: InvalidKeyError });
  for (let i = 0; i < 30; i++) await kv.set(`r${i}`, i);
  const raw = rawDb(db);
  try {
    const rows = raw.prepare(`SELECT machine, key FROM kv_entries WHERE machine >= 'kv/' AND machine < 'kv0'`).all() as { machine: string; key: string }[];
    t.is(rows.length, 30);
    for (const r of rows) t.is(r.machine, `kv/p${partitionOf(r.key, 4)}`);
  } finally {
    raw.close();
  }
  await kv.close();
});

test('the layout is recorded as the machine kv.partitions:<P>:fnv1a32; partitions without that marker are refused too', async (t) => {
  const db = tempDb(t);
  await (await openKV(db, { partitions: 12, ...FAST })).close();
  const raw = rawDb(db);
  try {
    t.deepEqual(raw.prepare(`SELECT name FROM machines WHERE family IS NULL`).pluck().all(), ['kv.partitions:12:fnv1a32']);
  } finally {
    raw.close();
  }
  // A family 'kv' written by another tree (no marker): its routing is unknown, so it is refused.
  const foreign = tempDb(t);
  const app = await startApplication(supervisor('one_for_one', [entities('kv', embeddedKvMachine())]), { db: foreign, logger: false });
  await app.call('kv/p0', { op: 'store', key: 'a', value: 1 });
  await app.stop();
  for (const partitions of [1, 4]) await t.throwsAsync(openKV(foreign, { partitions }), { instanceOf: ConfigError, message: /partitions without a layout marker/ });
});

test('concurrent updates of one key in a partitioned store are serialised as on one machine', async (t) => {
  const kv = await openKV<number>(tempDb(t), { partitions: 8, ...FAST });
  // Each round of reads lets at least one compareAndSet win: 20 updaters need at most 20 attempts.
  await Promise.all(Array.from({ length: 20 }, () => kv.update('n', (v) => (v ?? 0) + 1, { maxAttempts: 21 })));
  t.is(await kv.get('n'), 20);
  t.true(await kv.compareAndSet('n', 20, 21));
  t.false(await kv.compareAndSet('n', 20, 22));
  t.false(await kv.setIfAbsent('n', 0));
  await kv.close();
});

test('whenWarm resolves at once without partitions and with warm: false', async (t) => {
  const single = await openKV(tempDb(t), FAST);
  await single.whenWarm();
  t.is(single.partitions, 1);
  t.is(single.partitionOf('anything'), 0);
  await single.close();
  const lazy = (await openKV(tempDb(t), { partitions: 8, warm: false, ...FAST })) as PartitionedKV<unknown>;
  await lazy.whenWarm();
  t.is(lazy.awake(), 0, 'nothing was loaded');
  await lazy.close();
});

test('expired keys are removed for real in every partition, by their own timers, even from partitions asleep when due', async (t) => {
  const db = tempDb(t);
  const kv = (await openKV<number>(db, { partitions: 8, readable: true, partitionIdleMs: 30, ...FAST })) as PartitionedKV<number>;
  // Long enough that every write lands and every partition falls asleep before the first expiry, even on a loaded machine.
  await Promise.all(Array.from({ length: 200 }, (_, i) => kv.set(`e${i}`, i, { ttlMs: 3000 })));
  await kv.set('keep', 1);
  const rows = (): { timers: number; entries: number } => {
    const raw = rawDb(db);
    try {
      return {
        timers: raw.prepare(`SELECT count(*) FROM timers WHERE machine >= 'kv/' AND machine < 'kv0'`).pluck().get() as number,
        entries: raw.prepare(`SELECT count(*) FROM kv_entries WHERE machine >= 'kv/' AND machine < 'kv0'`).pluck().get() as number,
      };
    } finally {
      raw.close();
    }
  };
  const written = Date.now();
  for (let i = 0; i < 100 && kv.awake() > 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.is(kv.awake(), 0, 'every partition went to sleep');
  // On a machine loaded enough that the writes took most of the TTL, "asleep when due" cannot be
  // arranged; the removal itself is still checked.
  if (Date.now() < written + 2000) {
    t.is(rows().entries, 201);
    t.true(rows().timers >= 7, 'a removal timer per partition holding expiring keys');
  } else t.log('writes were too slow to check the partitions asleep before the expiry');
  for (let i = 0; i < 400 && rows().timers > 0; i++) await new Promise((r) => setTimeout(r, 25));
  t.deepEqual(rows(), { timers: 0, entries: 1 }, 'every expired key removed (the timers woke their partitions)');
  t.is(await kv.size(), 1);
  await kv.close();
});
