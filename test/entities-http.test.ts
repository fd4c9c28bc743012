/** Entities over HTTP: `POST /v1/machines/<family>/<key>/call` for any key, `GET /v1/entities/<family>` paged. */
import test from 'ava';
import { join } from 'node:path';
import { startApplication } from '../src/engine/application.js';
import { serve } from '../src/http/server.js';
import { entities } from '../src/model/entities.js';
import { supervisor, worker } from '../src/model/tree.js';
import { counterMachine } from './fixtures/entity-machines.js';
import { postJson, request, tempDir } from './fixtures/serve-helpers.js';

async function harness(t: Parameters<typeof tempDir>[0]) {
  const machine = counterMachine();
  const app = await startApplication(supervisor('one_for_one', [worker('fixed', machine), entities('account', machine)]), { db: join(tempDir(t), 'e.db'), logger: false });
  const endpoint = await serve({ app, port: 0 });
  t.teardown(async () => {
    await endpoint.close({ graceMs: 100 });
    await app.stop();
  });
  return { app, url: endpoint.url };
}

test('POST /v1/machines/account/42/call reaches entity 42; keys with / or anything else, raw or percent-encoded', async (t) => {
  const { app, url } = await harness(t);
  const r = await postJson(url, '/v1/machines/account/42/call', { op: 'add', by: 5 });
  t.is(r.status, 200);
  t.is(r.json(), 5);
  t.is(await app.call('account/42', { op: 'get' }), 5);
  t.is((await postJson(url, '/v1/machines/account/a/b/call', { op: 'add', by: 1 })).json(), 1);
  t.is((await postJson(url, '/v1/machines/account/a%2Fb/call', { op: 'add', by: 1 })).json(), 2, '%2F is the same key as /');
  t.is((await postJson(url, `/v1/machines/account/${encodeURIComponent('é ?#&/call')}/call`, { op: 'add', by: 3 })).json(), 3);
  t.is(await app.call('account/é ?#&/call', { op: 'get' }), 3);
  t.is((await postJson(url, '/v1/machines/fixed/call', { op: 'add', by: 7 })).json(), 7, 'fixed machines as before');
  const unknown = await postJson(url, '/v1/machines/nofamily/1/call', { op: 'get' });
  t.is(unknown.status, 404);
  t.is((unknown.json() as { error: { code: string } }).error.code, 'UNKNOWN_MACHINE');
  t.is((await postJson(url, `/v1/machines/account/${'x'.repeat(1025)}/call`, { op: 'get' })).status, 404, 'a key over 1 KiB');
});

test('GET /v1/entities/account lists keys in order with prefix, after and limit, and says where the next page starts', async (t) => {
  const { app, url } = await harness(t);
  for (const k of ['a1', 'a2', 'a3', 'b1', 'a/x']) await app.call(`account/${k}`, { op: 'add', by: 1 });
  const all = await request(url, '/v1/entities/account');
  t.is(all.status, 200);
  const body = all.json() as { entities: { key: string; seq: number; awake: boolean; snapshotSeq: number }[]; next: string | null };
  t.deepEqual(body.entities.map((e) => e.key), ['a/x', 'a1', 'a2', 'a3', 'b1']);
  t.deepEqual(body.entities[0], { key: 'a/x', seq: 1, snapshotSeq: 0, awake: true });
  t.is(body.next, null);
  const page = (await request(url, '/v1/entities/account?prefix=a&limit=2')).json() as typeof body;
  t.deepEqual(page.entities.map((e) => e.key), ['a/x', 'a1']);
  t.is(page.next, 'a1');
  const next = (await request(url, `/v1/entities/account?prefix=a&limit=2&after=${page.next}`)).json() as typeof body;
  t.deepEqual(next.entities.map((e) => e.key), ['a2', 'a3']);
  t.is((await request(url, '/v1/entities/account?limit=0')).status, 400);
  t.is((await request(url, '/v1/entities/account?limit=abc')).status, 400);
  t.is((await request(url, '/v1/entities/nope')).status, 404);
  t.is((await request(url, '/v1/entities/account', { method: 'POST' })).status, 405);
});
