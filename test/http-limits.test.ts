import test from 'ava';
import { Agent, request as httpRequest } from 'node:http';
import { postJson, rawConnect, request, startHarness } from './fixtures/serve-helpers.js';

const head = (path: string, headers: Record<string, string | number>): string =>
  `POST ${path} HTTP/1.1\r\nHost: localhost\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;

const statusOf = (raw: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1]);
const bodyOf = (raw: string): any => JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));

test('413 for a declared Content-Length over the limit, before any body is sent; connection closed', async (t) => {
  const h = await startHarness(t, {}, { maxBodyBytes: 1024 });
  const c = await rawConnect(h.url);
  c.write(head('/v1/machines/kv1/call', { 'Content-Type': 'application/json', 'Content-Length': 1025 }));
  const raw = await c.closed;
  t.is(statusOf(raw), 413);
  t.regex(raw, /\r\nConnection: close\r\n/i);
  t.is(bodyOf(raw).error.code, 'PAYLOAD_TOO_LARGE');
  t.is(h.app.queueDepth, 0);
});

test('413 for a chunked body that grows past the limit: the server stops reading and closes', async (t) => {
  const h = await startHarness(t, {}, { maxBodyBytes: 1024 });
  const c = await rawConnect(h.url);
  c.write(head('/v1/machines/kv1/call', { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }));
  const chunk = 'x'.repeat(600);
  c.write(`${(600).toString(16)}\r\n${chunk}\r\n`);
  c.write(`${(600).toString(16)}\r\n${chunk}\r\n`);
  // The body is never finished: the reply must not depend on reading the rest.
  const raw = await c.closed;
  t.is(statusOf(raw), 413);
  t.is(bodyOf(raw).error.code, 'PAYLOAD_TOO_LARGE');
});

test('a body exactly at the limit is accepted', async (t) => {
  const h = await startHarness(t, {}, { maxBodyBytes: 1024 });
  const prefix = '{"op":"store","key":"k","value":"';
  const body = prefix + 'v'.repeat(1024 - prefix.length - 2) + '"}';
  t.is(body.length, 1024);
  const r = await request(h.url, '/v1/machines/kv1/call', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  t.is(r.status, 200);
  const over = await request(h.url, '/v1/machines/kv1/call', { method: 'POST', headers: { 'content-type': 'application/json' }, body: body + ' ' });
  t.is(over.status, 413);
});

test('the default body limit is 1 MiB', async (t) => {
  const h = await startHarness(t);
  const c = await rawConnect(h.url);
  c.write(head('/v1/machines/kv1/call', { 'Content-Type': 'application/cbor', 'Content-Length': 1024 * 1024 + 1 }));
  t.is(statusOf(await c.closed), 413);
  const ok = await rawConnect(h.url);
  ok.write(head('/v1/machines/kv1/call', { 'Content-Type': 'application/cbor', 'Content-Length': 1024 * 1024 }));
  // 1 MiB declared is accepted: the server waits for the body instead of refusing.
  await new Promise((r) => setTimeout(r, 200));
  t.is(ok.received(), '');
  ok.socket.destroy();
});

test('408 when the body does not arrive in time (slow or half-sent body)', async (t) => {
  const h = await startHarness(t, {}, { bodyTimeoutMs: 300 });
  const c = await rawConnect(h.url);
  c.write(head('/v1/machines/kv1/call', { 'Content-Type': 'application/json', 'Content-Length': 40 }));
  c.write('{"op":"st');
  const raw = await c.closed;
  t.is(statusOf(raw), 408);
  t.is(bodyOf(raw).error.code, 'REQUEST_TIMEOUT');
  t.is(h.app.queueDepth, 0);
});

test('a connection that never finishes its headers is closed (headersTimeout)', async (t) => {
  const h = await startHarness(t, {}, { headersTimeoutMs: 300, requestTimeoutMs: 600 });
  const c = await rawConnect(h.url);
  c.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ');
  const raw = await c.closed;
  t.is(statusOf(raw), 408);
});

test('Expect: 100-continue: an oversized body is refused before the client sends it; a small one is invited', async (t) => {
  const h = await startHarness(t, {}, { maxBodyBytes: 1024 });
  const big = await rawConnect(h.url);
  big.write(head('/v1/machines/kv1/call', { 'Content-Type': 'application/json', 'Content-Length': 5000, Expect: '100-continue' }));
  const raw = await big.closed;
  t.is(statusOf(raw), 413);
  t.notRegex(raw, /100 Continue/);

  const small = await rawConnect(h.url);
  const body = '{"op":"size"}';
  small.write(head('/v1/machines/kv1/call', { 'Content-Type': 'application/json', 'Content-Length': body.length, Expect: '100-continue' }));
  await small.waitFor(/^HTTP\/1\.1 100 Continue\r\n\r\n/);
  small.write(body);
  const reply = await small.waitFor(/\r\n\r\n0$/);
  t.regex(reply, /HTTP\/1\.1 200 OK/);
  small.socket.destroy();
});

test('connections beyond maxConnections are refused; keep-alive reuses connections', async (t) => {
  const h = await startHarness(t, {}, { maxConnections: 2 });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const get = (): Promise<{ status: number; reused: boolean }> =>
    new Promise((resolve, reject) => {
      const req = httpRequest(h.url + '/healthz', { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, reused: req.reusedSocket }));
      });
      req.on('error', reject);
      req.end();
    });
  t.deepEqual(await get(), { status: 200, reused: false });
  t.deepEqual(await get(), { status: 200, reused: true });

  // The agent holds one connection; one more fits, the third is dropped.
  const second = await rawConnect(h.url);
  second.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
  await second.waitFor(/"status":"ok"/);
  const third = await rawConnect(h.url);
  third.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
  t.is(await third.closed, '');
  second.socket.destroy();
  await second.closed;
  // Room again once one is gone.
  let r = await postJson(h.url, '/v1/machines/kv1/call', { op: 'size' }).catch(() => null);
  for (let i = 0; i < 20 && (!r || r.status !== 200); i++) {
    await new Promise((res) => setTimeout(res, 25));
    r = await postJson(h.url, '/v1/machines/kv1/call', { op: 'size' }).catch(() => null);
  }
  t.is(r?.status, 200);
});
