/**
 * The KV operations of issue 16.3: setIfAbsent, compareAndSet (by CBOR bytes), batch (atomic:
 * one request, one log entry; an invalid op applies nothing), update (a client-side
 * compare-and-set loop), time to live (exact to every reader, removed by a logged, replayable
 * timer delivery), range reads with start/end/reverse, and idempotency keys on every write.
 */
import test from 'ava';
import fc from 'fast-check';
import Database from 'better-sqlite3';
import { cbor } from '../src/encoding/cbor.js';
import { ExpiringMap } from '../src/encoding/expiring-map.js';
import { encodeStateSlices } from '../src/encoding/snapshot-encoding.js';
import { ShardedMap } from '../src/encoding/sharded-map.js';
import { startApplication } from '../src/engine/application.js';
import { DecodeError, IdempotencyKeyReusedError } from '../src/errors.js';
import { EXPIRY_TIMER, REMOVAL_GRANULARITY_MS } from '../src/kv/kv-expiry.js';
import { KV_STATE_VERSION, kvMachine, kvStepWithExpiry, stampKvInput, validateKvInput, type KvInput } from '../src/kv/kv-machine.js';
import { InvalidKeyError, InvalidOperationError, UpdateConflictError, openKV, KV_MACHINE } from '../src/kv/open-kv.js';
import { defineMachine } from '../src/model/machine.js';
import { supervisor, worker } from '../src/model/tree.js';
import { tempDb } from './helpers/persistence-kv.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const lastSeq = (path: string): number => {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare(`SELECT coalesce(max(last_seq), 0) FROM request_log WHERE machine = ?`).pluck().get(KV_MACHINE) as number) ?? 0;
  } finally {
    db.close();
  }
};
/** The raw KV tree under the name openKV uses, for trusted calls with a simulated `now`. */
const rawTree = () => supervisor('one_for_one', [worker(KV_MACHINE, kvMachine())], { name: 'kv_root' });

test('setIfAbsent and compareAndSet resolve to whether they wrote; CAS compares CBOR bytes, a missing key as undefined', async (t) => {
  const kv = await openKV<unknown>(tempDb(t));
  t.true(await kv.setIfAbsent('a', { n: 1 }));
  t.false(await kv.setIfAbsent('a', { n: 2 }));
  t.deepEqual(await kv.get('a'), { n: 1 });
  t.false(await kv.compareAndSet('a', { n: 2 }, { n: 3 }));
  t.true(await kv.compareAndSet('a', { n: 1 }, { n: 3 }));
  t.deepEqual(await kv.get('a'), { n: 3 });
  // Same entries in another order are other bytes: no match.
  await kv.set('m', new Map([['x', 1], ['y', 2]]));
  t.false(await kv.compareAndSet('m', new Map([['y', 2], ['x', 1]]), 'no'));
  t.true(await kv.compareAndSet('m', new Map([['x', 1], ['y', 2]]), 'yes'));
  // A missing key compares as undefined (what get answers); a stored null is not missing.
  t.true(await kv.compareAndSet('fresh', undefined, 1));
  t.false(await kv.compareAndSet('fresh', undefined, 2));
  await kv.set('nul', null);
  t.false(await kv.compareAndSet('nul', undefined, 1));
  t.true(await kv.compareAndSet('nul', null, 1));
  await t.throwsAsync(kv.compareAndSet('a'.repeat(5000), 1, 2), { instanceOf: InvalidKeyError });
  await kv.close();
});

test('batch: set and delete applied atomically as one log entry; an invalid op rejects the whole batch and applies nothing', async (t) => {
  const path = tempDb(t);
  const kv = await openKV<number>(path);
  await kv.set('gone', 0);
  const before = lastSeq(path);
  await kv.batch([{ op: 'set', key: 'a', value: 1 }, { op: 'set', key: 'b', value: 2, ttlMs: 60_000 }, { op: 'delete', key: 'gone' }, { op: 'set', key: 'a', value: 3 }]);
  t.is(lastSeq(path), before + 1, 'one request, one log entry');
  t.deepEqual(await kv.entries(), [['a', 3], ['b', 2]]);
  t.true(((await kv.ttl('b')) ?? 0) > 59_000);
  const invalid: unknown[][] = [
    [{ op: 'set', key: 'c', value: 1 }, { op: 'nope', key: 'd' }],
    [{ op: 'set', key: 'c', value: 1 }, { op: 'set', key: 'd', value: 1, ttlMs: -5 }],
    [{ op: 'set', key: 'c', value: 1 }, { op: 'set', key: 'd', value: 1, ttlMs: 1.5 }],
    [{ op: 'set', key: 'c', value: 1 }, { op: 'set', key: 'd', value: 1, ttlMs: Number.POSITIVE_INFINITY }],
    [{ op: 'set', key: 'c', value: 1 }, { op: 'delete', key: 7 }],
    [{ op: 'delete', key: 'a' }, null],
  ];
  for (const ops of invalid) {
    const err = await t.throwsAsync(kv.batch(ops as never));
    t.true(err instanceof InvalidOperationError || err instanceof InvalidKeyError, String(err));
    t.regex(err!.message, /nothing was applied/);
  }
  t.is(lastSeq(path), before + 1, 'nothing of an invalid batch reached the log');
  t.deepEqual(await kv.entries(), [['a', 3], ['b', 2]]);
  await kv.close();
});

test('the machine refuses an invalid batch as a whole (DecodeError over the untrusted path), nothing applied', async (t) => {
  const path = tempDb(t);
  const app = await startApplication(rawTree(), { db: path, logger: false });
  const bad = [
    { op: 'batch', ops: [{ op: 'set', key: 'x', value: 1 }, { op: 'frobnicate' }] },
    { op: 'batch', ops: [{ op: 'set', key: 'x', value: 1 }, { op: 'store', key: 'y', value: 1, ttlMs: 0 }] },
    { op: 'batch', ops: [{ op: 'set', key: 'x', value: 1 }, { op: 'scan' }] },
    { op: 'batch', ops: [{ op: 'set', key: 'x', value: 1 }, { op: 'batch', ops: [] }] },
    { op: 'store', key: 'x', value: 1, ttlMs: 5, expiresAt: 10 },
    { op: 'removeExpired', upTo: 1e15 },
  ];
  for (const input of bad) await t.throwsAsync(app.callValue(KV_MACHINE, input), { instanceOf: DecodeError }, JSON.stringify(input));
  t.is(await app.callValue(KV_MACHINE, { op: 'has', key: 'x' }), false);
  // A trusted call with a malformed ttlMs is refused at the door too (the stamp checks it).
  await t.throwsAsync(app.call(KV_MACHINE, { op: 'store', key: 'x', value: 1, ttlMs: -1 }), { instanceOf: DecodeError });
  t.is(lastSeq(path), 0);
  await app.stop();
});

test('update: a compare-and-set loop in the caller, retried on conflict, bounded with UpdateConflictError', async (t) => {
  const kv = await openKV<number>(tempDb(t));
  t.is(await kv.update('n', (v) => (v ?? 0) + 1), 1);
  t.is(await kv.update('n', (v) => (v ?? 0) + 1), 2);
  // Twenty concurrent increments: each lands exactly once (conflicts are retried).
  const results = await Promise.all(Array.from({ length: 20 }, () => kv.update('n', (v) => (v ?? 0) + 1, { maxAttempts: 100 })));
  t.is(await kv.get('n'), 22);
  t.deepEqual([...results].sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i + 3));
  // A writer that always wins: fn runs maxAttempts times, then a typed error and nothing applied.
  let calls = 0;
  const err = await t.throwsAsync(
    kv.update(
      'n',
      (v) => {
        calls++;
        void kv.set('n', 1000 + calls); // sent before the CAS below: it always gets there first
        return (v ?? 0) + 1;
      },
      { maxAttempts: 3 },
    ),
    { instanceOf: UpdateConflictError },
  );
  t.is(err!.code, 'UPDATE_CONFLICT');
  t.is(calls, 3);
  t.is(await kv.get('n'), 1003);
  await t.throwsAsync(kv.update('n', (v) => v!, { maxAttempts: 0 }), { instanceOf: InvalidOperationError });
  await kv.close();
});

test('ttl: remaining ms, null without expiry, undefined when missing; set clears it, expire and persist change it', async (t) => {
  const kv = await openKV<string>(tempDb(t));
  await kv.set('a', 'x', { ttlMs: 60_000 });
  const left = await kv.ttl('a');
  t.true(left! > 59_000 && left! <= 60_000, String(left));
  await kv.set('b', 'y');
  t.is(await kv.ttl('b'), null);
  t.is(await kv.ttl('missing'), undefined);
  await kv.set('a', 'z');
  t.is(await kv.ttl('a'), null, 'a set without ttlMs clears the expiry');
  t.true(await kv.expire('a', 5000));
  t.true((await kv.ttl('a'))! <= 5000);
  t.false(await kv.expire('missing', 5000));
  t.true(await kv.persist('a'));
  t.false(await kv.persist('a'));
  t.is(await kv.ttl('a'), null);
  for (const ttlMs of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '10' as unknown as number]) {
    await t.throwsAsync(kv.set('c', 'v', { ttlMs }), { instanceOf: InvalidOperationError }, String(ttlMs));
  }
  t.false(await kv.has('c'));
  await kv.close();
});

test('expiry is exact: an expired key is never returned by get/has/size/entries/ttl, even before its removal', async (t) => {
  // Simulated time far in the future of the wall clock: the removal timer cannot fire during the
  // test, so every expired key here is still physically in the state.
  const app = await startApplication(rawTree(), { db: tempDb(t), logger: false });
  const T = 4_000_000_000_000;
  const call = (input: Record<string, unknown>, now?: number) => app.call(KV_MACHINE, now === undefined ? input : { ...input, now });
  await call({ op: 'store', key: 'a', value: 1, ttlMs: 1000 }, T);
  await call({ op: 'store', key: 'b', value: 2 }, T);
  await call({ op: 'store', key: 'c', value: 3, expiresAt: T + 500 }, T);
  t.is(await call({ op: 'lookup', key: 'a' }, T + 999), 1);
  t.is(await call({ op: 'ttl', key: 'a' }, T + 999), 1);
  for (const now of [T + 1000, T + 5000]) {
    t.is(await call({ op: 'lookup', key: 'a' }, now), null);
    t.false(await call({ op: 'has', key: 'a' }, now));
    t.is(await call({ op: 'ttl', key: 'a' }, now), -2);
    t.is(await call({ op: 'size' }, now), 1);
    t.deepEqual(await call({ op: 'entries' }, now), [['b', 2]]);
    t.deepEqual(await call({ op: 'entries', reverse: true }, now), [['b', 2]]);
    t.deepEqual(await call({ op: 'lookupMany', keys: ['a', 'b', 'c'] }, now), [null, 2, null]);
  }
  // Still there underneath (nothing has removed them yet): a call judged at another time sees them.
  t.is(await call({ op: 'size' }, T), 3);
  // Writes judge the same way: setIfAbsent on an expired key writes, and the new key has no expiry.
  t.deepEqual(await call({ op: 'storeIf', key: 'a', value: 9, when: 'absent', returnOld: true }, T + 2000), { stored: true, old: null });
  t.is(await call({ op: 'ttl', key: 'a' }, T + 2000), -1);
  t.false(await call({ op: 'delete', key: 'c' }, T + 2000), 'deleting an expired key: it did not exist');
  t.false(await call({ op: 'compareAndSet', key: 'b', expected: 3, value: 0 }, T));
  await app.stop();
});

test.serial('expired keys are removed by one logged timer delivery, replayable: the state after a restart is the same', async (t) => {
  const path = tempDb(t);
  const kv = await openKV<number>(path, { snapshot: { every: 1_000_000 }, readable: true });
  const keys = 300;
  await kv.batch(Array.from({ length: keys }, (_, i) => ({ op: 'set' as const, key: `t${i}`, value: i, ttlMs: 400 + (i % 5) })));
  await kv.set('keep', 1);
  t.is(await kv.size(), keys + 1);
  const start = Date.now();
  await sleep(450);
  t.is(await kv.size(), 1, 'expired keys are not counted, removed or not');
  // Removal happens within a granularity of the expiry (plus the commit).
  const raw = () => {
    const db = new Database(path, { readonly: true });
    try {
      const removals = db.prepare(`SELECT count(*) FROM requests WHERE machine = ? AND request LIKE '%removeExpired%'`).pluck().get(KV_MACHINE) as number;
      const timers = db.prepare(`SELECT count(*) FROM timers WHERE machine = ? AND timer = ?`).pluck().get(KV_MACHINE, EXPIRY_TIMER) as number;
      return { removals, timers };
    } finally {
      db.close();
    }
  };
  for (let i = 0; i < 100 && raw().timers > 0; i++) await sleep(20);
  t.is(raw().timers, 0, 'no removal timer left once every expiring key is gone');
  t.true(raw().removals >= 1, 'the removal is a logged request');
  t.log(`${keys} keys expiring within 5 ms: removed ${Date.now() - start} ms after being set`);
  await kv.close();
  // Replay from the log alone (no snapshot but the one close took: reopen from before it).
  const app = await startApplication(rawTree(), { db: path, logger: false });
  t.is(await app.call(KV_MACHINE, { op: 'size', now: 0 }), 1, 'removed for real: even a read judged at time 0 finds only "keep"');
  await app.stop();
  const db = new Database(path);
  db.prepare(`DELETE FROM snapshots`).run();
  db.close();
  const replayed = await startApplication(rawTree(), { db: path, logger: false });
  t.is(await replayed.call(KV_MACHINE, { op: 'size', now: 0 }), 1, 'replaying the log (the removals included) gives the same state');
  await replayed.stop();
});

test.serial('thousands of keys expiring over a second mean at most about 1000/granularity removal deliveries a second', async (t) => {
  const path = tempDb(t);
  const kv = await openKV<number>(path, { readable: true });
  const n = 3000;
  const ops = Array.from({ length: n }, (_, i) => ({ op: 'set' as const, key: `k${i}`, value: i, ttlMs: 100 + Math.floor((i / n) * 1000) }));
  for (let i = 0; i < n; i += 1000) await kv.batch(ops.slice(i, i + 1000));
  const t0 = Date.now();
  while ((await kv.size()) > 0 && Date.now() - t0 < 5000) await sleep(50);
  await sleep(3 * REMOVAL_GRANULARITY_MS);
  await kv.close();
  const db = new Database(path, { readonly: true });
  const removals = db.prepare(`SELECT count(*) FROM requests WHERE machine = ? AND request LIKE '%removeExpired%'`).pluck().get(KV_MACHINE) as number;
  const rows = db.prepare(`SELECT count(*) FROM kv_entries WHERE machine = ?`).pluck().get(KV_MACHINE) as number;
  db.close();
  const elapsed = (Date.now() - t0) / 1000;
  t.log(`${n} keys expiring over 1 s: ${removals} removal deliveries over ${elapsed.toFixed(1)} s`);
  t.true(removals <= Math.ceil((1100 / REMOVAL_GRANULARITY_MS) * 1.5) + 5, `${removals} removal deliveries`);
  t.is(rows, 0, 'the removals reached kv_entries too');
});

test('range reads: start inclusive, end exclusive, reverse gives the same range descending, with prefix and paging', async (t) => {
  const kv = await openKV<number>(tempDb(t));
  const keys = ['a', 'b', 'ba', 'bb', 'c', 'd', 'e'];
  await kv.batch(keys.map((k, i) => ({ op: 'set' as const, key: k, value: i })));
  const ks = async (o: Parameters<typeof kv.entries>[0]) => (await kv.entries(o)).map(([k]) => k);
  t.deepEqual(await ks({ start: 'b', end: 'd' }), ['b', 'ba', 'bb', 'c']);
  t.deepEqual(await ks({ start: 'b', end: 'd', reverse: true }), ['c', 'bb', 'ba', 'b']);
  t.deepEqual(await ks({ prefix: 'b', reverse: true }), ['bb', 'ba', 'b']);
  t.deepEqual(await ks({ prefix: 'b', start: 'ba', reverse: true, limit: 1 }), ['bb']);
  t.deepEqual(await ks({ end: 'b' }), ['a']);
  t.deepEqual(await ks({ start: 'z' }), []);
  t.deepEqual(await ks({ reverse: true }), [...keys].reverse());
  const first = await kv.page({ reverse: true, limit: 3 });
  t.deepEqual(first.entries.map(([k]) => k), ['e', 'd', 'c']);
  const second = await kv.page({ reverse: true, limit: 3, after: first.next! });
  t.deepEqual(second.entries.map(([k]) => k), ['bb', 'ba', 'b']);
  await t.throwsAsync(kv.entries({ reverse: 'yes' as never }), { instanceOf: TypeError });
  await kv.close();
});

test('range reads agree with a sorted filter for any keys and bounds, indexed or not (fast-check)', (t) => {
  const key = fc.string({ unit: fc.constantFrom('a', 'b', 'c', '\uffff', 'é'), maxLength: 4 });
  fc.assert(
    fc.property(fc.uniqueArray(key, { maxLength: 60 }), fc.option(key), fc.option(key), fc.option(key), fc.option(key), fc.boolean(), fc.boolean(), (keys, prefix, start, end, after, reverse, big) => {
      const s = new ExpiringMap<number>();
      keys.forEach((k, i) => s.set(k, i));
      if (big) s.keysInOrder().next(); // build the index (a ShardedMap path) vs a plain Map sort
      const range = { ...(prefix === null ? {} : { prefix }), ...(start === null ? {} : { start }), ...(end === null ? {} : { end }), ...(after === null ? {} : { after }), ...(reverse ? { reverse } : {}) };
      const want = [...keys]
        .filter((k) => (prefix === null || k.startsWith(prefix)) && (start === null || k >= start) && (end === null || k < end) && (after === null || (reverse ? k < after : k > after)))
        .sort();
      if (reverse) want.reverse();
      const got = kvStepWithExpiry(validateKvInput({ op: 'entries', keysOnly: true, ...range }), s)[1];
      t.deepEqual(got, want);
      const plain = new Map(keys.map((k, i) => [k, i]));
      t.deepEqual(kvStepWithExpiry(validateKvInput({ op: 'entries', keysOnly: true, ...range }), plain as never)[1], want);
    }),
    { numRuns: 300 },
  );
});

test('idempotency keys on KV writes: a retry gets the first reply and is not applied again, even with ttlMs', async (t) => {
  const kv = await openKV<number>(tempDb(t));
  await kv.set('n', 1);
  t.true(await kv.compareAndSet('n', 1, 2, { idempotencyKey: 'cas-1' }));
  await kv.set('n', 1); // someone sets it back
  t.true(await kv.compareAndSet('n', 1, 2, { idempotencyKey: 'cas-1' }), 'the retry answers the first reply');
  t.is(await kv.get('n'), 1, 'and is not applied again');
  await kv.set('t', 5, { ttlMs: 60_000, idempotencyKey: 'set-t' });
  await kv.delete('t');
  await sleep(5);
  await kv.set('t', 5, { ttlMs: 60_000, idempotencyKey: 'set-t' }); // stamped with a later time: still the same request
  t.false(await kv.has('t'), 'the retried set was not applied again');
  await kv.batch([{ op: 'set', key: 'b1', value: 1 }], { idempotencyKey: 'batch-1' });
  await kv.delete('b1');
  await kv.batch([{ op: 'set', key: 'b1', value: 1 }], { idempotencyKey: 'batch-1' });
  t.false(await kv.has('b1'));
  t.true(await kv.setIfAbsent('s', 1, { idempotencyKey: 'sia' }));
  await kv.delete('s');
  t.true(await kv.setIfAbsent('s', 1, { idempotencyKey: 'sia' }));
  t.false(await kv.has('s'));
  t.true(await kv.delete('n', { idempotencyKey: 'del-n' }));
  await kv.set('n', 3);
  t.true(await kv.delete('n', { idempotencyKey: 'del-n' }), 'the first reply, not a second delete');
  t.is(await kv.get('n'), 3);
  await t.throwsAsync(kv.set('n', 4, { idempotencyKey: 'del-n' }), { instanceOf: IdempotencyKeyReusedError });
  t.is(await kv.get('n'), 3);
  await kv.close();
});

/** A model of the KV store with simulated time: key -> value and expiry. */
type Model = Map<string, { value: number; at: number | undefined }>;
const liveIn = (m: Model, k: string, now: number) => {
  const e = m.get(k);
  return e !== undefined && (e.at === undefined || e.at > now);
};

test('model: random set/delete/batch/CAS/setIfAbsent/ttl/expire/persist/removal with simulated time agree with a Map model (fast-check)', (t) => {
  const key = fc.constantFrom('a', 'b', 'c', 'd');
  const ttl = fc.option(fc.integer({ min: 1, max: 50 }));
  const op = fc.oneof(
    fc.record({ op: fc.constant('set' as const), key, value: fc.integer({ min: 0, max: 9 }), ttl }),
    fc.record({ op: fc.constant('delete' as const), key }),
    fc.record({ op: fc.constant('cas' as const), key, expected: fc.option(fc.integer({ min: 0, max: 9 })), value: fc.integer({ min: 0, max: 9 }) }),
    fc.record({ op: fc.constant('setIfAbsent' as const), key, value: fc.integer({ min: 0, max: 9 }), ttl }),
    fc.record({ op: fc.constant('expire' as const), key, ttlMs: fc.integer({ min: 1, max: 50 }) }),
    fc.record({ op: fc.constant('persist' as const), key }),
    fc.record({ op: fc.constant('batch' as const), ops: fc.array(fc.record({ set: fc.boolean(), key, value: fc.integer({ min: 0, max: 9 }), ttl }), { maxLength: 4 }) }),
    fc.record({ op: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 40 }) }),
    fc.record({ op: fc.constant('remove' as const) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      let now = 1_000_000;
      const state = new ExpiringMap<unknown>();
      const model: Model = new Map();
      const run = (input: Record<string, unknown>): unknown => {
        const stamped = stampKvInput(validateKvInput(input), () => now);
        // The log's view: what replay will step is the CBOR round trip of the stamped input.
        return kvStepWithExpiry(cbor.decode(cbor.encode(stamped)) as KvInput, state)[1];
      };
      const setModel = (k: string, value: number, ttlMs: number | null) => model.set(k, { value, at: ttlMs === null ? undefined : now + ttlMs });
      for (const o of ops) {
        switch (o.op) {
          case 'set':
            run({ op: 'store', key: o.key, value: o.value, ...(o.ttl === null ? {} : { ttlMs: o.ttl }) });
            setModel(o.key, o.value, o.ttl);
            break;
          case 'delete':
            t.is(run({ op: 'delete', key: o.key }), liveIn(model, o.key, now));
            model.delete(o.key);
            break;
          case 'cas': {
            const current = liveIn(model, o.key, now) ? model.get(o.key)!.value : undefined;
            const match = current === (o.expected ?? undefined);
            t.is(run({ op: 'compareAndSet', key: o.key, ...(o.expected === null ? {} : { expected: o.expected }), value: o.value }), match);
            if (match) setModel(o.key, o.value, null);
            break;
          }
          case 'setIfAbsent': {
            const absent = !liveIn(model, o.key, now);
            t.deepEqual(run({ op: 'storeIf', key: o.key, value: o.value, when: 'absent', ...(o.ttl === null ? {} : { ttlMs: o.ttl }) }), { stored: absent });
            if (absent) setModel(o.key, o.value, o.ttl);
            break;
          }
          case 'expire': {
            const live = liveIn(model, o.key, now);
            t.is(run({ op: 'expire', key: o.key, ttlMs: o.ttlMs }), live);
            if (live) model.get(o.key)!.at = now + o.ttlMs;
            break;
          }
          case 'persist': {
            const had = liveIn(model, o.key, now) && model.get(o.key)!.at !== undefined;
            t.is(run({ op: 'persist', key: o.key }), had);
            if (had) model.get(o.key)!.at = undefined;
            break;
          }
          case 'batch':
            run({ op: 'batch', ops: o.ops.map((b) => (b.set ? { op: 'set', key: b.key, value: b.value, ...(b.ttl === null ? {} : { ttlMs: b.ttl }) } : { op: 'delete', key: b.key })) });
            for (const b of o.ops) {
              if (b.set) setModel(b.key, b.value, b.ttl);
              else model.delete(b.key);
            }
            break;
          case 'tick':
            now += o.ms;
            break;
          case 'remove':
            // What the timer delivers: removes what is due by then (the model just forgets it).
            kvStepWithExpiry({ op: 'removeExpired', upTo: now }, state);
            for (const [k] of model) if (!liveIn(model, k, now)) model.delete(k);
            break;
        }
        // Every read agrees with the model at every moment.
        const live = [...model.keys()].filter((k) => liveIn(model, k, now)).sort();
        t.deepEqual(run({ op: 'entries', keysOnly: true }), live);
        t.is(run({ op: 'size' }), live.length);
        for (const k of ['a', 'b', 'c', 'd']) {
          const e = model.get(k);
          const want = !liveIn(model, k, now) ? -2 : e!.at === undefined ? -1 : e!.at - now;
          t.is(run({ op: 'ttl', key: k }), want, k);
          t.is(run({ op: 'lookup', key: k }), liveIn(model, k, now) ? e!.value : null);
        }
      }
      // The state survives a snapshot round trip (expiry times included).
      const copy = cbor.decode(cbor.encode(state)) as ExpiringMap<unknown>;
      t.true(copy instanceof ExpiringMap);
      t.deepEqual([...copy.expiries].sort(), [...state.expiries].sort());
    }),
    { numRuns: 200 },
  );
});

test('ExpiringMap: CBOR round trip, sliced snapshot encoding, malformed parts refused', (t) => {
  const m = new ExpiringMap<number>(null, 8);
  for (let i = 0; i < 500; i++) m.set(`k${i}`, i);
  for (let i = 0; i < 500; i += 3) m.setExpiry(`k${i}`, 1000 + i);
  const one = cbor.decode(cbor.encode(m)) as ExpiringMap<number>;
  const sliced = cbor.decode(Buffer.concat([...encodeStateSlices(m, 16)])) as ExpiringMap<number>;
  for (const back of [one, sliced]) {
    t.true(back instanceof ExpiringMap);
    t.is(back.size, 500);
    t.is(back.shards.length, 8);
    t.is(back.expiresAt('k3'), 1003);
    t.is(back.expiresAt('k1'), undefined);
    t.is(back.soonestExpiry(), 1000);
    t.deepEqual(back.due(1006, 10), ['k0', 'k3', 'k6']);
    t.is(back.expiredCount(1006), 3);
  }
  const plain = cbor.decode(cbor.encode(new ShardedMap([['a', 1]])));
  t.false(plain instanceof ExpiringMap, 'a ShardedMap stays a ShardedMap');
  t.throws(() => ExpiringMap.fromParts([new Map([['a', 1]])], new Map([['b', 5]])), { instanceOf: TypeError, message: /not in the map/ });
  t.throws(() => ExpiringMap.fromParts([new Map([['a', 1]])], new Map([['a', -5]])), { instanceOf: TypeError });
  t.throws(() => m.setExpiry('nope', 5), { instanceOf: TypeError });
});

test('a version-2 KV snapshot (ShardedMap) is migrated to version 3 (ExpiringMap) on open, then TTLs work', async (t) => {
  const path = tempDb(t);
  // Version 2 of the KV machine: a ShardedMap state, no expiry.
  const v2 = defineMachine<ShardedMap<unknown>, { key: string; value: unknown }, null>({ init: () => new ShardedMap(), step: (i, s) => (s.set(i.key, i.value), [s, null]), version: 2 });
  const old = await startApplication(supervisor('one_for_one', [worker(KV_MACHINE, v2)], { name: 'kv_root' }), { db: path, logger: false });
  await old.call(KV_MACHINE, { key: 'a', value: 1 });
  await old.call(KV_MACHINE, { key: 'b', value: 2 });
  await old.stop();
  const kv = await openKV<number>(path);
  t.deepEqual(await kv.entries(), [['a', 1], ['b', 2]]);
  await kv.set('c', 3, { ttlMs: 60_000 });
  t.true((await kv.ttl('c'))! > 0);
  t.is(await kv.ttl('a'), null);
  await kv.close();
  const db = new Database(path, { readonly: true });
  t.is(db.prepare(`SELECT state_version FROM snapshot_list WHERE machine = ? ORDER BY seq DESC LIMIT 1`).pluck().get(KV_MACHINE), KV_STATE_VERSION);
  db.close();
  const again = await openKV<number>(path);
  t.true((await again.ttl('c'))! > 0, 'the expiry survives the version-3 snapshot');
  await again.close();
});

test('the CLI reads a KV database whose log holds removals of expired keys (not taken for a foreign database)', async (t) => {
  const path = tempDb(t);
  const app = await startApplication(rawTree(), { db: path, logger: false, snapshot: { every: 1_000_000 } });
  await app.call(KV_MACHINE, { op: 'store', key: 'x', value: 1, ttlMs: 1 });
  await app.call(KV_MACHINE, { op: 'store', key: 'y', value: 2 });
  for (let i = 0; i < 100 && (await app.call(KV_MACHINE, { op: 'has', key: 'x', now: 0 })); i++) await sleep(20);
  await app.stop();
  const { runCli } = await import('./helpers/cli.js');
  const r = await runCli(['log', KV_MACHINE, '--db', path]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /removeExpired/);
  const inspect = await runCli(['inspect', KV_MACHINE, '--db', path, '--json']);
  t.is(inspect.code, 0, inspect.stderr);
  t.regex(inspect.stdout, /"y"/);
  t.notRegex(inspect.stdout, /"x"/);
});
