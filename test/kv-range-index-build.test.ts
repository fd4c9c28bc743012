/**
 * The ordered key index is built in bounded slices (issue 18.7, last gap: "no single request
 * may hold the loop for more than a few ms"). The first range read on a store of 300k keys used
 * to sort every key inside its step, 0.3-1.1 s during which nothing else ran (~3.6 s at 1M).
 * Now the read waits, parked with the later requests of its machine, while the index is built
 * in ~4 ms slices between other work; writes meanwhile are reflected, and every result is the
 * one a full sort gives.
 */
import test from 'ava';
import fc from 'fast-check';
import { ShardedMap } from '../src/encoding/sharded-map.js';
import { EventLoop, type Request } from '../src/engine/event-loop.js';
import { QueueFullError } from '../src/errors.js';
import { kvStep, type KvInput } from '../src/kv/kv-machine.js';
import { readPage, type KvPage } from '../src/kv/kv-page.js';
import { kvTree, startRecording, tempDb } from './helpers/persistence-kv.js';

const key = fc.string({ unit: fc.constantFrom('a', 'b', 'c', 'é', '\u{1F600}'), maxLength: 4 });
const write = fc.oneof(
  fc.record({ op: fc.constant('store' as const), key, value: fc.nat() }),
  fc.record({ op: fc.constant('delete' as const), key }),
);
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('range reads during and after an incremental index build equal a full sort, under writes and deletes between slices', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(write, { maxLength: 300 }),
      // Per slice of the build: the writes made before it, and whether a range read comes then.
      fc.array(fc.record({ writes: fc.array(write, { maxLength: 5 }), read: fc.option(fc.record({ prefix: fc.option(key, { nil: undefined }), after: fc.option(key, { nil: undefined }), limit: fc.integer({ min: 0, max: 40 }) }), { freq: 8, nil: undefined }) }), { maxLength: 120 }),
      fc.constantFrom(1, 4, 16),
      fc.integer({ min: 1, max: 64 }),
      async (initial, slices, shardCount, runKeys) => {
        const state = new ShardedMap<unknown>(null, shardCount);
        const model = new Map<string, unknown>();
        const apply = (i: KvInput): void => {
          kvStep(i, state);
          kvStep(i, model as never);
        };
        const same = (req: { prefix?: string | undefined; after?: string | undefined; limit: number }): void => {
          t.deepEqual(readPage(state, req), readPage(model, req));
        };
        for (const i of initial) apply(i);
        const empty = state.size === 0;
        // One unit of work per slice and tiny runs and merges, so writes land in every phase.
        const built = state.whenIndexed({ syncMaxKeys: 0, sliceMs: 0, runKeys, mergeChunk: 3 });
        let done = built === null;
        void built?.then(() => (done = true));
        for (const s of slices) {
          for (const i of s.writes) apply(i);
          // A read before the build is done finishes it synchronously: still exactly the sorted keys.
          if (s.read) same(s.read);
          await tick();
        }
        await built;
        t.true(done, 'the build settles');
        t.true(built === null ? empty : state.indexed, 'with the index in place (an empty map needs no build)');
        same({ limit: 1_000_000 });
        for (const i of slices.flatMap((s) => s.writes)) apply(i);
        same({ limit: 1_000_000 });
        t.deepEqual([...state.keysInOrder()], [...model.keys()].sort());
      },
    ),
    { numRuns: 150 },
  );
});

test('a build abandoned by clear() lets its waiters go, and the next read indexes what is there', async (t) => {
  const state = new ShardedMap<unknown>(null, 8);
  for (let i = 0; i < 500; i++) state.set(`k${i}`, i);
  const built = state.whenIndexed({ syncMaxKeys: 0, sliceMs: 0, runKeys: 16 });
  t.truthy(built);
  await tick();
  state.clear();
  state.set('b', 1);
  state.set('a', 2);
  await built;
  t.deepEqual([...state.keysInOrder()], ['a', 'b']);
  t.is(state.whenIndexed(), null, 'indexed now: nothing to wait for');
});

test('a range read on a large store waits without holding the machine out of order: earlier writes are seen, later ones are not, other machines go on', async (t) => {
  const db = tempDb(t, 'ssm-range-build-');
  const { app } = await startRecording(kvTree(['kv1', 'kv2']), { db, snapshot: { every: 0 } });
  t.teardown(() => app.stop());
  // Above SYNC_INDEX_MAX_KEYS, so the first range read parks for a background build.
  const N = 40_000;
  for (let i = 0; i < N; i += 1000) await Promise.all(Array.from({ length: 1000 }, (_, j) => app.call('kv1', { op: 'store', key: `k${String(i + j).padStart(6, '0')}`, value: i + j })));
  await app.call('kv2', { op: 'store', key: 'x', value: 1 });
  const order: string[] = [];
  const note = <T>(name: string, p: Promise<T>): Promise<T> => p.then((v) => (order.push(name), v));
  // Submitted together, in this order, without waiting.
  const stored = note('store', app.call('kv1', { op: 'store', key: 'k!first', value: 'new' }));
  const scan1 = note('scan1', app.call<KvPage>('kv1', { op: 'scan', limit: 3 }));
  const deleted = note('delete', app.call('kv1', { op: 'delete', key: 'k!first' }));
  const entries = note('entries', app.call<[string, unknown][]>('kv1', { op: 'entries', prefix: 'k0399', limit: 2 }));
  const other = note('other', app.call('kv2', { op: 'lookup', key: 'x' }));
  const [, page, wasDeleted, tail, x] = await Promise.all([stored, scan1, deleted, entries, other]);
  t.deepEqual(page, { entries: [['k!first', 'new'], ['k000000', 0], ['k000001', 1]], next: 'k000001' }, 'the store submitted before the read is seen');
  t.true(wasDeleted);
  t.deepEqual(tail, [['k039900', 39900], ['k039901', 39901]]);
  t.is(x, 1);
  t.deepEqual(order.filter((n) => n !== 'other'), ['store', 'scan1', 'delete', 'entries'], "kv1's requests are answered in the order they came");
  t.true(order.indexOf('other') < order.indexOf('scan1'), 'the other machine is not held up by the build');
  t.deepEqual((await app.call<KvPage>('kv1', { op: 'scan', limit: 1 })).entries, [['k000000', 0]], 'the delete after the read is applied after it');
});

test('the first range read on 300k keys holds the event loop for a slice at a time, not for a sort of every key', async (t) => {
  const db = tempDb(t, 'ssm-range-build-');
  const { app } = await startRecording(kvTree(['kv1', 'kv2']), { db, snapshot: { every: 0 } });
  t.teardown(() => app.stop());
  const N = 300_000;
  const keys = Array.from({ length: N }, (_, i) => `user:${(i * 2654435761) >>> 0}`);
  for (let i = 0; i < N; i += 1000) await Promise.all(keys.slice(i, i + 1000).map((k, j) => app.call('kv1', { op: 'store', key: k, value: i + j })));
  await app.call('kv2', { op: 'store', key: 'x', value: 1 });
  const sorted = [...keys].sort();

  // The longest gap between two turns of the Node.js event loop while the first read is served.
  let maxGap = 0;
  let last = performance.now();
  let probing = true;
  const probe = (): void => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    if (probing) setImmediate(probe);
  };
  setImmediate(probe);
  const t0 = performance.now();
  let served = false;
  const first = app.call<KvPage>('kv1', { op: 'scan', prefix: 'user:', limit: 100 }).finally(() => (served = true));
  // Another client, calling in a loop meanwhile.
  const others: number[] = [];
  while (!served) {
    const s0 = performance.now();
    await app.call('kv2', { op: 'lookup', key: 'x' });
    others.push(performance.now() - s0);
  }
  const page = await first;
  const firstMs = performance.now() - t0;
  // One more turn, so that a stall ending with the read's reply is measured too.
  await new Promise((r) => setImmediate(r));
  probing = false;
  t.deepEqual(page.entries.map(([k]) => k), sorted.slice(0, 100), 'the same page as a full sort');
  t.is(page.next, sorted[99]!);
  others.sort((a, b) => a - b);
  t.log(`300k keys: first range read answered in ${firstMs.toFixed(0)} ms; longest event-loop stall meanwhile ${maxGap.toFixed(1)} ms; ${others.length} calls to another machine meanwhile, max ${others.at(-1)!.toFixed(1)} ms`);
  // Old: one synchronous sort of 0.3-1.1 s. Goal < 50 ms; generous for a noisy shared 2-core machine.
  t.true(maxGap < 150, `longest stall ${maxGap.toFixed(1)} ms`);
  t.true(others.at(-1)! < 150, 'another machine is served while the index is built');
});

test('the event loop parks a request that must wait with the later ones of its target, in order; they can time out; shutdown and idle account for them', async (t) => {
  interface Req extends Request<string> {
    readonly id: string;
  }
  const stepped: string[] = [];
  let release!: () => void;
  let gate: Promise<void> | null = new Promise<void>((r) => (release = r));
  const loop = new EventLoop<string>(
    {
      runBatch: (batch) => {
        for (const r of batch) {
          stepped.push((r as Req).id);
          r.settle(undefined, (r as Req).id);
        }
        return { crashedAt: -1 };
      },
      readiness: (r) => ((r as Req).id === 'a1' ? gate : null),
    },
    { queueCapacity: 5, maxBatch: 64 },
  );
  const settled: string[] = [];
  const req = (target: string, id: string): Req => {
    const r: Req = { target, id, input: null, status: 'queued', settle: (err) => ((r.status = 'settled'), settled.push(err ? `${id}:${String(err)}` : id)) };
    return r;
  };
  const a1 = req('a', 'a1');
  const a2 = req('a', 'a2');
  const a3 = req('a', 'a3');
  for (const r of [a1, req('b', 'b1'), a2, a3, req('b', 'b2')]) loop.enqueue(r);
  await tick();
  t.deepEqual(stepped, ['b1', 'b2'], "the other target is served; a's requests all wait behind a1");
  t.is(loop.depth, 3, 'parked requests still count against the queue capacity');
  loop.enqueue(req('c', 'c1'));
  loop.enqueue(req('c', 'c2'));
  t.throws(() => loop.enqueue(req('c', 'c3')), { instanceOf: QueueFullError });
  t.true(loop.cancel(a2), 'a parked request can be cancelled (call timeout)');
  let idle = false;
  void loop.idle().then(() => (idle = true));
  await tick();
  t.false(idle, 'not idle while requests are parked');
  release();
  gate = null;
  await loop.idle();
  t.deepEqual(stepped, ['b1', 'b2', 'c1', 'c2', 'a1', 'a3'], 'back in order once ready, without the cancelled one');

  // Shutdown while parked: takeAll hands parked requests back too, and a late wake-up re-queues nothing.
  gate = new Promise<void>((r) => (release = r));
  const again = req('a', 'a1');
  loop.enqueue(again);
  loop.enqueue(req('a', 'a4'));
  await tick();
  t.deepEqual(loop.takeAll().map((r) => (r as Req).id), ['a1', 'a4']);
  release();
  await tick();
  t.is(loop.depth, 0);
  t.deepEqual(stepped, ['b1', 'b2', 'c1', 'c2', 'a1', 'a3']);
});
