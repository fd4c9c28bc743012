import test from 'ava';
import { once } from 'node:events';
import { connect } from 'node:net';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startApplication, type App } from '../src/engine/application.js';
import { kvTree } from '../src/kv/demo.js';
import { ConfigError, serveResp, silentLogger, type RespEndpoint, type RespOptions } from '../src/index.js';
import { tempDir } from './fixtures/serve-helpers.js';
import { cli, rawExchange, redisCli } from './fixtures/resp-helpers.js';

async function harness(t: Parameters<typeof tempDir>[0], options: Omit<RespOptions, 'app'> = {}): Promise<{ app: App; ep: RespEndpoint; port: number }> {
  const app = await startApplication(kvTree(), { db: join(tempDir(t), 'resp.db'), logger: silentLogger });
  const ep = await serveResp({ app, port: 0, ...options });
  t.teardown(async () => {
    await ep.close({ graceMs: 100 });
    await app.stop();
  });
  return { app, ep, port: ep.port };
}

test('redis-cli: SET/GET/DEL/MSET/MGET/INCR/APPEND/STRLEN/GETDEL/EXISTS/TYPE', async (t) => {
  const { port, app } = await harness(t);
  t.is(await cli(port, 'PING'), 'PONG');
  t.is(await cli(port, 'SET', 'greeting', 'hello'), 'OK');
  t.is(await cli(port, 'GET', 'greeting'), 'hello');
  t.is(await cli(port, 'SET', 'greeting', 'x', 'NX'), '');
  t.is(await cli(port, 'SET', 'greeting', 'hi', 'XX', 'GET'), 'hello');
  t.is(await cli(port, 'SET', 'fresh', 'x', 'XX'), '');
  t.is(await cli(port, 'MSET', 'a', '1', 'b', '2', 'c', '3'), 'OK');
  t.is(await cli(port, 'MGET', 'a', 'b', 'nope', 'c'), '1\n2\n\n3');
  t.is(await cli(port, 'MSET', 'a', '1', 'b'), "ERR wrong number of arguments for 'mset' command");
  t.is(await cli(port, 'INCR', 'a'), '2');
  t.is(await cli(port, 'INCRBY', 'a', '40'), '42');
  t.is(await cli(port, 'DECRBY', 'a', '50'), '-8');
  t.is(await cli(port, 'DECR', 'counter'), '-1');
  t.is(await cli(port, 'INCR', 'greeting'), 'ERR value is not an integer or out of range');
  t.is(await cli(port, 'INCRBY', 'a', '1.5'), 'ERR value is not an integer or out of range');
  t.is(await cli(port, 'SET', 'big', '9223372036854775807'), 'OK');
  t.is(await cli(port, 'INCR', 'big'), 'ERR increment or decrement would overflow');
  t.is(await cli(port, 'APPEND', 'greeting', ' there'), '8');
  t.is(await cli(port, 'STRLEN', 'greeting'), '8');
  t.is(await cli(port, 'GETDEL', 'greeting'), 'hi there');
  t.is(await cli(port, 'EXISTS', 'greeting', 'a', 'a', 'b'), '3');
  t.is(await cli(port, 'TYPE', 'a'), 'string');
  t.is(await cli(port, 'TYPE', 'greeting'), 'none');
  t.is(await cli(port, 'DEL', 'a', 'b', 'nope'), '2');
  t.is(await cli(port, 'DBSIZE'), '3'); // c, counter, big
  // Values are bytes in the machine, the same as HTTP's CBOR byte strings.
  t.deepEqual(new Uint8Array(await app.call<Uint8Array>('kv1', { op: 'lookup', key: 'c' })), new Uint8Array([0x33]));
  t.is(await cli(port, 'FLUSHALL'), "ERR unknown command 'FLUSHALL', with args beginning with: ");
  t.is(await cli(port, 'GET'), "ERR wrong number of arguments for 'get' command");
});

test('redis-cli: binary values round-trip; values stored over HTTP JSON read as text', async (t) => {
  const { port, app } = await harness(t);
  const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  t.is((await redisCli(port, ['-x', 'SET', 'bin'], binary)).stdout, 'OK\n');
  const back = await redisCli(port, ['--no-raw', 'STRLEN', 'bin']);
  t.is(back.stdout, '(integer) 256\n');
  const got = await app.call<Uint8Array>('kv1', { op: 'lookup', key: 'bin' });
  t.deepEqual(Buffer.from(got), binary);
  const raw = await redisCli(port, ['GET', 'bin']);
  t.deepEqual(raw.stdoutBytes.subarray(0, 256), binary);
  await app.callValue('kv1', { op: 'store', key: 'json', value: { a: [1, 2] } });
  await app.callValue('kv1', { op: 'store', key: 'text', value: 'héllo' });
  await app.callValue('kv1', { op: 'store', key: 'num', value: 41 });
  t.is(await cli(port, 'MGET', 'json', 'text'), '{"a":[1,2]}\nhéllo');
  t.is(await cli(port, 'INCR', 'num'), '42');
  // Keys are UTF-8 text: invalid UTF-8 is refused, not mapped.
  const bad = await rawExchange(port, Buffer.concat([Buffer.from('*2\r\n$3\r\nGET\r\n$1\r\n'), Buffer.from([0xff]), Buffer.from('\r\n')]), (r) => r.endsWith('\r\n'));
  t.regex(bad.received, /^-ERR key is not valid UTF-8/);
});

test('redis-cli: SCAN pages with MATCH and COUNT, KEYS, --scan', async (t) => {
  const { port } = await harness(t);
  const args = ['MSET'];
  for (let i = 0; i < 55; i++) args.push(`user:${String(i).padStart(2, '0')}`, String(i));
  args.push('other', 'x');
  t.is(await cli(port, ...args), 'OK');
  const seen: string[] = [];
  let cursor = '0';
  let pages = 0;
  do {
    const [next, ...keys] = (await cli(port, 'SCAN', cursor, 'MATCH', 'user:*', 'COUNT', '10')).split('\n');
    cursor = next!;
    seen.push(...keys.filter(Boolean));
    pages++;
  } while (cursor !== '0');
  t.is(seen.length, 55);
  t.true(pages >= 6);
  const scanned = (await redisCli(port, ['--scan', '--pattern', 'user:1?'])).stdout.trim().split('\n');
  t.deepEqual(scanned.sort(), Array.from({ length: 10 }, (_, i) => `user:1${i}`));
  t.is(await cli(port, 'KEYS', 'oth*'), 'other');
  t.is(await cli(port, 'KEYS', '[z-a]'), 'ERR invalid pattern');
  t.is(await cli(port, 'KEYS', 'user:[^0-4]?'), 'user:50\nuser:51\nuser:52\nuser:53\nuser:54');
  t.is((await cli(port, 'KEYS', '*')).split('\n').length, 56);
});

test('redis-cli: SELECT picks the machine in start order; INFO reports our figures', async (t) => {
  const { port, app } = await harness(t);
  t.is(await cli(port, '-n', '2', 'SET', 'k', 'in kv3'), 'OK');
  t.deepEqual(Buffer.from(await app.call<Uint8Array>('kv3', { op: 'lookup', key: 'k' })).toString(), 'in kv3');
  t.is(await cli(port, 'GET', 'k'), '');
  t.is(await cli(port, 'SELECT', '3'), 'ERR DB index is out of range');
  const info = await cli(port, 'INFO');
  for (const section of ['# Server', '# Persistence', '# Stats', '# Keyspace']) t.true(info.includes(section), section);
  t.regex(info, /db2:keys=1,.*machine=kv3,status=running/);
  t.regex(info, /ssm_logged_requests:\d+/);
  t.regex(await cli(port, 'INFO', 'keyspace'), /^# Keyspace\r?\ndb0:keys=0/);
  t.regex(await cli(port, 'COMMAND', 'COUNT'), /^\d+$/);
  t.regex(await cli(port, '-3', 'HELLO', '3'), /proto 3/);
  t.is(await cli(port, 'HELLO', '4'), 'NOPROTO unsupported protocol version');
});

test('token: NOAUTH until AUTH; wrong token refused; PING allowed', async (t) => {
  const { port } = await harness(t, { token: 's3cret' });
  t.is(await cli(port, 'GET', 'x'), 'NOAUTH Authentication required.');
  t.is(await cli(port, 'PING'), 'PONG');
  const wrong = await redisCli(port, ['--no-auth-warning', '-a', 'wrong', 'GET', 'x']);
  t.regex(wrong.stderr + wrong.stdout, /WRONGPASS invalid username-password pair/);
  t.is(await cli(port, '--no-auth-warning', '-a', 's3cret', 'SET', 'x', '1'), 'OK');
  t.is(await cli(port, '--no-auth-warning', '--user', 'default', '--pass', 's3cret', 'GET', 'x'), '1');
});

test('pipelining: replies keep request order (raw socket and redis-cli --pipe)', async (t) => {
  const { port } = await harness(t);
  let wire = '';
  for (let i = 0; i < 200; i++) wire += `*3\r\n$3\r\nSET\r\n$${String(i).length + 1}\r\nk${i}\r\n$${String(i).length}\r\n${i}\r\n*2\r\n$3\r\nGET\r\n$${String(i).length + 1}\r\nk${i}\r\n`;
  wire += '*1\r\n$4\r\nQUIT\r\n';
  const { received, closedByServer } = await rawExchange(port, wire);
  t.true(closedByServer);
  let expected = '';
  for (let i = 0; i < 200; i++) expected += `+OK\r\n$${String(i).length}\r\n${i}\r\n`;
  t.is(received, `${expected}+OK\r\n`);
  const piped = await redisCli(port, ['--pipe'], Array.from({ length: 1000 }, (_, i) => `SET p${i} ${i}\r\n`).join(''));
  t.regex(piped.stdout, /errors: 0, replies: 1000/);
  t.is(await cli(port, 'GET', 'p999'), '999');
});

test('hostile input: protocol errors are answered and the connection closed; the server lives on', async (t) => {
  const { port } = await harness(t, { maxBulkBytes: 1024 });
  const cases = ['*1\r\n$99999\r\n', '*abc\r\n', '*1\r\n+PING\r\n', `${'A'.repeat(70_000)}`, '*2\r\n$3\r\nGET\r\n$1\r\nab\r\n'];
  for (const wire of cases) {
    const { received, closedByServer } = await rawExchange(port, `*1\r\n$4\r\nPING\r\n${wire}`);
    t.true(closedByServer, wire.slice(0, 20));
    t.regex(received, /^\+PONG\r\n-ERR Protocol error: .*\r\n$/, wire.slice(0, 20));
  }
  t.is(await cli(port, 'PING'), 'PONG');
});

test('serveResp: bad options are ConfigError; maxConnections refuses the newcomer', async (t) => {
  const { app, port } = await harness(t, { maxConnections: 1 });
  await t.throwsAsync(serveResp({ app, port: 70000 }), { instanceOf: ConfigError });
  await t.throwsAsync(serveResp({ app, maxBulkBytes: 0 }), { instanceOf: ConfigError });
  await t.throwsAsync(serveResp({ app, machines: ['nope'] }), { instanceOf: ConfigError });
  await t.throwsAsync(serveResp({ app, host: ' ' }), { instanceOf: ConfigError });
  const first = connect(port, '127.0.0.1');
  await once(first, 'connect');
  await new Promise((r) => setTimeout(r, 100));
  t.is(await cli(port, 'PING'), 'ERR max number of clients reached');
  first.destroy();
});

test('README "Quick start: Redis protocol": every redis-cli line runs as written', async (t) => {
  const { port } = await harness(t);
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('\n## Quick start: Redis protocol');
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(start))![1]!;
  const lines = block.split('\n').filter((l) => l.startsWith('redis-cli -p 6380 '));
  t.true(lines.length >= 8);
  const outputs: string[] = [];
  for (const line of lines) {
    const command = line.replace(/\s+#.*$/, '').replace('-p 6380', `-p ${port}`);
    const r = await new Promise<string>((resolve) => execFile('sh', ['-c', command], (_e, stdout) => resolve(stdout.trim())));
    outputs.push(r);
  }
  t.deepEqual(outputs.slice(0, 7), ['OK', 'hello', 'OK', '42', '42\n2', 'greeting', 'OK']);
  t.regex(outputs[7]!, /db0:keys=3,.*machine=kv1/);
  t.deepEqual(outputs.slice(8), ['OK', '60']);
});

test('slow client: a command that does not arrive whole within commandTimeoutMs is cut off', async (t) => {
  const { port } = await harness(t, { commandTimeoutMs: 300 });
  const started = Date.now();
  const { received, closedByServer } = await rawExchange(port, '*1\r\n$4\r\nPI');
  t.true(closedByServer);
  t.is(received, '');
  t.true(Date.now() - started >= 250);
  t.is(await cli(port, 'PING'), 'PONG');
});

test('KEYS and SCAN see every key of a store larger than one page (the KV page maximum is 10,000, the default 1,000)', async (t) => {
  const { port } = await harness(t);
  const args: string[] = [];
  for (let i = 0; i < 2500; i++) args.push(`k${String(i).padStart(5, '0')}`, String(i));
  t.is(await cli(port, 'MSET', ...args), 'OK');
  t.is((await cli(port, 'KEYS', 'k*')).split('\n').length, 2500);
  const scanned = new Set((await redisCli(port, ['--scan'])).stdout.trim().split('\n'));
  t.is(scanned.size, 2500);
  t.is((await cli(port, 'SCAN', '0', 'COUNT', '50000')).split('\n').length, 1 + 2500, 'COUNT above the page maximum is capped, not refused');
});
