/**
 * Review 2: WATCH's guard carries the watched values themselves, and EXEC's batch is logged with
 * it: every EXEC (applied or aborted) after WATCH of a big key writes that whole value to the
 * request log again. WATCH big (a 900 KB value), MULTI, INCR counter, EXEC logs ~900 KB for an
 * INCR; ten such transactions 9 MB. A digest of the value (sha256 of its CBOR) would guard as well.
 */
import test from 'ava';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { startApplication } from '../src/engine/application.js';
import { kvTree } from '../src/kv/demo.js';
import { serveResp, silentLogger } from '../src/index.js';
import { tempDir } from './fixtures/serve-helpers.js';
import { rawExchange } from './fixtures/resp-helpers.js';

const cmd = (...a: string[]): Buffer =>
  Buffer.concat([Buffer.from(`*${a.length}\r\n`), ...a.flatMap((x) => [Buffer.from(`$${Buffer.byteLength(x)}\r\n${x}\r\n`)])]);

test('EXEC after WATCH of a 900 KB key logs far less than the watched value', async (t) => {
  const db = join(tempDir(t), 'w.db');
  const app = await startApplication(kvTree(), { db, logger: silentLogger, snapshot: { every: 0, everyBytes: 0 } });
  const ep = await serveResp({ app, port: 0 });
  const send = async (...c: Buffer[]) => (await rawExchange(ep.port, Buffer.concat([...c, cmd('PING')]), (r) => r.endsWith('+PONG\r\n'))).received;
  await send(cmd('SET', 'big', 'x'.repeat(900_000)));
  const logged = (): number => {
    const d = new Database(db, { readonly: true });
    try {
      return d.prepare(`SELECT coalesce(sum(size), 0) FROM request_log WHERE machine = 'kv1'`).pluck().get() as number;
    } finally {
      d.close();
    }
  };
  const before = logged();
  for (let i = 0; i < 10; i++) t.regex(await send(cmd('WATCH', 'big'), cmd('MULTI'), cmd('INCR', 'counter'), cmd('EXEC')), /\*1\r\n:\d+\r\n/);
  const grown = logged() - before;
  await ep.close({ graceMs: 50 });
  await app.stop();
  t.true(grown < 100_000, `ten guarded INCRs logged ${grown} bytes`);
});
