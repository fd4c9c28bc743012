import test from 'ava';
import { RespParser, RespProtocolError, splitInline } from '../src/resp/parser.js';
import { encode, map, bulk, int, NIL, array } from '../src/resp/encoder.js';

const limits = { maxBulkBytes: 64, maxArrayLength: 8, maxInlineBytes: 32 };
const strs = (cmd: Buffer[] | null): string[] | null => (cmd === null ? null : cmd.map((b) => b.toString('latin1')));

function all(p: RespParser): string[][] {
  const out: string[][] = [];
  for (let c = p.next(); c !== null; c = p.next()) out.push(strs(c)!);
  return out;
}

test('parser: one byte at a time gives the same commands as one chunk', (t) => {
  const wire = Buffer.from('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\r\nb\0\r\n*1\r\n$4\r\nPING\r\nPING x\r\n');
  const whole = new RespParser(limits);
  whole.push(wire);
  const expected = [['SET', 'k', 'a\r\nb\0'], ['PING'], ['PING', 'x']];
  t.deepEqual(all(whole), expected);
  const bytewise = new RespParser(limits);
  const got: string[][] = [];
  for (const byte of wire) {
    bytewise.push(Buffer.from([byte]));
    got.push(...all(bytewise));
  }
  t.deepEqual(got, expected);
  t.false(bytewise.partial);
});

test('parser: pipelined commands come out in order; partial is true mid-command', (t) => {
  const p = new RespParser(limits);
  p.push(Buffer.from('*1\r\n$4\r\nPING\r\n'.repeat(5) + '*2\r\n$3\r\nGET\r\n$2\r\nk'));
  t.is(all(p).length, 5);
  t.true(p.partial);
  p.push(Buffer.from('1\r\n'));
  t.deepEqual(all(p), [['GET', 'k1']]);
  t.false(p.partial);
});

test('parser: empty lines and *0 are no command; inline quoting follows Redis', (t) => {
  const p = new RespParser(limits);
  p.push(Buffer.from('\r\n*0\r\n*-1\r\nSET "a b" \'c d\' "\\x41\\n"\r\n'));
  t.deepEqual(all(p), [['SET', 'a b', 'c d', 'A\n']]);
  t.throws(() => splitInline(Buffer.from('GET "open')), { instanceOf: RespProtocolError, message: /unbalanced quotes/ });
});

test('parser: limits and malformed input throw RespProtocolError', (t) => {
  const cases: [string, RegExp][] = [
    ['*9\r\n', /invalid multibulk length/],
    ['*1\r\n$65\r\n', /invalid bulk length/],
    ['*1\r\n$-5\r\n', /invalid bulk length/],
    ['*x\r\n', /invalid multibulk length/],
    ['*1\r\n:5\r\n', /expected '\$', got ':'/],
    ['*1\r\n$1\r\nab\r\n', /not terminated by CRLF/],
    ['A'.repeat(40), /too big inline request/],
    ['*' + '1'.repeat(40), /too big multibulk count/],
    ['*1\r\n$' + '1'.repeat(40), /too big bulk length/],
  ];
  for (const [wire, message] of cases) {
    const p = new RespParser(limits);
    p.push(Buffer.from(wire));
    t.throws(() => all(p), { instanceOf: RespProtocolError, message }, JSON.stringify(wire));
  }
});

test('parser: a bulk string is copied out of the receive buffer', (t) => {
  const p = new RespParser(limits);
  const chunk = Buffer.from('*1\r\n$3\r\nabc\r\n');
  p.push(chunk);
  const [arg] = p.next()!;
  chunk.fill(0);
  t.is(arg!.toString(), 'abc');
});

test('encoder: RESP2 and RESP3 forms of null and map', (t) => {
  const r = map([[bulk('a'), int(1)]]);
  t.is(encode(r, 2).toString(), '*2\r\n$1\r\na\r\n:1\r\n');
  t.is(encode(r, 3).toString(), '%1\r\n$1\r\na\r\n:1\r\n');
  t.is(encode(array([NIL]), 2).toString(), '*1\r\n$-1\r\n');
  t.is(encode(NIL, 3).toString(), '_\r\n');
});
