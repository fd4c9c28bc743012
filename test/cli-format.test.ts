import test from 'ava';
import { stateText, table } from '../src/cli/format.js';
import { toJson, toJsonValue } from '../src/encoding/json.js';
import { progress } from '../src/cli/progress.js';

test('toJson: Maps, Sets, Dates, bigint, bytes, non-finite numbers, undefined', (t) => {
  const value = {
    m: new Map<unknown, unknown>([
      ['a', 1n],
      ['b', new Date('2024-01-01T00:00:00Z')],
    ]),
    numericKeys: new Map([[1, 'one']]),
    s: new Set([1, 2]),
    bytes: new Uint8Array([255, 0]),
    f: new Float64Array([1.5]),
    inf: Number.POSITIVE_INFINITY,
    u: undefined,
    nested: [new Map([['__proto__', 1]])],
  };
  const j = toJsonValue(value) as Record<string, unknown>;
  t.deepEqual(j['m'], { a: '1', b: '2024-01-01T00:00:00.000Z' });
  t.deepEqual(j['numericKeys'], [[1, 'one']]);
  t.deepEqual(j['s'], [1, 2]);
  t.is(j['bytes'], '/wA=');
  t.deepEqual(j['f'], [1.5]);
  t.is(j['inf'], 'Infinity');
  t.is(j['u'], null);
  // A "__proto__" key stays data, not a prototype.
  t.is(JSON.stringify((j['nested'] as unknown[])[0]), '{"__proto__":1}');
});

test('toJson survives cycles', (t) => {
  const a: Record<string, unknown> = { x: 1 };
  a['self'] = a;
  t.deepEqual(toJsonValue(a), { x: 1, self: '[Circular]' });
});

test('stateText: a Map as sorted key => value lines, quoting awkward keys', (t) => {
  const lines = stateText(new Map<string, unknown>([['b', { v: 2 }], ['a', 'text'], ['with space', null]]));
  t.deepEqual(lines, ['  "with space" => null', '  a => "text"', '  b => {"v":2}']);
  t.deepEqual(stateText(new Map()), ['  (empty map)']);
  t.deepEqual(stateText({ n: 1n }), ['  {', '    "n": "1"', '  }']);
  t.is(toJson([1n, 'x']), '["1","x"]');
});

test('table aligns columns', (t) => {
  t.is(table(['A', 'BB'], [['xxx', 'y'], ['z', 'long']]), 'A    BB\nxxx  y\nz    long');
});

function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, stream: { isTTY, columns: 80, write: (s: string) => (writes.push(s), true) } };
}

test('progress draws nothing when the stream is not a terminal', (t) => {
  const { writes, stream } = fakeStream(false);
  let now = 0;
  const p = progress('replaying', 100, { stream, now: () => now, delayMs: 0, intervalMs: 0 });
  for (let i = 0; i < 10; i++) {
    now += 1000;
    p.add(10);
  }
  p.done();
  t.deepEqual(writes, []);
});

test('progress on a terminal: delayed, throttled, cleared at the end', (t) => {
  const { writes, stream } = fakeStream(true);
  let now = 0;
  const p = progress('replaying kv1', 100, { stream, now: () => now, delayMs: 250, intervalMs: 100 });
  p.add(10); // t=0: before the delay
  t.is(writes.length, 0);
  now = 300;
  p.add(40); // 50%
  t.is(writes.length, 1);
  t.regex(writes[0]!, /^\r\x1b\[Kreplaying kv1 \[#+-+\] 50% 50\/100$/);
  now = 350;
  p.add(10); // throttled
  t.is(writes.length, 1);
  now = 450;
  p.add(40);
  t.regex(writes[1]!, /\[#+\] 100% 100\/100$/);
  p.done();
  t.is(writes[2], '\r\x1b[K');
  p.done();
  t.is(writes.length, 3);
});

test('progress that never drew does not clear the line', (t) => {
  const { writes, stream } = fakeStream(true);
  const p = progress('quick', 10, { stream, now: () => 0 });
  p.add(10);
  p.done();
  t.deepEqual(writes, []);
});
