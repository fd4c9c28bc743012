/**
 * Hostile bytes and values straight into the application (in-process, so fast enough for
 * tens of thousands of cases in CI): random bytes and mutated valid CBOR to callBytes, checked
 * differentially against a model that decodes the same bytes independently; deep nesting, huge
 * declared lengths, `__proto__`/`constructor` keys, non-UTF-8 strings, oversized payloads.
 * Invariants: the process survives, every refusal is a typed SsmError, state changes exactly
 * as the model says (never for a refused input), nothing pollutes Object.prototype, and a
 * restart from disk reproduces the in-memory state (what was accepted is what was logged).
 */
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { startApplication, type App } from '../src/engine/application.js';
import { MAX_NESTING, assertNoAmplifyingTags } from '../src/encoding/cbor-guard.js';
import { decodeCbor, cbor } from '../src/encoding/cbor.js';
import { jsonCodec } from '../src/model/codec.js';
import { DecodeError, PayloadTooLargeError, SsmError } from '../src/errors.js';
import { kvMachine, validateKvInput, type KvTable } from '../src/kv/kv-machine.js';
import { kvEntries, tempDb } from './helpers/persistence-kv.js';
import { defineMachine } from '../src/model/machine.js';
import { supervisor, worker } from '../src/model/tree.js';
import { LONG, applyModel, errorCode, kvDigest, modelDigest, outcome } from './helpers/faults-util.js';

/** A KV state as a plain Map: kvStep works on any KvTable. */
type MapState = Map<string, unknown> & KvTable;

const MAX_PAYLOAD = 4096;
const RUNS = LONG ? 100_000 : 10_000;

/** kv1 speaks CBOR (the default codec); kvj is the same machine speaking JSON. */
function tree() {
  const kv = kvMachine({ deliberateCrash: true });
  return supervisor('one_for_one', [worker('kv1', kv), worker('kvj', defineMachine({ ...kv, codec: jsonCodec() }))], { intensity: 1000 });
}

async function start(db: string): Promise<App> {
  return startApplication(tree(), { db, durability: 'normal', logger: false, maxPayloadBytes: MAX_PAYLOAD, snapshot: { every: 2000 } });
}

function protoSnapshot(): string {
  return JSON.stringify([Object.getOwnPropertyNames(Object.prototype).sort(), Object.getOwnPropertyNames(Array.prototype).length, ({} as Record<string, unknown>)['polluted']]);
}

/** One differential step: what the model expects for `bytes`, checked against the app. */
async function check(t: ExecutionContext, app: App, model: MapState, codes: Map<string, number>, bytes: Uint8Array): Promise<boolean> {
  let expected: { kind: 'refused' } | { kind: 'crash' } | { kind: 'ok'; output: unknown };
  if (bytes.byteLength > MAX_PAYLOAD) expected = { kind: 'refused' };
  else {
    let input;
    try {
      // The wire rules: refused tags first (cbor-guard, tested on its own), then decode and validate.
      assertNoAmplifyingTags(bytes);
      input = validateKvInput(decodeCbor(bytes));
    } catch {
      input = null;
    }
    if (!input) expected = { kind: 'refused' };
    else if (input.op === 'lookup' && input.key === 'crash') expected = { kind: 'crash' };
    else {
      // Inputs the log cannot encode are refused (EncodeError) before step.
      let encodable = true;
      try {
        cbor.encode(input);
      } catch {
        encodable = false;
      }
      expected = encodable ? { kind: 'ok', output: applyModel(model, input) } : { kind: 'refused' };
    }
  }
  const r = await outcome(app.callBytes('kv1', bytes));
  if (!r.ok) {
    const code = errorCode(r.error);
    codes.set(code, (codes.get(code) ?? 0) + 1);
    if (!(r.error instanceof SsmError)) {
      t.fail(`untyped error for ${Buffer.from(bytes).toString('hex')}: ${code}`);
      return false;
    }
    if (expected.kind === 'ok') {
      t.fail(`refused (${code}) but the model accepts ${Buffer.from(bytes).toString('hex')}`);
      return false;
    }
    if (expected.kind === 'crash' && code !== 'MACHINE_CRASHED') return false;
    return true;
  }
  codes.set('OK', (codes.get('OK') ?? 0) + 1);
  if (expected.kind !== 'ok') {
    t.fail(`accepted but the model refuses ${Buffer.from(bytes).toString('hex')}`);
    return false;
  }
  t.deepEqual(decodeCbor(r.value), expected.output === undefined ? null : expected.output);
  return true;
}

/** Valid KV inputs, as CBOR, to mutate. */
const validInput = fc.oneof(
  fc.record({ op: fc.constant('store'), key: fc.string({ maxLength: 8 }), value: fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.array(fc.integer(), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 3 }), fc.integer(), { maxKeys: 2 })) }),
  fc.record({ op: fc.constantFrom('lookup', 'delete', 'has'), key: fc.string({ maxLength: 8 }) }),
  fc.record({ op: fc.constant('size') }),
  fc.record({ op: fc.constant('entries'), prefix: fc.string({ maxLength: 2 }), limit: fc.nat({ max: 5 }) }),
);

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 9 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(bytes: Uint8Array, ms: readonly Mutation[]): Uint8Array {
  let b = Buffer.from(bytes);
  for (const m of ms) {
    const at = b.length === 0 ? 0 : m.at % (b.length + (m.kind === 'insert' ? 1 : 0));
    if (m.kind === 'flip' && b.length) b[at] = b[at]! ^ m.mask;
    else if (m.kind === 'set' && b.length) b[at] = m.byte;
    else if (m.kind === 'insert') b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
    else if (m.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.n)]);
    else if (m.kind === 'truncate') b = b.subarray(0, at);
  }
  return b;
}

test(`fuzz callBytes: ${RUNS} random byte strings and ${RUNS} mutated valid CBOR inputs, differential against a model; typed errors only; restart reproduces the state`, async (t) => {
  const db = tempDb(t, 'ssm-hostile-');
  let app = await start(db);
  t.teardown(() => app.stop());
  const model: MapState = new Map();
  const codes = new Map<string, number>();
  const proto = protoSnapshot();
  for (let i = 0; i < 20; i++) await app.call('kv1', { op: 'store', key: `seed${i}`, value: i }), model.set(`seed${i}`, i);

  let cases = 0;
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 48 }), async (bytes) => {
      cases++;
      return check(t, app, model, codes, bytes);
    }),
    { numRuns: RUNS },
  );
  await fc.assert(
    fc.asyncProperty(validInput, fc.array(mutation, { minLength: 1, maxLength: 3 }), async (input, ms) => {
      cases++;
      return check(t, app, model, codes, mutate(cbor.encode(input), ms));
    }),
    { numRuns: RUNS },
  );
  t.log(`${cases} cases: ${JSON.stringify(Object.fromEntries(codes))}`);
  t.true(cases >= 2 * RUNS);
  t.true((codes.get('DECODE_ERROR') ?? 0) > RUNS / 2, 'most hostile inputs were refused as undecodable');
  t.true((codes.get('OK') ?? 0) > 100, 'some mutations were valid requests, and were served');
  t.deepEqual([...codes.keys()].filter((c) => c.startsWith('UNTYPED')), []);
  t.is(protoSnapshot(), proto, 'Object.prototype untouched');
  const digest = await kvDigest(app);
  t.is(digest, modelDigest(new Map([['kv1', model], ['kvj', new Map()]])), 'state is exactly what the model accepted');
  await app.stop();
  app = await start(db);
  t.is(await kvDigest(app), digest, 'recovery from disk reproduces the in-memory state');
});

test('deep nesting, huge declared lengths, indefinite lengths without end: DecodeError, state untouched, decoder still sound afterwards', async (t) => {
  const db = tempDb(t, 'ssm-hostile-');
  const app = await start(db);
  t.teardown(() => app.stop());
  await app.call('kv1', { op: 'store', key: 'a', value: 1 });
  const before = await kvDigest(app);
  const deep = (n: number, open: number[]): Buffer => Buffer.concat([Buffer.alloc(n * open.length).map((_, i) => open[i % open.length]!), Buffer.from([0x00])]);
  const hostile: [string, Uint8Array][] = [
    ['array nested 3000 deep', deep(3000, [0x81])],
    ['map nested 1300 deep', deep(1300, [0xa1, 0x61, 0x61])],
    ['tagged 4000 deep', deep(4000, [0xc6])],
    ['bytes declaring 2^64-1', Buffer.from([0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])],
    ['text declaring 2^31', Buffer.from([0x7a, 0x80, 0, 0, 0, 0x61])],
    ['array declaring 2^31-1', Buffer.from([0x9a, 0x7f, 0xff, 0xff, 0xff, 0x00])],
    ['array declaring 64M', Buffer.from([0x9a, 0x04, 0, 0, 0, 0x00])],
    ['map declaring 2^31-1', Buffer.from([0xba, 0x7f, 0xff, 0xff, 0xff, 0x61, 0x61, 0x00])],
    ['indefinite array, no break', Buffer.from([0x9f, 0x01, 0x02])],
    ['indefinite map, no break', Buffer.from([0xbf, 0x62, 0x6f, 0x70])],
    ['a lone break', Buffer.from([0xff])],
    ['reserved additional info', Buffer.from([0x1c])],
    ['store with a value declaring 2^32 items', Buffer.concat([cbor.encode({ op: 'store', key: 'big' }).subarray(0, -0), Buffer.from([0x9b, 0, 0, 0, 1, 0, 0, 0, 0])])],
    ['empty', new Uint8Array()],
  ];
  const rss0 = process.memoryUsage().rss;
  for (const [label, bytes] of hostile) {
    const r = await outcome(app.callBytes('kv1', bytes));
    t.true(!r.ok && r.error instanceof DecodeError, `${label}: ${r.ok ? 'accepted' : errorCode(r.error)}`);
    // The shared decoder must not be left in a broken state by the failure.
    t.is(await app.callBytes('kv1', cbor.encode({ op: 'size' })).then((b) => decodeCbor(b)), 1, `decoder sound after ${label}`);
  }
  t.true(process.memoryUsage().rss - rss0 < 256 * 1024 * 1024, 'no huge allocation from declared lengths');
  t.is(await kvDigest(app), before);
});

test('one nesting limit at the door: exactly MAX_NESTING levels are accepted on every path, deeper is a DecodeError, and what is accepted is always snapshottable and recoverable', async (t) => {
  const db = tempDb(t, 'ssm-hostile-');
  let app = await start(db);
  t.teardown(() => app.stop());
  const nest = (d: number): unknown => {
    let v: unknown = 'leaf';
    for (let i = 0; i < d; i++) v = i % 2 ? [v] : { n: v };
    return v;
  };
  // Find the deepest value the engine accepts; anything deeper must be a typed refusal.
  let lo = 1;
  let hi = 50_000;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    const r = await outcome(app.call('kv1', { op: 'store', key: 'probe', value: nest(mid) }));
    if (r.ok) lo = mid;
    else {
      t.true(r.error instanceof DecodeError, errorCode(r.error));
      hi = mid - 1;
    }
  }
  // The input {op, key, value} is one level; the value adds `lo`.
  t.is(lo + 1, MAX_NESTING);
  // The same limit on the JSON path (callValue) and on the wire (callBytes).
  t.true((await outcome(app.callValue('kv1', { op: 'store', key: 'deep', value: nest(lo) }))).ok);
  const tooDeep = await outcome(app.callValue('kv1', { op: 'store', key: 'deep', value: nest(lo + 1) }));
  t.true(!tooDeep.ok && tooDeep.error instanceof DecodeError);
  const wire = await outcome(app.callBytes('kv1', cbor.encode({ op: 'store', key: 'deep', value: nest(lo + 1) })));
  t.true(!wire.ok && wire.error instanceof DecodeError);
  await app.call('kv1', { op: 'store', key: 'deepest', value: nest(lo) });
  // A snapshot encodes the whole state, a few levels deeper than the input: always possible.
  const cp = await outcome(app.checkpoint());
  t.true(cp.ok, cp.ok ? '' : errorCode(cp.error));
  await app.stop();
  app = await start(db);
  // Walk the recovered value without recursion (a recursive deepEqual would overflow too).
  let v = await app.call<unknown>('kv1', { op: 'lookup', key: 'deepest' });
  let depth = 0;
  while (typeof v === 'object' && v !== null) {
    v = Array.isArray(v) ? v[0] : (v as { n: unknown }).n;
    depth++;
  }
  t.is(depth, lo, 'recovered at full depth');
  t.is(v, 'leaf');
});

test('__proto__ and constructor keys, in CBOR and in JSON: no prototype pollution, JSON __proto__ keys refused, and recovery equals memory', async (t) => {
  const db = tempDb(t, 'ssm-hostile-');
  let app = await start(db);
  t.teardown(() => app.stop());
  const proto = protoSnapshot();
  // A CBOR map written by hand, so the key really is "__proto__" on the wire.
  const text = (s: string): Buffer => Buffer.concat([Buffer.from([0x60 + s.length]), Buffer.from(s)]);
  const map = (pairs: [Buffer, Buffer][]): Buffer => Buffer.concat([Buffer.from([0xa0 + pairs.length]), ...pairs.flat()]);
  const cborCases: [string, Buffer][] = [
    ['op only via __proto__', map([[text('__proto__'), map([[text('op'), text('size')]])]])],
    ['store value with __proto__', map([[text('op'), text('store')], [text('key'), text('p1')], [text('value'), map([[text('__proto__'), map([[text('polluted'), Buffer.from([0xf5])]])]])]])],
    ['store value with constructor.prototype', map([[text('op'), text('store')], [text('key'), text('p2')], [text('value'), map([[text('constructor'), map([[text('prototype'), map([[text('polluted'), Buffer.from([0xf5])]])]])]])]])],
    ['key named __proto__', map([[text('op'), text('store')], [text('key'), text('__proto__')], [text('value'), Buffer.from([0x01])]])],
  ];
  for (const [label, bytes] of cborCases) {
    const r = await outcome(app.callBytes('kv1', bytes));
    t.true(r.ok || r.error instanceof SsmError, `${label}: ${r.ok ? 'ok' : errorCode(r.error)}`);
  }
  // JSON keeps a "__proto__" key as an own property, which the CBOR log could not reproduce:
  // refused. ("\u005f" spells "_": the escape must not get around it.)
  const jsonCases: [string, boolean][] = [
    ['{"__proto__": {"op": "store", "key": "x", "value": 1}}', false],
    ['{"op": "store", "key": "j1", "value": {"__proto__": {"polluted": true}, "y": 2}}', false],
    ['{"op": "store", "key": "j1", "value": {"\\u005f_proto__": {"polluted": true}}}', false],
    ['{"op": "store", "key": "j2", "value": {"constructor": {"prototype": {"polluted": true}}}}', true],
    ['{"op": "store", "key": "__proto__", "value": {"a": [{"__proto": null}]}}', true],
  ];
  for (const [json, accepted] of jsonCases) {
    const r = await outcome(app.callBytes('kvj', Buffer.from(json)));
    if (accepted) t.true(r.ok, `${json}: ${r.ok ? 'ok' : errorCode(r.error)}`);
    else t.true(!r.ok && r.error instanceof DecodeError, `${json}: ${r.ok ? 'accepted' : errorCode(r.error)}`);
  }
  t.is(await app.call('kvj', { op: 'size' }), 2);
  t.is(protoSnapshot(), proto, 'Object.prototype untouched');
  t.is(({} as Record<string, unknown>)['polluted'], undefined);
  // Values in the live state are plain objects whose prototype is Object.prototype.
  for (const [k, v] of [...(await kvEntries(app, 'kv1')), ...(await kvEntries(app, 'kvj'))]) {
    if (v && typeof v === 'object' && !Array.isArray(v)) t.is(Object.getPrototypeOf(v), Object.prototype, `state value ${k}`);
  }
  t.false(await app.call('kv1', { op: 'has', key: 'x' }), 'no op smuggled in through a __proto__ key');
  const digest = await kvDigest(app);
  await app.stop();
  app = await start(db);
  t.is(await kvDigest(app), digest, 'recovery equals memory');
});

test('non-UTF-8 text strings as keys: accepted or refused consistently, and recovery equals memory', async (t) => {
  const db = tempDb(t, 'ssm-hostile-');
  let app = await start(db);
  t.teardown(() => app.stop());
  const badUtf8 = [[0xff, 0xfe], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0x80], [0xef, 0xbf, 0xbe], [0x00]];
  for (const [i, raw] of badUtf8.entries()) {
    const keyText = Buffer.from([0x60 + raw.length, ...raw]);
    const bytes = Buffer.concat([Buffer.from([0xa3, 0x62]), Buffer.from('op'), Buffer.from([0x65]), Buffer.from('store'), Buffer.from([0x63]), Buffer.from('key'), keyText, Buffer.from([0x65]), Buffer.from('value'), Buffer.from([i])]);
    // Map of 3 pairs, then a stray trailing pair: keep it well-formed.
    const wellFormed = Buffer.concat([Buffer.from([0xa3]), bytes.subarray(1)]);
    const r = await outcome(app.callBytes('kv1', wellFormed));
    t.true(r.ok || r.error instanceof SsmError, errorCode(r.ok ? null : r.error));
  }
  // Byte strings as keys are not strings: refused.
  const byteKey = cbor.encode({ op: 'store', key: new Uint8Array([0xff]), value: 1 });
  const r = await outcome(app.callBytes('kv1', byteKey));
  t.true(!r.ok && r.error instanceof DecodeError);
  const digest = await kvDigest(app);
  await app.stop();
  app = await start(db);
  t.is(await kvDigest(app), digest, 'every accepted key reads back identically after recovery');
});

test('payloads over the size limit: PayloadTooLargeError before decoding; at the limit, served', async (t) => {
  const db = tempDb(t, 'ssm-hostile-');
  const app = await start(db);
  t.teardown(() => app.stop());
  const before = await kvDigest(app);
  for (const size of [MAX_PAYLOAD + 1, MAX_PAYLOAD * 4, 8 * 1024 * 1024]) {
    const r = await outcome(app.callBytes('kv1', new Uint8Array(size)));
    t.true(!r.ok && r.error instanceof PayloadTooLargeError, `${size} bytes`);
  }
  t.is(await kvDigest(app), before);
  const head = cbor.encode({ op: 'store', key: 'fits', value: '' });
  const pad = MAX_PAYLOAD - head.byteLength - 2; // text header grows by 2 bytes for 256..65535 chars
  const exact = cbor.encode({ op: 'store', key: 'fits', value: 'v'.repeat(pad) });
  t.is(exact.byteLength, MAX_PAYLOAD);
  t.is(decodeCbor(await app.callBytes('kv1', exact)), null);
});
