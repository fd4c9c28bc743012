import test from 'ava';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { startApplication } from '../src/engine/application.js';
import { kvTree } from '../src/kv/demo.js';
import { serveResp, silentLogger } from '../src/index.js';
import { tempDir } from './fixtures/serve-helpers.js';
import { rawExchange } from './fixtures/resp-helpers.js';

test('a pipeline that arrives in one read is one batch, one commit, and its replies one socket write, in order', async (t) => {
  const app = await startApplication(kvTree(), { db: join(tempDir(t), 'resp.db'), logger: silentLogger });
  const ep = await serveResp({ app, port: 0 });
  t.teardown(async () => {
    await ep.close({ graceMs: 100 });
    await app.stop();
  });
  const writes: string[] = [];
  ep.server.on('connection', (socket: Socket) => {
    const write = socket.write.bind(socket) as (chunk: Buffer) => boolean;
    (socket as { write: unknown }).write = (chunk: Buffer) => {
      writes.push(chunk.toString('latin1'));
      return write(chunk);
    };
  });
  const n = 16;
  let wire = '';
  for (let i = 0; i < n; i++) wire += `*3\r\n$3\r\nSET\r\n$${`k${i}`.length}\r\nk${i}\r\n$2\r\nv${i % 10}\r\n`;
  wire += '*2\r\n$3\r\nGET\r\n$2\r\nk7\r\n';
  const batchesBefore = app.metrics.batchSize.count;
  const loggedBefore = app.metrics.loggedRequests;
  const { received } = await rawExchange(ep.port, wire, (r) => r.endsWith('$2\r\nv7\r\n'));
  t.is(received, '+OK\r\n'.repeat(n) + '$2\r\nv7\r\n', 'every reply, in request order');
  t.is(app.metrics.loggedRequests - loggedBefore, n);
  t.is(app.metrics.batchSize.count - batchesBefore, 1, 'the whole read went into one batch');
  t.deepEqual(writes, [received], 'one write for the whole batch, not one per reply');
});
