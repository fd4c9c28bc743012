import test from 'ava';
import { ShardedMap } from '../src/encoding/sharded-map.js';
import { kvStep, validateKvInput, type KvInput } from '../src/kv/kv-machine.js';
import { valueAsBytes } from '../src/kv/kv-ops.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const run = (state: ShardedMap<unknown>, input: unknown): unknown => kvStep(validateKvInput(input), state)[1];

test('storeMany stores every pair in one step; deleteMany and lookupMany', (t) => {
  const s = new ShardedMap<unknown>();
  t.is(run(s, { op: 'storeMany', entries: [['a', bytes('1')], ['b', 2]] }), 2);
  t.deepEqual(run(s, { op: 'lookupMany', keys: ['a', 'x', 'b'] }), [bytes('1'), null, 2]);
  t.is(run(s, { op: 'deleteMany', keys: ['a', 'a', 'x'] }), 1);
  t.is(s.size, 1);
  t.throws(() => validateKvInput({ op: 'storeMany', entries: [['a']] }), { instanceOf: TypeError });
  t.throws(() => validateKvInput({ op: 'storeMany', entries: [[1, 2]] }), { instanceOf: TypeError });
});

test('storeIf: absent/present conditions and the old value', (t) => {
  const s = new ShardedMap<unknown>();
  t.deepEqual(run(s, { op: 'storeIf', key: 'k', value: 1, when: 'present', returnOld: false }), { stored: false });
  t.deepEqual(run(s, { op: 'storeIf', key: 'k', value: 1, when: 'absent', returnOld: true }), { stored: true, old: null });
  t.deepEqual(run(s, { op: 'storeIf', key: 'k', value: 2, when: 'absent', returnOld: true }), { stored: false, old: 1 });
  t.deepEqual(run(s, { op: 'take', key: 'k' }), 1);
  t.false(s.has('k'));
});

test('incrBy: 64-bit integer semantics, errors change nothing', (t) => {
  const s = new ShardedMap<unknown>();
  t.deepEqual(run(s, { op: 'incrBy', key: 'n', by: 5 }), { value: 5n });
  t.deepEqual(s.get('n'), bytes('5'));
  s.set('t', bytes('abc'));
  t.deepEqual(run(s, { op: 'incrBy', key: 't', by: 1 }), { error: 'NOT_INTEGER' });
  s.set('lead', bytes('007'));
  t.deepEqual(run(s, { op: 'incrBy', key: 'lead', by: 1 }), { error: 'NOT_INTEGER' });
  s.set('max', bytes('9223372036854775807'));
  t.deepEqual(run(s, { op: 'incrBy', key: 'max', by: 1 }), { error: 'OVERFLOW' });
  t.deepEqual(s.get('max'), bytes('9223372036854775807'));
  s.set('json', 41);
  t.deepEqual(run(s, { op: 'incrBy', key: 'json', by: 1n }), { value: 42n });
  t.throws(() => validateKvInput({ op: 'incrBy', key: 'n', by: 1.5 }), { instanceOf: TypeError });
});

test('append and valueAsBytes: bytes as is, text as UTF-8, the rest as JSON', (t) => {
  const s = new ShardedMap<unknown>();
  s.set('j', { a: 1 });
  t.is(run(s, { op: 'append', key: 'j', value: bytes('!') }), 8);
  t.deepEqual(s.get('j'), bytes('{"a":1}!'));
  t.throws(() => validateKvInput({ op: 'append', key: 'j', value: 'text' }), { instanceOf: TypeError });
  t.deepEqual(valueAsBytes('é'), bytes('é'));
  t.deepEqual(valueAsBytes(10n), bytes('10'));
  t.is(valueAsBytes(null), null);
});

test('entries: after and keysOnly page through sorted keys', (t) => {
  const s = new ShardedMap<unknown>();
  for (const k of ['b', 'a', 'c', 'd']) s.set(k, k);
  const page = (input: Partial<KvInput> & Record<string, unknown>): unknown => run(s, { op: 'entries', keysOnly: true, ...input });
  t.deepEqual(page({ limit: 2 }), ['a', 'b']);
  t.deepEqual(page({ after: 'b', limit: 2 }), ['c', 'd']);
  t.deepEqual(run(s, { op: 'entries', after: 'c' }), [['d', 'd']]);
  t.deepEqual(validateKvInput({ op: 'entries' }), { op: 'entries', prefix: undefined, after: undefined, limit: undefined });
});
