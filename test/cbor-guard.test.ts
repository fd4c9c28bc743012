import test from 'ava';
import { Encoder, Tag } from 'cbor-x';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { startApplication } from '../src/engine/application.js';
import { MAX_BIGNUM_BYTES, MAX_NESTING, assertNoAmplifyingTags } from '../src/encoding/cbor-guard.js';
import { defineMachine } from '../src/model/machine.js';
import { cborCodec } from '../src/model/codec.js';
import { cbor } from '../src/encoding/cbor.js';
import { DecodeError } from '../src/errors.js';
import { kvMachine } from '../src/kv/kv-machine.js';
import { ShardedMap } from '../src/encoding/sharded-map.js';
import { supervisor, worker } from '../src/model/tree.js';

const codec = cborCodec();

/** {op: 'store', key: 'k', value: [shareable(big), sharedref(0) x n]}: small on the wire, huge once re-encoded. */
function sharedReferences(n: number, size: number): Uint8Array {
  const head = Buffer.from(cbor.encode({ op: 'store', key: 'k' }));
  const headLength = head[0] === 0xb9 ? 3 : 1; // cbor-x writes object maps with a 16-bit length
  return Buffer.concat([
    Uint8Array.of(0xa3),
    head.subarray(headLength),
    cbor.encode('value'),
    Uint8Array.of(0x99, (n + 1) >> 8, (n + 1) & 0xff),
    Uint8Array.of(0xd8, 0x1c),
    cbor.encode('x'.repeat(size)),
    Buffer.concat(Array.from({ length: n }, () => Uint8Array.of(0xd8, 0x1d, 0x00))),
  ]);
}

test('value sharing (tags 28/29) is refused before decoding: no amplified log entry, state untouched', async (t) => {
  const app = await startApplication(supervisor('one_for_one', [worker('kv', kvMachine({ deliberateCrash: true }))]), { db: ':memory:', logger: false });
  try {
    const bytes = sharedReferences(2000, 10_000); // ~16 KB on the wire, ~20 MB re-encoded
    t.true(bytes.byteLength < 20_000);
    await t.throwsAsync(app.callBytes('kv', bytes), { instanceOf: DecodeError, message: /tag 28/ });
    t.is(app.metrics.loggedRequests, 0);
    t.is(await app.call('kv', { op: 'size' }), 0);
  } finally {
    await app.stop();
  }
});

test('records and packed values from other cbor-x configurations are refused; bundled strings pass', (t) => {
  const rows = Array.from({ length: 50 }, (_, i) => ({ aVeryLongPropertyNameThatRecordsWriteOnlyOnce: i, other: 'x' }));
  const input = { op: 'store', key: 'k', value: rows.map((r) => ({ ...r, other: `${r.other}${'y'.repeat(20)}` })) };
  for (const [name, options] of [
    ['records', { useRecords: true }],
    ['packed', { pack: true, useRecords: false }],
  ] as const) {
    const bytes = new Encoder(options as ConstructorParameters<typeof Encoder>[0]).encode(input);
    t.throws(() => codec.decode(bytes), { instanceOf: DecodeError }, name);
  }
  // Bundled strings only move string bytes into one place: no amplification, accepted.
  t.deepEqual(codec.decode(new Encoder({ bundleStrings: true, useRecords: false }).encode(input)), input);
  // References without a table or a definition decode as inert tags and pass.
  t.notThrows(() => codec.decode(Buffer.from('c601', 'hex')));
  t.notThrows(() => codec.decode(Buffer.from('d9e00001', 'hex')));
});

test('everything this library encodes passes the guard, including indefinite lengths and tags', (t) => {
  const values = fc.oneof(
    fc.anything({ withBigInt: true, withDate: true, withMap: true, withSet: true, withTypedArray: true, withNullPrototype: false, withObjectString: false, withSparseArray: false, maxDepth: 4 }),
    fc.dictionary(fc.string(), fc.integer()).map((o) => new ShardedMap(Object.entries(o), 4)),
  );
  fc.assert(
    fc.property(values, (v) => {
      let bytes: Uint8Array;
      try {
        bytes = cbor.encode(v);
      } catch {
        return; // not encodable at all: not the guard's business
      }
      assertNoAmplifyingTags(bytes);
    }),
    { numRuns: 1000 },
  );
  // Hand-written indefinite-length forms other encoders use.
  for (const hex of ['9f0102ff', 'bf616101ff', '5f42010243030405ff', '7f6161626263ff', 'c11a5f5e1000', 'd90103a1616101', '9f9f9fffffff', 'f97e00']) {
    t.notThrows(() => assertNoAmplifyingTags(Buffer.from(hex, 'hex')), hex);
  }
  // A refused tag nested deep inside indefinite containers is still found.
  t.throws(() => assertNoAmplifyingTags(Buffer.from('9f9fbf6161d81c01ffffff', 'hex')), { instanceOf: DecodeError });
  // Truncated or malformed bytes are left to the decoder.
  for (const hex of ['9b', 'bf', 'ff', '1c', '5affffffff']) t.notThrows(() => assertNoAmplifyingTags(Buffer.from(hex, 'hex')), hex);
});

test('bignums larger than MAX_BIGNUM_BYTES are refused before cbor-x spends quadratic time on them', (t) => {
  const bignum = (bytes: number): Uint8Array => Buffer.concat([Uint8Array.of(0xc2, 0x59, bytes >> 8, bytes & 0xff), Buffer.alloc(bytes, 0xab)]);
  t.throws(() => codec.decode(bignum(MAX_BIGNUM_BYTES + 1)), { instanceOf: DecodeError, message: /bignums/ });
  t.throws(() => codec.decode(Buffer.from('c3' + '6161', 'hex')), { instanceOf: DecodeError, message: /bignums/ }, 'content must be a byte string');
  t.is(typeof codec.decode(bignum(MAX_BIGNUM_BYTES)), 'bigint');
  const big = 2n ** 8000n + 12345n; // what this library encodes for a large bigint passes
  t.is(codec.decode(cbor.encode(big)), big);
  t.is(codec.decode(cbor.encode(-big)), -big);
});

test('tags count against the nesting limit: 1,530 nested tags (no arrays or maps) are refused on every path, so no accepted input can make a snapshot overflow', async (t) => {
  const nest = (d: number): unknown => {
    let v: unknown = 'leaf';
    for (let i = 0; i < d; i++) v = new Tag(v, 40000 + (i % 10));
    return v;
  };
  t.throws(() => assertNoAmplifyingTags(cbor.encode(nest(MAX_NESTING + 1))), { instanceOf: DecodeError, message: /arrays, maps and tags/ });
  t.notThrows(() => assertNoAmplifyingTags(cbor.encode(nest(MAX_NESTING - 1))));
  const db = join(mkdtempSync(join(tmpdir(), 'ssm-tags-')), 'tags.db');
  const keep = defineMachine<unknown[], unknown, null>({ init: () => [], step: (input, state) => [[...state, [[[input]]]], null] });
  const app = await startApplication(supervisor('one_for_one', [worker('m', keep)]), { db, logger: false });
  t.teardown(() => app.stop());
  await t.throwsAsync(app.call('m', nest(1530)), { instanceOf: DecodeError });
  await t.throwsAsync(app.callBytes('m', cbor.encode(nest(600))), { instanceOf: DecodeError });
  await app.call('m', nest(MAX_NESTING - 8));
  t.true((await app.checkpoint('m')).length === 1, 'what was accepted is snapshottable');
});
