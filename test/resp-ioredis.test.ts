/**
 * A Node Redis client, unchanged (ioredis 5), against the RESP listener: commands, pipelining
 * (replies in request order), MULTI/EXEC, an optimistic transaction with WATCH that another
 * client's write aborts, SCAN through scanStream, errors that leave the connection usable.
 */
import test from 'ava';
import { Redis } from 'ioredis';
import { join } from 'node:path';
import { startApplication } from '../src/engine/application.js';
import { kvTree } from '../src/kv/demo.js';
import { serveResp, silentLogger } from '../src/index.js';
import { tempDir } from './fixtures/serve-helpers.js';

async function connected(t: Parameters<typeof tempDir>[0]): Promise<{ a: Redis; b: Redis }> {
  const app = await startApplication(kvTree(), { db: join(tempDir(t), 'ioredis.db'), logger: silentLogger });
  const ep = await serveResp({ app, port: 0 });
  const a = new Redis({ port: ep.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
  const b = new Redis({ port: ep.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
  await a.connect();
  await b.connect();
  t.teardown(async () => {
    a.disconnect();
    b.disconnect();
    await ep.close({ graceMs: 100 });
    await app.stop();
  });
  return { a, b };
}

test('ioredis: strings, counters, expiry, and a pipeline of 500 commands answered in order', async (t) => {
  const { a } = await connected(t);
  t.is(await a.set('greeting', 'hello'), 'OK');
  t.is(await a.get('greeting'), 'hello');
  t.is(await a.incrby('n', 5), 5);
  t.is(await a.set('s', 'v', 'EX', 100), 'OK');
  t.is(await a.expire('s', 50, 'GT'), 0, 'GT: 50 s is not later than 100 s');
  t.is(await a.expire('s', 50, 'LT'), 1);
  t.true((await a.ttl('s')) <= 50);
  t.deepEqual(await a.mget('greeting', 'nope', 'n'), ['hello', null, '5']);
  const p = a.pipeline();
  for (let i = 0; i < 250; i++) p.set(`p${i}`, String(i)).incr('counter');
  const out = (await p.exec())!;
  t.is(out.length, 500);
  t.true(out.every(([err]) => err === null));
  t.deepEqual(out.slice(-2).map(([, v]) => v), ['OK', 250], 'replies in request order');
  t.is(await a.dbsize(), 254);
});

test('ioredis: MULTI/EXEC applies atomically; WATCH aborts EXEC (null) when another client writes the key, and the retry succeeds', async (t) => {
  const { a, b } = await connected(t);
  await a.set('balance', '100');
  t.deepEqual(await a.multi().decrby('balance', 30).get('balance').exec(), [[null, 70], [null, '70']]);
  // Optimistic locking, as ioredis users write it.
  const withdraw = async (amount: number, meddle: boolean): Promise<boolean> => {
    await a.watch('balance');
    const current = Number(await a.get('balance'));
    if (meddle) await b.set('balance', '1000');
    const result = await a.multi().set('balance', String(current - amount)).exec();
    return result !== null;
  };
  t.false(await withdraw(20, true), 'aborted: the watched key changed');
  t.is(await a.get('balance'), '1000', 'nothing of the aborted transaction applied');
  t.true(await withdraw(20, false));
  t.is(await a.get('balance'), '980');
});

test('ioredis: scanStream walks every key once; an unknown command is an error and the connection goes on', async (t) => {
  const { a } = await connected(t);
  await a.mset(Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`key:${i}`, String(i)])));
  const seen = new Set<string>();
  for await (const batch of a.scanStream({ match: 'key:*', count: 50 })) for (const k of batch as string[]) seen.add(k);
  t.is(seen.size, 300);
  await t.throwsAsync(a.call('NOSUCHCOMMAND', 'x'), { message: /unknown command/i });
  t.is(await a.ping(), 'PONG');
  t.is(await a.append('key:1', 'a'), 2);
  await t.throwsAsync(a.incr('key:1'), { message: /not an integer/ });
  t.is(await a.get('key:1'), '1a', 'a refused INCR changes nothing');
});
