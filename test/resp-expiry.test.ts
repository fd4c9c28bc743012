/**
 * Expiry and transactions over RESP (issue 16.3), with the real redis-cli: SET NX/XX/GET with
 * EX/PX/EXAT/PXAT/KEEPTTL, TTL, PTTL, EXPIRE, PEXPIRE, EXPIREAT, PERSIST, MULTI/EXEC/DISCARD.
 * The same script runs against a real redis-server (7.x) when one is installed, and the replies
 * must be the same, byte for byte.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { startApplication, type App } from '../src/engine/application.js';
import { kvTree } from '../src/kv/demo.js';
import { serveResp, silentLogger, type RespEndpoint } from '../src/index.js';
import { tempDir } from './fixtures/serve-helpers.js';
import { cli, redisCli } from './fixtures/resp-helpers.js';

async function harness(t: Parameters<typeof tempDir>[0]): Promise<{ app: App; ep: RespEndpoint; port: number }> {
  const app = await startApplication(kvTree(), { db: join(tempDir(t), 'resp.db'), logger: silentLogger });
  const ep = await serveResp({ app, port: 0 });
  t.teardown(async () => {
    await ep.close({ graceMs: 100 });
    await app.stop();
  });
  return { app, ep, port: ep.port };
}

/** A redis-server on a free port (null when none is installed). */
async function realRedis(t: Parameters<typeof tempDir>[0]): Promise<number | null> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  let proc: ChildProcess;
  try {
    proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tempDir(t)], { stdio: 'ignore' });
  } catch {
    return null;
  }
  const failed = new Promise<null>((r) => proc.once('error', () => r(null)));
  t.teardown(() => void proc.kill('SIGKILL'));
  for (let i = 0; i < 100; i++) {
    const up = await Promise.race([cli(port, 'PING').then((r) => r === 'PONG'), failed]);
    if (up === null) return null;
    if (up) return port;
    await new Promise((r) => setTimeout(r, 50));
  }
  return null;
}

/** One connection (redis-cli reading commands from stdin), the raw replies. */
const script = async (port: number, lines: readonly string[]): Promise<string> => (await redisCli(port, [], `${lines.join('\n')}\n`)).stdout;

const SCRIPT = [
  'SET a 1 EX 100', 'TTL a', 'SET a 2 KEEPTTL', 'TTL a', 'GET a', 'SET a 3', 'TTL a', 'TTL nope', 'PTTL nope', 'PTTL a',
  'SET b x NX PX 100000', 'SET b y NX', 'SET b y XX GET', 'TTL b', 'EXPIRE b 50', 'TTL b', 'PERSIST b', 'PERSIST b', 'EXPIRE nope 5',
  'SET c v EX 0', 'SET c v EX abc', 'SET c v EX 10 PX 10', 'SET c v EX 10 KEEPTTL', 'SET c v PX', 'SET c v NX XX',
  'EXPIRE b 0', 'EXISTS b', 'SET d v PXAT 1', 'GET d', 'EXISTS d', 'SET e v EXAT 4102444800', 'EXPIREAT e 1', 'EXISTS e',
  'SET f v PX 100000', 'PEXPIRE f 50000', 'TTL f', 'SET g v', 'SET g w GET EX 30', 'TTL g',
  'MULTI', 'SET t 1', 'INCR t', 'GET t', 'EXPIRE t 100', 'TTL t', 'MSET t2 a t3 b', 'EXISTS t t2 nope', 'DEL t3', 'EXEC',
  'MULTI', 'SET u 1', 'INCR u extra', 'EXEC', 'GET u',
  'MULTI', 'SET v abc', 'INCR v', 'GET v', 'EXEC',
  'MULTI', 'EXEC', 'DISCARD', 'EXEC',
  'MULTI', 'MULTI', 'SET w 1', 'DISCARD', 'GET w',
];

test('redis-cli: expiry and transaction commands answer exactly what redis-server answers', async (t) => {
  t.timeout(60_000);
  const { port } = await harness(t);
  const ours = await script(port, SCRIPT);
  // What redis-server 7.0 answers (redis-cli prints a blank line after an error).
  const expected = [
    'OK', '100', 'OK', '100', '2', 'OK', '-1', '-2', '-2', '-1', 'OK', '', 'x', '-1', '1', '50', '1', '0',
    '0', "ERR invalid expire time in 'set' command", '', 'ERR value is not an integer or out of range', '',
    'ERR syntax error', '', 'ERR syntax error', '', 'ERR syntax error', '', 'ERR syntax error', '', '1', '0',
    'OK', '', '0', 'OK', '1', '0', 'OK', '1', '50', 'OK', 'v', '30', 'OK', 'QUEUED', 'QUEUED', 'QUEUED', 'QUEUED',
    'QUEUED', 'QUEUED', 'QUEUED', 'QUEUED', 'OK', '2', '2', '1', '100', 'OK', '2', '1', 'OK', 'QUEUED', "ERR wrong number of arguments for 'incr' command",
    '', 'EXECABORT Transaction discarded because of previous errors.', '', '', 'OK', 'QUEUED', 'QUEUED', 'QUEUED',
    'OK', 'ERR value is not an integer or out of range', '', 'abc', 'OK', '', 'ERR DISCARD without MULTI',
    '', 'ERR EXEC without MULTI', '', 'OK', 'ERR MULTI calls can not be nested', '', 'QUEUED', 'OK', '',
  ];
  t.deepEqual(ours.split('\n').slice(0, -1), expected);
  const redis = await realRedis(t);
  if (redis === null) return t.log('no redis-server installed: compared with the expected replies only');
  t.is(ours, await script(redis, SCRIPT), 'the same bytes as redis-server');
  t.log('replies identical to redis-server');
});

const CONDITIONS = [
  'SET p v', 'EXPIRE p 100 XX', 'EXPIRE p 100 GT', 'TTL p', 'EXPIRE p 100 LT', 'TTL p', 'EXPIRE p 200 NX', 'EXPIRE p 50 NX', 'TTL p',
  'EXPIRE p 300 GT', 'TTL p', 'EXPIRE p 200 GT', 'EXPIRE p 100 lt', 'TTL p', 'EXPIRE p 150 XX LT', 'EXPIRE p 50 XX LT', 'TTL p',
  'EXPIRE p 500 XX GT', 'TTL p', 'PEXPIRE p 400000 LT', 'TTL p', 'EXPIREAT p 4102444800 GT', 'EXPIRE nope 5 NX',
  'EXPIRE p 10 NX XX', 'EXPIRE p 10 GT LT', 'EXPIRE p 10 NX GT', 'EXPIRE p 10 YY', 'EXPIRE p -1 GT', 'EXISTS p', 'EXPIRE p -1 LT', 'EXISTS p',
  'SET q v', 'EXPIRE q 0 NX', 'EXISTS q',
  'SET r v EX 100', 'SET s v', 'INFO keyspace',
];

test('redis-cli: EXPIRE and PEXPIRE with NX, XX, GT, LT, and INFO keyspace expires, answer exactly what redis-server answers', async (t) => {
  t.timeout(60_000);
  const { port } = await harness(t);
  const ours = await script(port, CONDITIONS);
  const lines = ours.split('\n');
  const expected = [
    'OK', '0', '0', '-1', '1', '100', '0', '0', '100', '1', '300', '0', '1', '100', '0', '1', '50', '1', '500', '1', '400', '1', '0',
    'ERR NX and XX, GT or LT options at the same time are not compatible', '', 'ERR GT and LT options at the same time are not compatible', '',
    'ERR NX and XX, GT or LT options at the same time are not compatible', '', 'ERR Unsupported option YY', '',
  ];
  t.deepEqual(lines.slice(0, 31), expected);
  // (No TTL after the EXPIREAT: its seconds would differ between the two servers' runs.)
  t.deepEqual(lines.slice(31, 38), ['0', '1', '1', '0', 'OK', '1', '0']);
  t.regex(ours, /db0:keys=2,expires=1,/);
  const redis = await realRedis(t);
  if (redis === null) return t.log('no redis-server installed: compared with the expected replies only');
  const theirs = await script(redis, CONDITIONS);
  // INFO differs (server figures); every reply before it must be the same bytes.
  const cut = (out: string): string => out.slice(0, out.indexOf('# Keyspace'));
  t.is(cut(ours), cut(theirs), 'the same bytes as redis-server');
  t.regex(theirs, /db0:keys=2,expires=1,/);
  t.log('replies identical to redis-server');
});

test.serial('redis-cli: an expired key is absent at once (GET, EXISTS, TTL, DBSIZE, KEYS, SCAN), before its removal', async (t) => {
  const { port, app } = await harness(t);
  // Expiring 1 ms past a removal tick, so the removal timer (at the next multiple of 100 ms)
  // comes ~99 ms after the expiry: the reads below fall in between.
  const at = Math.ceil((Date.now() + 1500) / 100) * 100 + 1;
  t.is(await cli(port, 'SET', 'soon', 'v', 'PXAT', String(at)), 'OK');
  t.is(await cli(port, 'SET', 'stays', 'v'), 'OK');
  t.is(await cli(port, 'GET', 'soon'), 'v');
  while (Date.now() < at + 5) await new Promise((r) => setTimeout(r, 2));
  const replies = await script(port, ['GET soon', 'EXISTS soon', 'TTL soon', 'PTTL soon', 'DBSIZE', 'KEYS *', 'SCAN 0', 'MGET soon stays']);
  const physically = await app.call('kv1', { op: 'has', key: 'soon', now: 0 });
  t.deepEqual(replies.split('\n').slice(0, -1), ['', '0', '-2', '-2', '1', 'stays', '0', 'stays', '', 'v']);
  t.log(physically ? 'the expired key was still in the state when it read as absent' : 'the removal ran before the reads (a slow machine): exactness was not tested before removal this time');
  // And it is removed for real, by a logged request.
  for (let i = 0; i < 100 && (await app.call('kv1', { op: 'has', key: 'soon', now: 0 })); i++) await new Promise((r) => setTimeout(r, 20));
  t.false(await app.call('kv1', { op: 'has', key: 'soon', now: 0 }));
});

const WATCHING = [
  'SET w 1', 'WATCH w', 'GET w', 'MULTI', 'SET w 2', 'INCR w', 'EXEC', 'GET w',
  'WATCH w', 'SET w 5', 'MULTI', 'SET w 6', 'EXEC', 'GET w',
  'WATCH nokey w', 'MULTI', 'SET nokey 1', 'EXEC', 'GET nokey',
  'WATCH w', 'DEL w', 'MULTI', 'EXEC',
  'WATCH w', 'SET w 7', 'MULTI', 'DISCARD', 'MULTI', 'SET w 8', 'EXEC',
  'WATCH w', 'SET w 9', 'UNWATCH', 'MULTI', 'SET w 10', 'EXEC', 'GET w',
];

test('redis-cli: WATCH, UNWATCH and EXEC answer exactly what redis-server answers (a changed watched key aborts EXEC: nil, nothing applied)', async (t) => {
  t.timeout(60_000);
  const { port } = await harness(t);
  const ours = await script(port, WATCHING);
  const expected = [
    'OK', 'OK', '1', 'OK', 'QUEUED', 'QUEUED', 'OK', '3', '3',
    'OK', 'OK', 'OK', 'QUEUED', '', '5',
    'OK', 'OK', 'QUEUED', 'OK', '1',
    'OK', '1', 'OK', '',
    'OK', 'OK', 'OK', 'OK', 'OK', 'QUEUED', 'OK',
    'OK', 'OK', 'OK', 'OK', 'QUEUED', 'OK', '10',
  ];
  t.deepEqual(ours.split('\n').slice(0, -1), expected);
  const redis = await realRedis(t);
  if (redis === null) return t.log('no redis-server installed: compared with the expected replies only');
  t.is(ours, await script(redis, WATCHING), 'the same bytes as redis-server');
  t.log('replies identical to redis-server');
});

test('WATCH: a write by another connection between WATCH and EXEC aborts EXEC with the nil array; RESP3 gets its null; EXEC after SELECT aborts', async (t) => {
  const { port, app } = await harness(t);
  const { createConnection } = await import('node:net');
  const sock = createConnection({ port, host: '127.0.0.1' });
  t.teardown(() => sock.destroy());
  let received = '';
  sock.on('data', (d) => (received += d.toString('latin1')));
  const send = async (line: string, until: (r: string) => boolean): Promise<string> => {
    const from = received.length;
    // latin1: one byte per character, so a key can hold bytes that are not UTF-8.
    sock.write(Buffer.from(`${line}\r\n`, 'latin1'));
    for (let i = 0; i < 500 && !until(received.slice(from)); i++) await new Promise((r) => setTimeout(r, 5));
    return received.slice(from);
  };
  const lines = (n: number) => (r: string): boolean => r.split('\r\n').length > n;
  await app.call('kv1', { op: 'store', key: 'acct', value: Buffer.from('100') });
  t.is(await send('WATCH acct', lines(1)), '+OK\r\n');
  t.is(await cli(port, 'SET', 'acct', '50'), 'OK', 'another client writes the watched key');
  t.is(await send('MULTI', lines(1)), '+OK\r\n');
  t.is(await send('SET acct 150', lines(1)), '+QUEUED\r\n');
  t.is(await send('EXEC', lines(1)), '*-1\r\n', 'RESP2 nil array');
  t.is(await cli(port, 'GET', 'acct'), '50', 'nothing of the transaction applied');
  t.true((await send('HELLO 3', (r) => r.includes('proto'))).startsWith('%'));
  await send('WATCH acct', lines(1));
  t.is(await cli(port, 'SET', 'acct', '60'), 'OK');
  await send('MULTI', lines(1));
  await send('SET acct 1', lines(1));
  t.is(await send('EXEC', lines(1)), '_\r\n', 'RESP3 null');
  await send('WATCH acct', lines(1));
  await send('SELECT 1', lines(1));
  await send('MULTI', lines(1));
  await send('SET acct 1', lines(1));
  t.is(await send('EXEC', lines(1)), '_\r\n', 'keys watched in db 0 cannot guard an EXEC in db 1: aborted');
  t.is(await cli(port, '-n', '1', 'GET', 'acct'), '');
  // A watched key that expires before EXEC aborts it, as in Redis (not compared side by side: the
  // outcome there depends on whether the key was still live at WATCH, a race in a script).
  await send('SELECT 0', lines(1));
  t.is(await cli(port, 'SET', 'e', 'v', 'PX', '300'), 'OK');
  await send('WATCH e', lines(1));
  await new Promise((r) => setTimeout(r, 400));
  await send('MULTI', lines(1));
  await send('SET x 1', lines(1));
  t.is(await send('EXEC', lines(1)), '_\r\n', 'the watched key expired: aborted');
  t.is(await cli(port, 'EXISTS', 'x'), '0');
  t.is(await send('WATCH a b', lines(1)), '+OK\r\n');
  t.regex(await send('WATCH \xff', lines(1)), /^-ERR key is not valid UTF-8/);
});

test('redis-cli: commands that are not one KV request are refused inside MULTI and abort EXEC; WATCH inside MULTI is refused', async (t) => {
  const { port } = await harness(t);
  const out = await script(port, ['MULTI', 'SET k 1', 'KEYS *', 'SELECT 1', 'EXEC', 'GET k', 'MULTI', 'WATCH k', 'DISCARD']);
  // redis-cli prints a blank line after each error.
  const lines = out.replace(/^(ERR|EXECABORT)(.*)\n\n/gm, '$1$2\n').split('\n').slice(0, -1);
  t.deepEqual(lines.slice(0, 2), ['OK', 'QUEUED']);
  t.regex(lines[2]!, /^ERR KEYS cannot be queued in a transaction/);
  t.regex(lines[3]!, /^ERR SELECT cannot be queued in a transaction/);
  t.deepEqual(lines.slice(4, 6), ['EXECABORT Transaction discarded because of previous errors.', '']);
  t.is(lines[6], 'OK');
  t.regex(lines[7]!, /^ERR WATCH inside MULTI is not allowed/);
  t.is(lines[8], 'OK');
});

test('MULTI/EXEC is one atomic batch request: one log entry, applied in one step', async (t) => {
  const { port, app } = await harness(t);
  const before = app.status();
  const seqOf = (n: typeof before): number => (n.kind === 'worker' ? (n.name === 'kv1' ? n.seq : -1) : n.kind === 'entities' ? -1 : Math.max(...n.children.map(seqOf)));
  const seq0 = seqOf(before);
  const out = await script(port, ['MULTI', ...Array.from({ length: 50 }, (_, i) => `SET m${i} ${i} EX 1000`), 'INCR m1', 'EXEC']);
  t.is(out.split('\n').slice(0, -1).at(-1), '2');
  t.is(seqOf(app.status()), seq0 + 1, 'fifty SETs and an INCR: one logged request');
  t.is(await cli(port, 'DBSIZE'), '50');
});
