import test from 'ava';
import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { startApplication } from '../src/engine/application.js';
import { decodeCbor, cbor } from '../src/encoding/cbor.js';
import { EncodeError } from '../src/errors.js';
import { kvMachine } from '../src/kv/kv-machine.js';
import { MAX_PLAIN_ENTRIES, NEEDS_CBOR, plainCopy } from '../src/encoding/input-copy.js';
import { ShardedMap } from '../src/encoding/sharded-map.js';
import { supervisor, worker } from '../src/model/tree.js';

/** Key order, recursively: isDeepStrictEqual ignores it, replay does not. */
function shape(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(shape);
  if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) return Object.keys(v).map((k) => [k, shape((v as Record<string, unknown>)[k])]);
  return typeof v;
}

/** Objects reachable from `v`. */
function objects(v: unknown, out = new Set<object>()): Set<object> {
  if (v && typeof v === 'object' && !out.has(v)) {
    out.add(v);
    for (const x of Object.values(v)) objects(x, out);
  }
  return out;
}

const nasty = fc.oneof(
  fc.constantFrom(-0, 0, Number.NaN, Infinity, -Infinity, 2 ** 53, -(2 ** 53), 2 ** 60, 1e300, 5e-324, 0.1, -1.5, 2 ** 32, -(2 ** 32) - 1),
  fc.constantFrom('\uD800', 'a\uDC00b', '😀', '', '__proto__', 'constructor', 'hasOwnProperty'),
  fc.constantFrom(null, undefined, true, false),
  fc.constantFrom(JSON.parse('{"__proto__": 1}'), Object.create(null), { hasOwnProperty: 1 }, [1, , 3], Object.assign([1], { extra: true }), new Date(5), new Map([[1, 2]]), new Set([1]), new Uint8Array([1]), Buffer.from([1, 2, 3]), Buffer.alloc(0), Buffer.from('abcdef').subarray(2, 4), Object.assign(Buffer.from('x'), { extra: 1 }), 5n, new ShardedMap([['a', 1]])),
);
const value = fc.letrec((tie) => ({
  any: fc.oneof({ depthSize: 'small' }, fc.anything({ withBigInt: true, withDate: true, withMap: true, withSet: true, withTypedArray: true, withNullPrototype: true, withSparseArray: true, withBoxedValues: true, maxDepth: 3 }), nasty, tie('obj'), tie('arr')),
  obj: fc.dictionary(fc.oneof(fc.string({ unit: 'binary' }), fc.constantFrom('__proto__', '1', '0', 'constructor', 'toJSON')), tie('any'), { maxKeys: 5 }),
  arr: fc.array(tie('any'), { maxLength: 5 }),
})).any;

test('plainCopy equals the CBOR round trip exactly (values, types, key order), or defers to it', (t) => {
  let copied = 0;
  fc.assert(
    fc.property(value, (x) => {
      const c = plainCopy(x);
      if (c === NEEDS_CBOR) return true;
      copied++;
      const ofCopy = decodeCbor(cbor.encode(c));
      const ofOriginal = decodeCbor(cbor.encode(x));
      // What the step gets equals what replay decodes from the log (the copy's encoding) ...
      if (!isDeepStrictEqual(c, ofCopy) || !isDeepStrictEqual(shape(c), shape(ofCopy))) return false;
      // ... and what the round trip of the caller's own value would have given.
      if (!isDeepStrictEqual(c, ofOriginal) || !isDeepStrictEqual(shape(c), shape(ofOriginal))) return false;
      // It shares no object with the caller's value, so later mutations cannot reach the state.
      const mine = objects(x);
      for (const o of objects(c)) if (mine.has(o)) return false;
      return true;
    }),
    { numRuns: 20_000 },
  );
  t.true(copied > 2_000, `${copied} values took the direct copy`);
});

test('what plainCopy refuses: everything CBOR would change or cannot carry as plain data', (t) => {
  const refused: [string, unknown][] = [
    ['a __proto__ key', JSON.parse('{"__proto__": 1}')],
    ['a lone surrogate', { a: '\uD800' }],
    ['a bigint', [5n]],
    ['a Date', { d: new Date(1) }],
    ['a Map', new Map()],
    ['a null-prototype object', Object.create(null)],
    ['a non-callable hasOwnProperty', { hasOwnProperty: 1 }],
    ['a function', [() => 1]],
    ['a symbol', { s: Symbol('x') }],
    ['a class instance', new (class A {})()],
  ];
  for (const [what, x] of refused) t.is(plainCopy(x), NEEDS_CBOR, what);
  let deep: unknown = 1;
  for (let i = 0; i < 100; i++) deep = [deep];
  t.is(plainCopy(deep), NEEDS_CBOR, 'deep nesting takes the round trip (which reports it)');
  const cycle: Record<string, unknown> = {};
  cycle['self'] = cycle;
  t.is(plainCopy(cycle), NEEDS_CBOR);
  t.is(plainCopy(-0), 0);
  t.deepEqual(plainCopy([1, , 3]), [1, undefined, 3]);
});

test('a caller mutating its input after call cannot reach the state, on both paths', async (t) => {
  const app = await startApplication(supervisor('one_for_one', [worker('kv', kvMachine({ deliberateCrash: true }))]), { db: ':memory:', logger: false });
  try {
    const plain = { nested: { n: 1 } };
    const rich = { nested: { n: 1 }, when: new Date(0) }; // takes the CBOR round trip
    const p1 = app.call('kv', { op: 'store', key: 'plain', value: plain });
    const p2 = app.call('kv', { op: 'store', key: 'rich', value: rich });
    plain.nested.n = 2; // before the step runs
    rich.nested.n = 2;
    await Promise.all([p1, p2]);
    plain.nested.n = 3; // after
    rich.nested.n = 3;
    t.deepEqual(await app.call('kv', { op: 'lookup', key: 'plain' }), { nested: { n: 2 } });
    t.deepEqual(await app.call('kv', { op: 'lookup', key: 'rich' }), { nested: { n: 2 }, when: new Date(0) });
  } finally {
    await app.stop();
  }
});

test('arrays and objects beyond what the decoder accepts take the round trip; so does a runtime whose constructors were reassigned', (t) => {
  t.is(plainCopy({ a: new Array(MAX_PLAIN_ENTRIES + 1) }), NEEDS_CBOR);
  t.not(plainCopy([new Array(1000)]), NEEDS_CBOR);
  const saved = Array.prototype.constructor;
  try {
    // The encoder would write such arrays as maps; the copy must not claim otherwise.
    Object.defineProperty(Array.prototype, 'constructor', { value: Object, writable: true, configurable: true, enumerable: false });
    t.is(plainCopy({ a: [1] }), NEEDS_CBOR);
  } finally {
    Object.defineProperty(Array.prototype, 'constructor', { value: saved, writable: true, configurable: true, enumerable: false });
  }
  t.not(plainCopy({ a: [1] }), NEEDS_CBOR);
});

// Serial: encoding 112M holes keeps the event loop busy for seconds, which would time out the
// calls of tests running alongside it.
test.serial('an input whose encoding the decoder refuses is an EncodeError, never logged; the machine keeps serving', async (t) => {
  const app = await startApplication(supervisor('one_for_one', [worker('kv', kvMachine({ deliberateCrash: true }))]), { db: ':memory:', logger: false });
  try {
    // A Date sends it down the round trip; 112,810,001 holes exceed cbor-x's decode limit.
    const huge = { op: 'store', key: 'huge', value: [new Date(0), new Array(112_810_001)] };
    const ok = app.call('kv', { op: 'store', key: 'fine', value: 1 });
    await t.throwsAsync(app.call('kv', huge), { instanceOf: EncodeError, message: /does not survive the CBOR round trip/ });
    await ok;
    t.is(app.metrics.loggedRequests, 1, 'only the good request of the batch was logged');
    t.is(await app.call('kv', { op: 'lookup', key: 'fine' }), 1);
    t.is(await app.call('kv', { op: 'has', key: 'huge' }), false);
  } finally {
    await app.stop();
  }
});
