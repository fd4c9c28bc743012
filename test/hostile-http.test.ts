/**
 * Hostile input over HTTP: a few hundred fast-check bodies (random bytes, mutated CBOR, mangled
 * JSON) checked against a model, deep JSON, path tricks that must never reach the filesystem,
 * every protected route without the token, slow and half-sent requests and a connection flood
 * while a legitimate client keeps being served. The KV state only ever changes as the model
 * says, every refusal is a 4xx JSON error with a code, and the server stays up.
 */
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import net from 'node:net';
import { startApplication, type App } from '../src/engine/application.js';
import { decodeCbor, cbor } from '../src/encoding/cbor.js';
import { assertNoAmplifyingTags } from '../src/encoding/cbor-guard.js';
import { parseUntrustedJson } from '../src/encoding/json.js';
import { kvMachine, validateKvInput, type KvTable } from '../src/kv/kv-machine.js';
import { serve, type HttpEndpoint } from '../src/http/server.js';
import { kvTree, tempDb } from './helpers/persistence-kv.js';
import { LONG, applyModel, kvDigest, modelDigest, sleep } from './helpers/faults-util.js';

/** A KV state as a plain Map: kvStep works on any KvTable. */
type MapState = Map<string, unknown> & KvTable;

const TOKEN = 'faults-test-token';
const AUTH = { authorization: `Bearer ${TOKEN}` };

async function setup(t: ExecutionContext, extra: Partial<Parameters<typeof serve>[0]> = {}): Promise<{ app: App; http: HttpEndpoint }> {
  // The machine ssm serve runs: no deliberate crash.
  const app = await startApplication(kvTree(['kv1'], kvMachine()), { db: tempDb(t, 'ssm-hostile-http-'), durability: 'normal', logger: false });
  const http = await serve({ app, port: 0, token: TOKEN, maxBodyBytes: 4096, bodyTimeoutMs: 400, headersTimeoutMs: 600, requestTimeoutMs: 1500, ...extra });
  t.teardown(async () => {
    await http.close({ graceMs: 100 });
    await app.stop();
  });
  return { app, http };
}

interface Reply {
  status: number;
  type: string;
  body: Buffer;
}

async function post(http: HttpEndpoint, path: string, type: string, body: Uint8Array, headers: Record<string, string> = AUTH): Promise<Reply> {
  const res = await fetch(`${http.url}${path}`, { method: 'POST', headers: { 'content-type': type, ...headers }, body: Buffer.from(body) });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: Buffer.from(await res.arrayBuffer()) };
}

function isTypedJsonError(r: Reply): boolean {
  if (!r.type.startsWith('application/json')) return false;
  const parsed = JSON.parse(r.body.toString('utf8')) as { error?: { code?: unknown } };
  return typeof parsed.error?.code === 'string';
}

test('fuzz the call endpoint: random and mutated CBOR and JSON bodies; 200 exactly when the model accepts, else a 4xx JSON error; state as the model says', async (t) => {
  const { app, http } = await setup(t);
  const model: MapState = new Map();
  for (let i = 0; i < 10; i++) {
    await app.call('kv1', { op: 'store', key: `s${i}`, value: i });
    model.set(`s${i}`, i);
  }
  const statuses = new Map<number, number>();
  const body = fc.oneof(
    fc.record({ type: fc.constant('application/cbor'), bytes: fc.uint8Array({ maxLength: 40 }) }),
    fc.record({ type: fc.constant('application/cbor'), bytes: fc.tuple(fc.record({ op: fc.constantFrom('store', 'lookup', 'has', 'size', 'delete'), key: fc.string({ maxLength: 4 }), value: fc.integer() }), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([v, at, byte]) => {
      const b = Buffer.from(cbor.encode(v));
      b[at % b.length] = byte;
      return new Uint8Array(b);
    }) }),
    fc.record({ type: fc.constant('application/json'), bytes: fc.tuple(fc.json(), fc.nat(), fc.string({ maxLength: 3 })).map(([j, at, s]) => Buffer.from(j.slice(0, at % (j.length + 1)) + s + j.slice(at % (j.length + 1)))) }),
    fc.record({ type: fc.constant('application/json'), bytes: fc.record({ op: fc.constantFrom('store', 'has', 'nope'), key: fc.oneof(fc.string({ maxLength: 4 }), fc.integer()), value: fc.jsonValue({ maxDepth: 2 }) }).map((v) => Buffer.from(JSON.stringify(v))) }),
  );
  await fc.assert(
    fc.asyncProperty(body, async ({ type, bytes }) => {
      let expected: unknown = undefined;
      let accepted = false;
      try {
        const input = validateKvInput(type === 'application/cbor' ? (assertNoAmplifyingTags(bytes), decodeCbor(bytes)) : parseUntrustedJson(new TextDecoder('utf-8', { fatal: true }).decode(bytes)));
        accepted = true;
        expected = applyModel(model, input);
      } catch {
        accepted = false;
      }
      const r = await post(http, '/v1/machines/kv1/call', type, bytes);
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      if (accepted) {
        t.is(r.status, 200, `model accepts ${Buffer.from(bytes).toString('hex')}; got ${r.body.toString()}`);
        t.deepEqual(type === 'application/cbor' ? decodeCbor(r.body) : JSON.parse(r.body.toString()), expected ?? null);
      } else {
        t.true(r.status >= 400 && r.status < 500, `status ${r.status} for ${Buffer.from(bytes).toString('hex')}`);
        t.true(isTypedJsonError(r));
      }
    }),
    { numRuns: LONG ? 5000 : 400 },
  );
  t.log(JSON.stringify(Object.fromEntries(statuses)));
  t.true((statuses.get(400) ?? 0) > 50);
  t.is(await kvDigest(app), modelDigest(new Map([['kv1', model]])));
  // Nothing a client sent crashed the served machine: restart intensity cannot be exhausted.
  const root = app.status();
  t.true(root.kind === 'supervisor' && root.children.every((c) => c.kind === 'worker' && c.restarts === 0 && c.status === 'running'));
});

test('deep JSON and JSON __proto__ keys: typed errors, state untouched', async (t) => {
  const { app, http } = await setup(t, { maxBodyBytes: 1024 * 1024 });
  await app.call('kv1', { op: 'store', key: 'a', value: 1 });
  const before = await kvDigest(app);
  const cases: [string, string][] = [
    ['deep array', '['.repeat(200_000) + ']'.repeat(200_000)],
    ['deep value', `{"op":"store","key":"d","value":${'['.repeat(100_000)}${']'.repeat(100_000)}}`],
    ['deep object', `{"op":"store","key":"d","value":${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}}`],
    ['__proto__', '{"op":"store","key":"p","value":{"__proto__":{"polluted":true}}}'],
    ['__proto__ at top', '{"__proto__":{"op":"store","key":"p","value":1}}'],
    ['unterminated', '{"op":"store","key":"p","value":'],
    ['invalid UTF-8', '\u00ff'],
  ];
  for (const [label, json] of cases) {
    const bytes = label === 'invalid UTF-8' ? Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) : Buffer.from(json);
    const r = await post(http, '/v1/machines/kv1/call', 'application/json', bytes);
    t.true(isTypedJsonError(r), `${label}: ${r.status} ${r.body.toString().slice(0, 100)}`);
    const code = (JSON.parse(r.body.toString()) as { error: { code: string } }).error.code;
    // An input the log cannot encode (nesting too deep for the CBOR encoder) is refused before
    // step with ENCODE_ERROR; everything else here is a client error.
    t.true((r.status >= 400 && r.status < 500) || code === 'ENCODE_ERROR', `${label}: ${r.status} ${code}`);
  }
  t.is(({} as Record<string, unknown>)['polluted'], undefined);
  t.is(await kvDigest(app), before);
  t.is((await post(http, '/v1/machines/kv1/call', 'application/json', Buffer.from('{"op":"size"}'))).body.toString(), '1');
});

test('without the token every protected route is refused (401), whatever the method or path; /healthz stays open', async (t) => {
  const { app, http } = await setup(t);
  const before = await kvDigest(app);
  const paths = ['/v1/machines', '/v1/machines/kv1/call', '/v1/checkpoint', '/v1/checkpoint?name=kv1', '/metrics', '/v1/machines/nope/call', '/nope', '/v1/machines/kv1/call?x=1', '//v1/machines', '/v1/machines/../checkpoint'];
  for (const path of paths) {
    for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'HEAD']) {
      for (const headers of <Record<string, string>[]>[{}, { authorization: 'Bearer wrong' }, { authorization: `Basic ${TOKEN}` }, { authorization: `Bearer ${TOKEN}x` }, { authorization: `Bearer  ${TOKEN.slice(0, -1)}` }]) {
        const res = await fetch(`${http.url}${path}`, { method, headers: { ...headers, 'content-type': 'application/json' }, body: method === 'GET' || method === 'HEAD' ? undefined : '{"op":"store","key":"x","value":1}' });
        t.is(res.status, 401, `${method} ${path} ${JSON.stringify(headers)}`);
        await res.arrayBuffer();
      }
    }
  }
  t.is((await fetch(`${http.url}/healthz`)).status, 200);
  t.is(await kvDigest(app), before, 'nothing was written');
});

test('the server binds 127.0.0.1 unless told otherwise', async (t) => {
  // The machine ssm serve runs: no deliberate crash.
  const app = await startApplication(kvTree(['kv1'], kvMachine()), { db: ':memory:', logger: false });
  const http = await serve({ app, port: 0 });
  t.teardown(async () => {
    await http.close({ graceMs: 100 });
    await app.stop();
  });
  t.is(http.host, '127.0.0.1');
  t.deepEqual(http.server.address(), { address: '127.0.0.1', family: 'IPv4', port: http.port });
});

test.serial('paths with traversal and encodings never reach the filesystem: 404/400, no fs call made while serving them', async (t) => {
  const { app, http } = await setup(t);
  const touched: string[] = [];
  const names = ['openSync', 'readFileSync', 'statSync', 'existsSync', 'readdirSync', 'open', 'readFile', 'stat', 'createReadStream', 'realpathSync', 'accessSync', 'lstatSync'] as const;
  const originals = new Map<string, unknown>();
  const f = fs as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const n of names) {
    const orig = f[n]!;
    originals.set(n, orig);
    f[n] = function (this: unknown, ...args: unknown[]) {
      touched.push(`${n}(${String(args[0])})`);
      return orig.apply(this, args);
    };
  }
  const promiseOrig = fs.promises.open;
  fs.promises.open = ((...args: Parameters<typeof promiseOrig>) => {
    touched.push(`promises.open(${String(args[0])})`);
    return promiseOrig(...args);
  }) as typeof promiseOrig;
  syncBuiltinESMExports();
  t.teardown(() => {
    for (const [n, orig] of originals) f[n] = orig as (...a: unknown[]) => unknown;
    fs.promises.open = promiseOrig;
    syncBuiltinESMExports();
  });
  const paths = [
    '/v1/machines/..%2F..%2Fetc%2Fpasswd/call',
    '/v1/machines/..%252F..%252Fetc%252Fpasswd/call',
    '/v1/machines/%2e%2e%2f%2e%2e%2fetc%2fpasswd/call',
    '/v1/machines/%00/call',
    '/v1/machines/%ZZ/call',
    '/../../../../etc/passwd',
    '/v1/machines/kv1/../../../etc/passwd',
    '/etc/passwd',
    '/v1/machines/' + encodeURIComponent('/etc/passwd') + '/call',
    '/v1/machines/' + encodeURIComponent(process.cwd() + '/package.json') + '/call',
  ];
  for (const path of paths) {
    const r = await post(http, path, 'application/cbor', cbor.encode({ op: 'size' }));
    t.true(r.status === 404 || r.status === 400, `${path}: ${r.status}`);
    t.true(isTypedJsonError(r));
    t.false(r.body.toString().includes('root:'), 'no file content leaked');
  }
  t.deepEqual(touched, [], 'the server made no filesystem call for these requests');
  t.is(decodeCbor((await post(http, '/v1/machines/kv1/call', 'application/cbor', cbor.encode({ op: 'size' }))).body), 0);
  t.is(app.machines().length, 1);
});

/** Opens a raw socket, writes `data`, resolves with what the server sent and whether it closed. */
function rawRequest(http: HttpEndpoint, data: string, waitMs: number): Promise<{ response: string; closed: boolean; ms: number }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const s = net.connect(http.port, '127.0.0.1');
    let response = '';
    let closed = false;
    s.on('data', (c) => (response += c.toString()));
    s.on('close', () => {
      closed = true;
      resolve({ response, closed, ms: performance.now() - t0 });
    });
    s.on('error', () => {});
    s.write(data);
    setTimeout(() => {
      if (!closed) {
        s.destroy();
        resolve({ response, closed: false, ms: performance.now() - t0 });
      }
    }, waitMs);
  });
}

test('slow and half-sent requests and a connection flood: timed out or refused, while a legitimate client is served and state is untouched', async (t) => {
  const { app, http } = await setup(t, { maxConnections: 24 });
  await app.call('kv1', { op: 'store', key: 'a', value: 1 });
  const before = await kvDigest(app);
  const half = `POST /v1/machines/kv1/call HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/cbor\r\nContent-Length: 100\r\n\r\n\xa3\x62op`;
  const noHeaders = `POST /v1/machines/kv1/call HTTP/1.1\r\nHost: x\r\nAuthor`;
  const attacks = [
    ...Array.from({ length: 6 }, () => rawRequest(http, half, 5000)),
    ...Array.from({ length: 6 }, () => rawRequest(http, noHeaders, 5000)),
  ];
  // A flood of idle connections beyond the cap.
  const flood: net.Socket[] = [];
  const floodClosed: Promise<void>[] = [];
  for (let i = 0; i < 60; i++) {
    const s = net.connect(http.port, '127.0.0.1');
    s.on('error', () => {});
    floodClosed.push(new Promise((r) => s.on('close', () => r())));
    flood.push(s);
  }
  await sleep(200);
  // Meanwhile, a legitimate client: may be refused while the cap is reached, must get through once the attack times out.
  let served = 0;
  for (let i = 0; i < 40 && served < 5; i++) {
    try {
      const r = await post(http, '/v1/machines/kv1/call', 'application/cbor', cbor.encode({ op: 'size' }));
      if (r.status === 200) served++;
    } catch {
      // refused by the connection cap
    }
    await sleep(100);
  }
  t.true(served >= 5, 'the legitimate client was served while the attack went on');
  const results = await Promise.all(attacks);
  for (const r of results.slice(0, 6)) {
    t.true(r.closed, 'a half-sent body is cut off');
    if (r.response) t.regex(r.response, /^HTTP\/1\.1 408/);
    t.true(r.ms < 4000, `closed after ${Math.round(r.ms)} ms`);
  }
  for (const r of results.slice(6)) t.true(r.closed && r.ms < 4000, 'unfinished headers are cut off');
  for (const s of flood) s.destroy();
  await Promise.all(floodClosed);
  t.is(await kvDigest(app), before, 'no partial request changed anything');
  t.is(decodeCbor((await post(http, '/v1/machines/kv1/call', 'application/cbor', cbor.encode({ op: 'size' }))).body), 1);
});
