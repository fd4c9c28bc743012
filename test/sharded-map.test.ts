import test from 'ava';
import fc from 'fast-check';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApplication } from '../src/engine/application.js';
import { decodeCbor, cbor } from '../src/encoding/cbor.js';
import { DecodeError } from '../src/errors.js';
import { KV_STATE_VERSION, kvMachine, migrateKvState } from '../src/kv/kv-machine.js';
import { openKV } from '../src/kv/open-kv.js';
import { formatEvent } from '../src/engine/logger.js';
import { SHARDED_MAP_TAG, ShardedMap, hashKey } from '../src/encoding/sharded-map.js';
import { encodeStateSlices } from '../src/encoding/snapshot-encoding.js';
import { Store } from '../src/storage/store.js';
import { supervisor, worker } from '../src/model/tree.js';

const tmp = (name: string): string => join(mkdtempSync(join(tmpdir(), 'ssm-sharded-')), name);

const sorted = (m: Iterable<[string, unknown]>): [string, unknown][] => [...m].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));

type Op = { op: 'set'; key: string; value: number } | { op: 'delete'; key: string } | { op: 'get'; key: string } | { op: 'clear' };
const key = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('', 'a', 'k1', '__proto__', 'é€😀'));
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('set' as const), key, value: fc.integer() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), key }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('get' as const), key }) },
  { weight: 1, arbitrary: fc.constant({ op: 'clear' as const }) },
);

test('behaves like a Map<string, V> for any sequence of operations and any shard count', (t) => {
  fc.assert(
    fc.property(fc.constantFrom(1, 2, 8, 256), fc.array(op, { maxLength: 120 }), (shards, ops) => {
      const model = new Map<string, number>();
      const m = new ShardedMap<number>(null, shards);
      for (const o of ops) {
        if (o.op === 'set') t.is(m.set(o.key, o.value), m), model.set(o.key, o.value);
        else if (o.op === 'delete') t.is(m.delete(o.key), model.delete(o.key));
        else if (o.op === 'get') (t.is(m.get(o.key), model.get(o.key)), t.is(m.has(o.key), model.has(o.key)));
        else (m.clear(), model.clear());
        t.is(m.size, model.size);
      }
      t.deepEqual(sorted(m), sorted(model));
      t.deepEqual([...m.keys()].sort(), [...model.keys()].sort());
      t.deepEqual([...m.values()].sort(), [...model.values()].sort());
      const seen: [string, number][] = [];
      m.forEach((v, k, self) => (t.is(self, m), seen.push([k, v])));
      t.deepEqual(sorted(seen), sorted(model));
      t.is(m.shards.length, shards);
    }),
    { numRuns: 300 },
  );
});

test('round-trips through CBOR as its own tag, alone and nested, keeping its shard count', (t) => {
  const m = new ShardedMap<unknown>([['a', 1], ['b', new Map([['inner', new Date(5)]])], ['c', new Set([1n])]], 16);
  const bytes = cbor.encode({ state: m, list: [m] });
  t.true(Buffer.from(bytes).includes(Buffer.from([0xda, 0x00, 0x53, 0x53, 0x4d])), 'tag 0x53534d ("SSM") is in the bytes');
  const back = decodeCbor(bytes) as { state: ShardedMap; list: ShardedMap[] };
  t.true(back.state instanceof ShardedMap);
  t.true(back.list[0] instanceof ShardedMap);
  t.is(back.state.shards.length, 16);
  t.deepEqual(sorted(back.state), sorted(m));
  t.is(SHARDED_MAP_TAG, 0x53534d);
  t.true(decodeCbor(cbor.encode(new ShardedMap())) instanceof ShardedMap);
});

test('the key hash is part of the persisted layout and must not change without a migration', (t) => {
  // Snapshots store keys in the shard hashKey selects; a different hash strands them.
  t.deepEqual(
    ['', 'a', 'k0', 'k999999', 'é€😀'].map(hashKey),
    [2872998923, 444641715, 1658131891, 3469914437, 1546679087],
  );
});

test('malformed ShardedMap bytes are refused with DecodeError, not half-built', (t) => {
  const tagged = (shards: unknown): Uint8Array => {
    const inner = cbor.encode(shards);
    return Buffer.concat([Uint8Array.of(0xda, 0x00, 0x53, 0x53, 0x4d), inner]);
  };
  const misplaced = [new Map(), new Map()];
  // Put a key in the shard its hash does not select.
  const k = 'k0';
  misplaced[(hashKey(k) & 1) ^ 1]!.set(k, 1);
  for (const [what, bytes, message] of [
    ['not an array', tagged({ a: 1 }), /array of shards/],
    ['3 shards', tagged([new Map(), new Map(), new Map()]), /power of two/],
    ['no shards', tagged([]), /power of two/],
    ['a shard that is not a Map', tagged([new Map(), [1, 2]]), /shard 1 is not a Map/],
    ['a non-string key', tagged([new Map([[1, 'x']])]), /non-string key/],
    ['a key in the wrong shard', tagged(misplaced), /not where its hash puts it/],
  ] as const) {
    const err = t.throws(() => decodeCbor(bytes), { instanceOf: DecodeError }, what);
    t.regex(err!.message, message, what);
  }
});

test('constructor refuses shard counts that are not a power of two in range', (t) => {
  for (const n of [0, 3, 100, 131_072, 1.5, Number.NaN]) t.throws(() => new ShardedMap(null, n), { instanceOf: RangeError }, String(n));
  t.throws(() => new ShardedMap().set(1 as unknown as string, 1), { instanceOf: TypeError });
});

test('sliced snapshot encoding of a ShardedMap decodes to the same map, in bounded slices', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 1, max: 40 }), fc.constantFrom(1, 4, 16), (size, slice, shards) => {
      const m = new ShardedMap<unknown>(Array.from({ length: size }, (_, i) => [`k${i}`, { n: i, when: new Date(i) }]), shards);
      const chunks = [...encodeStateSlices(m, slice)];
      const back = decodeCbor(Buffer.concat(chunks)) as ShardedMap;
      t.true(back instanceof ShardedMap);
      t.is(back.shards.length, shards);
      t.deepEqual(sorted(back), sorted(m));
      if (size <= slice) t.is(chunks.length, 1);
      else t.true(chunks.length > 2, 'more than a head and one body');
    }),
    { numRuns: 200 },
  );
});

test('KV state version 1 (a plain Map) is migrated to a ShardedMap on load, with every entry', async (t) => {
  const db = tmp('v1.db');
  const store = Store.open(db, { durability: 'normal' });
  store.registerMachines([{ name: 'kv1', version: 1 }]);
  const v1 = new Map<string, unknown>(Array.from({ length: 1000 }, (_, i) => [`k${i}`, { i }]));
  store.writeSnapshot('kv1', 1000, 1, cbor.encode(v1), 'checkpoint', 2, false);
  store.appendBatch([{ machine: 'kv1', firstSeq: 1001, lastSeq: 1001, count: 1, requests: cbor.encode({ op: 'store', key: 'after', value: 'x' }) }]);
  store.close();

  const lines: string[] = [];
  const app = await startApplication(supervisor('one_for_one', [worker('kv1', kvMachine({ deliberateCrash: true }))]), { db, logger: (e) => lines.push(formatEvent(e)) });
  t.regex(lines.join('\n'), /kv1 started \(recovered from snapshot @1000, migrated from state version 1 \+ 1 replayed, seq 1001/);
  t.is(await app.call('kv1', { op: 'size' }), 1001);
  t.deepEqual(await app.call('kv1', { op: 'lookup', key: 'k999' }), { i: 999 });
  t.is(await app.call('kv1', { op: 'lookup', key: 'after' }), 'x');
  await app.stop();

  const reopened = Store.open(db, { durability: 'normal' });
  const latest = reopened.snapshots('kv1')[0]!;
  t.is(latest.stateVersion, KV_STATE_VERSION, 'the stop snapshot is written at the new version');
  t.true(decodeCbor(reopened.snapshotState(latest.id)!) instanceof ShardedMap);
  reopened.close();

  t.throws(() => migrateKvState(new Map([[1, 'x']])), { instanceOf: TypeError });
  t.deepEqual(sorted(migrateKvState({ a: 1 })), [['a', 1]]);
});

test('openKV keeps working across a restart on the sharded state', async (t) => {
  const path = tmp('kv.db');
  let kv = await openKV(path);
  for (let i = 0; i < 500; i++) await kv.set(`k${i}`, i);
  await kv.delete('k7');
  await kv.close();
  kv = await openKV(path);
  t.is(await kv.size(), 499);
  t.is(await kv.get('k499'), 499);
  t.is(await kv.get('k7'), undefined);
  t.deepEqual((await kv.entries({ prefix: 'k1', limit: 3 })).map(([k]) => k), ['k1', 'k10', 'k100']);
  await kv.close();
});

test('keys CBOR cannot carry unchanged (lone surrogates) are refused, so no snapshot can strand them', (t) => {
  const m = new ShardedMap();
  const lone = '😀'.slice(0, 1);
  t.throws(() => m.set(lone, 1), { instanceOf: TypeError, message: /lone surrogates/ });
  t.throws(() => m.set(`a${'\uDC00'}b`, 1), { instanceOf: TypeError });
  t.is(m.size, 0);
  m.set('😀', 1); // a well-formed pair is fine
  const back = decodeCbor(cbor.encode(m)) as ShardedMap;
  t.is(back.get('😀'), 1);
});

test('forEach passes thisArg like Map.prototype.forEach', (t) => {
  const m = new ShardedMap<number>([['a', 1]]);
  const self = { seen: 0 };
  m.forEach(function (this: typeof self, v) {
    this.seen += v;
  }, self);
  t.is(self.seen, 1);
});
