import test from 'ava';
import { cbor } from '../src/encoding/cbor.js';
import { bearerChecker } from '../src/http/auth.js';
import { serve } from '../src/http/server.js';
import { ConfigError } from '../src/errors.js';
import { postJson, rawConnect, request, startHarness } from './fixtures/serve-helpers.js';

const TOKEN = 's3cret-token';

test('bearerChecker accepts only the exact token, scheme case-insensitive', (t) => {
  const ok = bearerChecker(TOKEN);
  t.true(ok(`Bearer ${TOKEN}`));
  t.true(ok(`bearer ${TOKEN}`));
  t.true(ok(`BEARER  ${TOKEN} `));
  for (const bad of [undefined, '', 'Bearer', 'Bearer ', `Basic ${TOKEN}`, `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, `Bearer ${TOKEN} extra`, TOKEN, `Bearer${TOKEN}`]) {
    t.false(ok(bad), String(bad));
  }
});

test('with a token: every route but /healthz needs it (401 + WWW-Authenticate), the right one passes', async (t) => {
  const h = await startHarness(t, {}, { token: TOKEN });
  const auth = { authorization: `Bearer ${TOKEN}` };

  const hz = await request(h.url, '/healthz');
  t.is(hz.status, 200);

  const routes: [string, string, Record<string, string>?, string?][] = [
    ['GET', '/v1/machines'],
    ['GET', '/metrics'],
    ['POST', '/v1/checkpoint'],
    ['POST', '/v1/machines/kv1/call', { 'content-type': 'application/json' }, '{"op":"store","key":"x","value":1}'],
    ['GET', '/no-such-route'],
  ];
  for (const [method, path, headers, body] of routes) {
    const missing = await request(h.url, path, { method, headers, body });
    t.is(missing.status, 401, `${method} ${path} without token`);
    t.is(missing.headers.get('www-authenticate'), 'Bearer realm="ssm"');
    t.is(missing.json().error.code, 'UNAUTHORIZED');
    const wrong = await request(h.url, path, { method, headers: { ...headers, authorization: 'Bearer nope' }, body });
    t.is(wrong.status, 401, `${method} ${path} with a wrong token`);
    t.is(wrong.headers.get('www-authenticate'), 'Bearer realm="ssm", error="invalid_token"');
  }
  // Nothing got through without the token.
  t.is(await h.app.call('kv1', { op: 'has', key: 'x' }), false);

  t.is((await request(h.url, '/v1/machines', { headers: auth })).status, 200);
  t.is((await request(h.url, '/metrics', { headers: auth })).status, 200);
  t.is((await request(h.url, '/v1/checkpoint', { method: 'POST', headers: auth })).status, 200);
  t.is((await request(h.url, '/no-such-route', { headers: auth })).status, 404);
  t.is((await postJson(h.url, '/v1/machines/kv1/call', { op: 'store', key: 'x', value: 1 }, auth)).status, 200);
  const reply = await request(h.url, '/v1/machines/kv1/call', { method: 'POST', headers: { ...auth, 'content-type': 'application/cbor' }, body: cbor.encode({ op: 'has', key: 'x' }) });
  t.is(reply.status, 200);
  t.is(await h.app.call('kv1', { op: 'lookup', key: 'x' }), 1);
});

test('an unauthenticated oversized body is refused with 401 without being read', async (t) => {
  const h = await startHarness(t, {}, { token: TOKEN, maxBodyBytes: 16 });
  const r = await postJson(h.url, '/v1/machines/kv1/call', { op: 'store', key: 'x', value: 'far more than sixteen bytes' });
  t.is(r.status, 401);
});

test('without a token every route is open', async (t) => {
  const h = await startHarness(t);
  t.is((await request(h.url, '/v1/machines')).status, 200);
  t.is((await request(h.url, '/v1/machines', { headers: { authorization: 'Bearer anything' } })).status, 200);
});

test('serve rejects bad options with ConfigError', async (t) => {
  const h = await startHarness(t);
  await t.throwsAsync(serve({ app: h.app, port: 0, token: '' }), { instanceOf: ConfigError });
  await t.throwsAsync(serve({ app: h.app, port: 70000 }), { instanceOf: ConfigError });
  await t.throwsAsync(serve({ app: h.app, port: 0, maxBodyBytes: 0 }), { instanceOf: ConfigError });
  await t.throwsAsync(serve({ app: h.app, port: 0, maxConnections: 1.5 }), { instanceOf: ConfigError });
});

test('a port already in use rejects with the listen error', async (t) => {
  const h = await startHarness(t);
  await t.throwsAsync(serve({ app: h.app, port: h.endpoint.port }), { code: 'EADDRINUSE' });
});

test('a request refused before its body is read gets Connection: close (the body is not drained)', async (t) => {
  const h = await startHarness(t, {}, { token: TOKEN });
  const c = await rawConnect(h.url);
  c.write('POST /v1/machines/kv1/call HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"op":');
  const raw = await c.closed;
  t.regex(raw, /^HTTP\/1\.1 401 /);
  t.regex(raw, /\r\nConnection: close\r\n/i);
});
