/**
 * Review 2: WATCH against Redis 7 semantics. A watched key whose expiry changes (EXPIRE,
 * PERSIST) is a modified key in Redis and aborts EXEC; here only the value is compared, so EXEC
 * applies. And WATCH of more than 50,000 keys is refused with a DECODE_ERROR about "op batch:
 * more than 100000 ops" (its read is a has+lookup pair per key), which Redis accepts.
 */
import test, { type ExecutionContext } from 'ava';
import { join } from 'node:path';
import { startApplication } from '../src/engine/application.js';
import { kvTree } from '../src/kv/demo.js';
import { serveResp, silentLogger } from '../src/index.js';
import { tempDir } from './fixtures/serve-helpers.js';
import { rawExchange } from './fixtures/resp-helpers.js';

const cmd = (...a: string[]): Buffer =>
  Buffer.concat([Buffer.from(`*${a.length}\r\n`), ...a.flatMap((x) => [Buffer.from(`$${Buffer.byteLength(x)}\r\n${x}\r\n`)])]);

async function up(t: Parameters<typeof tempDir>[0]) {
  const app = await startApplication(kvTree(), { db: join(tempDir(t), 'w.db'), logger: silentLogger });
  const ep = await serveResp({ app, port: 0 });
  t.teardown(async () => { await ep.close({ graceMs: 100 }); await app.stop(); });
  return ep.port;
}
const send = async (port: number, ...cmds: Buffer[]): Promise<string> => (await rawExchange(port, Buffer.concat([...cmds, cmd('PING')]), (r) => r.endsWith('+PONG\r\n'))).received;

/** A raw connection kept open (the watching client): what it received so far, and a wait for its end. */
async function connection(t: ExecutionContext, port: number) {
  const { createConnection } = await import('node:net');
  const sock = createConnection({ port, host: '127.0.0.1' });
  t.teardown(() => sock.destroy());
  let received = '';
  sock.on('data', (d) => (received += d.toString('latin1')));
  const wait = async (s: string) => { for (let i = 0; i < 400 && !received.endsWith(s); i++) await new Promise((r) => setTimeout(r, 5)); };
  return { sock, got: () => received, wait };
}

test('EXPIRE of a watched key by another client aborts EXEC (Redis 7: nil array)', async (t) => {
  const port = await up(t);
  await send(port, cmd('SET', 'e', '1'));
  const { sock, got, wait } = await connection(t, port);
  sock.write(cmd('WATCH', 'e'));
  await wait('+OK\r\n');
  t.is(await send(port, cmd('EXPIRE', 'e', '1000')), ':1\r\n+PONG\r\n');
  sock.write(Buffer.concat([cmd('MULTI'), cmd('SET', 'e', '2'), cmd('EXEC')]));
  await wait('\r\n*-1\r\n');
  t.is(got(), '+OK\r\n+OK\r\n+QUEUED\r\n*-1\r\n', 'redis-server 7 answers the nil array: the key was modified');
});

test('PERSIST of a watched key by another client aborts EXEC (Redis 7: nil array)', async (t) => {
  const port = await up(t);
  await send(port, cmd('SET', 'p', '1', 'EX', '1000'));
  const { sock, got, wait } = await connection(t, port);
  sock.write(cmd('WATCH', 'p'));
  await wait('+OK\r\n');
  t.is(await send(port, cmd('PERSIST', 'p')), ':1\r\n+PONG\r\n');
  sock.write(Buffer.concat([cmd('MULTI'), cmd('SET', 'p', '2'), cmd('EXEC')]));
  await wait('\r\n*-1\r\n');
  t.is(got(), '+OK\r\n+OK\r\n+QUEUED\r\n*-1\r\n');
});

test('WATCH of 60,000 keys is accepted (Redis has no limit) and EXEC then applies', async (t) => {
  const port = await up(t);
  const keys = Array.from({ length: 60_000 }, (_, i) => `k${i}`);
  const out = await send(port, cmd('WATCH', ...keys), cmd('MULTI'), cmd('SET', 'k1', 'v'), cmd('EXEC'));
  t.is(out, '+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n+PONG\r\n');
});
