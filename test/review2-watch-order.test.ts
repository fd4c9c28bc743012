/**
 * Review 2: WATCH/EXEC pipelined in one write. EXEC with a WATCH waits for the WATCH reads
 * before it sends its batch, but the commands after it in the pipeline are sent at once, so
 * they reach the machine BEFORE the transaction: a GET after EXEC reads the old value, and a
 * SET after EXEC is overwritten by the transaction (a lost write, still lost after a restart).
 */
import test from 'ava';
import { join } from 'node:path';
import { startApplication } from '../src/engine/application.js';
import { kvTree } from '../src/kv/demo.js';
import { serveResp, silentLogger } from '../src/index.js';
import { tempDir } from './fixtures/serve-helpers.js';
import { rawExchange } from './fixtures/resp-helpers.js';

const cmd = (...a: string[]): Buffer =>
  Buffer.concat([Buffer.from(`*${a.length}\r\n`), ...a.flatMap((x) => [Buffer.from(`$${Buffer.byteLength(x)}\r\n${x}\r\n`)])]);

async function up(db: string) {
  const app = await startApplication(kvTree(), { db, logger: silentLogger });
  const ep = await serveResp({ app, port: 0 });
  return { app, port: ep.port, close: async () => { await ep.close({ graceMs: 100 }); await app.stop(); } };
}

test('pipelined WATCH k, MULTI, SET k 1, EXEC, GET k: GET reads what EXEC wrote', async (t) => {
  const s = await up(join(tempDir(t), 'w.db'));
  t.teardown(s.close);
  const wire = Buffer.concat([cmd('SET', 'k', '0'), cmd('WATCH', 'k'), cmd('MULTI'), cmd('SET', 'k', '1'), cmd('EXEC'), cmd('GET', 'k'), cmd('PING')]);
  const { received } = await rawExchange(s.port, wire, (r) => r.includes('PONG'));
  t.is(received, '+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n$1\r\n1\r\n+PONG\r\n');
});

test('pipelined WATCH k, MULTI, SET k 1, EXEC, SET k 2: EXEC is not aborted by the SET sent after it, and that SET wins, also after a restart', async (t) => {
  const db = join(tempDir(t), 'w2.db');
  let s = await up(db);
  const wire = Buffer.concat([cmd('WATCH', 'k'), cmd('MULTI'), cmd('SET', 'k', '1'), cmd('EXEC'), cmd('SET', 'k', '2'), cmd('PING')]);
  const { received } = await rawExchange(s.port, wire, (r) => r.includes('PONG'));
  const live = await rawExchange(s.port, Buffer.concat([cmd('GET', 'k'), cmd('PING')]), (r) => r.includes('PONG'));
  await s.close();
  s = await up(db);
  t.teardown(s.close);
  const after = await rawExchange(s.port, Buffer.concat([cmd('GET', 'k'), cmd('PING')]), (r) => r.includes('PONG'));
  t.is(received, '+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n+OK\r\n+PONG\r\n', 'nothing wrote k between WATCH and EXEC: EXEC applies');
  t.is(live.received, '$1\r\n2\r\n+PONG\r\n', 'SET k 2 was sent after EXEC: it must be applied after it');
  t.is(after.received, '$1\r\n2\r\n+PONG\r\n');
});

test('pipelined WATCH other, MULTI, SET k 1, EXEC, SET k 2: the SET sent last is not overwritten by the transaction (lost write)', async (t) => {
  const db = join(tempDir(t), 'w3.db');
  let s = await up(db);
  const wire = Buffer.concat([cmd('WATCH', 'other'), cmd('MULTI'), cmd('SET', 'k', '1'), cmd('EXEC'), cmd('SET', 'k', '2'), cmd('PING')]);
  const { received } = await rawExchange(s.port, wire, (r) => r.includes('PONG'));
  t.is(received, '+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n+OK\r\n+PONG\r\n');
  await s.close();
  s = await up(db);
  t.teardown(s.close);
  const after = await rawExchange(s.port, Buffer.concat([cmd('GET', 'k'), cmd('PING')]), (r) => r.includes('PONG'));
  t.is(after.received, '$1\r\n2\r\n+PONG\r\n', 'SET k 2 (acknowledged after EXEC) was overwritten by the EXEC sent before it');
});

test('WATCH answered first, then MULTI, SET k 1, EXEC, GET k in one write (what pipelining clients send): GET reads 1', async (t) => {
  const s = await up(join(tempDir(t), 'w4.db'));
  t.teardown(s.close);
  const { createConnection } = await import('node:net');
  const sock = createConnection({ port: s.port, host: '127.0.0.1' });
  t.teardown(() => sock.destroy());
  let got = '';
  sock.on('data', (d) => (got += d.toString('latin1')));
  const wait = async (end: string) => { for (let i = 0; i < 400 && !got.endsWith(end); i++) await new Promise((r) => setTimeout(r, 5)); };
  sock.write(Buffer.concat([cmd('SET', 'k', '0'), cmd('WATCH', 'k')]));
  await wait('+OK\r\n+OK\r\n');
  await new Promise((r) => setTimeout(r, 50));
  sock.write(Buffer.concat([cmd('MULTI'), cmd('SET', 'k', '1'), cmd('EXEC'), cmd('GET', 'k'), cmd('PING')]));
  await wait('+PONG\r\n');
  t.is(got, '+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n$1\r\n1\r\n+PONG\r\n');
});
