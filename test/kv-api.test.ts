import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationStoppedError, DatabaseLockedError, PayloadTooLargeError, startApplication, supervisor, worker } from '../src/index.js';
import { InvalidKeyError, openKV, KV_MACHINE, DEFAULT_KV_PATH } from '../src/kv/open-kv.js';
import { kvMachine } from '../src/kv/kv-machine.js';

function tempDb(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ssm-kv-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'kv.db');
}

const values = (): Record<string, unknown> => ({
  object: { a: 1, nested: { b: [1, 2, { c: 'x' }] } },
  array: [1, 'two', null, true, 4.5],
  map: new Map<unknown, unknown>([['k', 1], [2, 'number key'], ['m', new Map([['inner', true]])]]),
  date: new Date('2024-02-29T12:34:56.789Z'),
  bytes: new Uint8Array([0, 1, 2, 254, 255]),
  bigint: 2n ** 80n + 7n,
  smallBigint: -5n,
  set: new Set(['a', 'b']),
  nullValue: null,
  string: 'héllo ☃ \u0000',
  number: -0.125,
  bool: false,
});

test('default path is storage/kv.db', (t) => {
  t.is(DEFAULT_KV_PATH, join('storage', 'kv.db'));
});

test('set/get/has/delete/size/entries, then reopen keeps every value type', async (t) => {
  const path = tempDb(t);
  const kv = await openKV(path);
  t.is(kv.path, path);
  t.is(await kv.size(), 0);
  t.is(await kv.get('missing'), undefined);
  t.false(await kv.has('missing'));
  const expected = values();
  for (const [k, v] of Object.entries(expected)) await kv.set(k, v);
  // The seed's deliberate crash key is an ordinary key here.
  await kv.set('crash', 'safe');
  t.is(await kv.get('crash'), 'safe');
  t.true(await kv.delete('crash'));
  t.false(await kv.delete('crash'));
  t.false(await kv.has('crash'));

  for (const [k, v] of Object.entries(expected)) t.deepEqual(await kv.get(k), v, k);
  t.is(await kv.get('nullValue'), null, 'a stored null is not a missing key');
  t.true(await kv.has('nullValue'));
  t.is(await kv.size(), Object.keys(expected).length);
  t.is(typeof (await kv.get('bigint')), 'bigint');
  t.true((await kv.get('date')) instanceof Date);
  t.true((await kv.get('bytes')) instanceof Uint8Array);
  t.true((await kv.get('map')) instanceof Map);
  await kv.close();

  const again = await openKV(path);
  t.is(await again.size(), Object.keys(expected).length);
  for (const [k, v] of Object.entries(expected)) t.deepEqual(await again.get(k), v, `${k} after reopen`);
  t.deepEqual((await again.entries()).map(([k]) => k), Object.keys(expected).sort());
  await again.close();
});

test('many writes, an overwrite and a delete survive close and reopen', async (t) => {
  const path = tempDb(t);
  const kv = await openKV<number>(path, { snapshot: { every: 1_000_000 } });
  for (let i = 0; i < 50; i++) await kv.set(`k${String(i).padStart(2, '0')}`, i);
  await Promise.all([kv.delete('k00'), kv.set('k01', 100)]);
  await kv.close();
  const again = await openKV<number>(path);
  t.is(await again.size(), 49);
  t.is(await again.get('k01'), 100);
  t.is(await again.get('k00'), undefined);
  t.is(await again.get('k49'), 49);
  await again.close();
});

test('entries honours prefix and limit, in key order', async (t) => {
  const kv = await openKV<string>(tempDb(t));
  t.teardown(() => kv.close());
  for (const k of ['b/2', 'a/1', 'b/1', 'b/3', 'c']) await kv.set(k, k.toUpperCase());
  t.deepEqual(await kv.entries(), [['a/1', 'A/1'], ['b/1', 'B/1'], ['b/2', 'B/2'], ['b/3', 'B/3'], ['c', 'C']]);
  t.deepEqual(await kv.entries({ prefix: 'b/' }), [['b/1', 'B/1'], ['b/2', 'B/2'], ['b/3', 'B/3']]);
  t.deepEqual(await kv.entries({ prefix: 'b/', limit: 2 }), [['b/1', 'B/1'], ['b/2', 'B/2']]);
  t.deepEqual(await kv.entries({ limit: 0 }), []);
  t.deepEqual(await kv.entries({ prefix: 'zzz' }), []);
  await t.throwsAsync(kv.entries({ limit: -1 }), { instanceOf: RangeError });
  await t.throwsAsync(kv.entries({ limit: 1.5 }), { instanceOf: RangeError });
  await t.throwsAsync(kv.entries({ prefix: 3 as unknown as string }), { instanceOf: TypeError });
});

test('values are copied: mutating after set or get does not change the store', async (t) => {
  const kv = await openKV<{ n: number; list: number[] }>(tempDb(t));
  t.teardown(() => kv.close());
  const v = { n: 1, list: [1] };
  await kv.set('x', v);
  v.n = 2;
  v.list.push(2);
  const got = (await kv.get('x'))!;
  t.deepEqual(got, { n: 1, list: [1] });
  got.n = 3;
  t.deepEqual(await kv.get('x'), { n: 1, list: [1] });
});

test('bad keys reject with InvalidKeyError before reaching the engine', async (t) => {
  const kv = await openKV(tempDb(t));
  t.teardown(() => kv.close());
  const bad = [1, null, undefined, {}, ['a'], Symbol('s'), 'k'.repeat(4097)] as unknown as string[];
  for (const key of bad) {
    for (const op of [() => kv.get(key), () => kv.set(key, 1), () => kv.delete(key), () => kv.has(key)]) {
      const err = await t.throwsAsync(op(), { instanceOf: InvalidKeyError });
      t.is(err?.code, 'INVALID_KEY');
    }
  }
  await kv.set('k'.repeat(4096), 'longest allowed');
  t.is(await kv.get('k'.repeat(4096)), 'longest allowed');
  t.is(await kv.size(), 1);
});

test('a value larger than maxPayloadBytes is refused and not stored', async (t) => {
  const kv = await openKV(tempDb(t), { maxPayloadBytes: 1024 });
  t.teardown(() => kv.close());
  await t.throwsAsync(kv.set('big', new Uint8Array(2048)), { instanceOf: PayloadTooLargeError });
  t.false(await kv.has('big'));
});

test('writes and reads after close reject with ApplicationStoppedError; close is idempotent', async (t) => {
  const kv = await openKV(tempDb(t));
  await kv.set('a', 1);
  await kv.close();
  await kv.close();
  await t.throwsAsync(kv.set('b', 2), { instanceOf: ApplicationStoppedError });
  await t.throwsAsync(kv.delete('a'), { instanceOf: ApplicationStoppedError });
  await t.throwsAsync(kv.get('a'), { instanceOf: ApplicationStoppedError });
});

test('concurrent writes all become durable and visible after reopen', async (t) => {
  const path = tempDb(t);
  const kv = await openKV<number>(path, { durability: 'normal' });
  await Promise.all(Array.from({ length: 200 }, (_, i) => kv.set(`k${i}`, i)));
  t.is(await kv.size(), 200);
  await kv.close();
  const again = await openKV<number>(path);
  t.is(await again.size(), 200);
  t.is(await again.get('k199'), 199);
  await again.close();
});

test('the same file cannot be opened twice at once', async (t) => {
  const path = tempDb(t);
  const kv = await openKV(path);
  t.teardown(() => kv.close());
  await t.throwsAsync(openKV(path), { instanceOf: DatabaseLockedError });
});

test('the store is readable by a plain kvMachine application (same log format)', async (t) => {
  const path = tempDb(t);
  const kv = await openKV(path, { snapshot: { every: 1_000_000 } });
  await kv.set('x', { deep: [1n] });
  await kv.close();
  const app = await startApplication(supervisor('one_for_one', [worker(KV_MACHINE, kvMachine({ deliberateCrash: true }))]), { db: path, logger: false });
  t.deepEqual(await app.call('kv', { op: 'lookup', key: 'x' }), { deep: [1n] });
  await app.stop();
});
