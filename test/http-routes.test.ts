import test from 'ava';
import { KV_STATE_VERSION } from '../src/kv/kv-machine.js';
import { decodeCbor, cbor } from '../src/encoding/cbor.js';
import { postJson, request, startHarness } from './fixtures/serve-helpers.js';

const CBOR = { 'content-type': 'application/cbor' };

test('listens on 127.0.0.1 by default and reports the real port', async (t) => {
  const h = await startHarness(t);
  t.is(h.endpoint.host, '127.0.0.1');
  t.true(h.endpoint.port > 0);
  t.is(h.url, `http://127.0.0.1:${h.endpoint.port}`);
});

test('JSON call: store then lookup, reply in JSON; writes are durable in the log', async (t) => {
  const h = await startHarness(t);
  const w = await postJson(h.url, '/v1/machines/kv1/call', { op: 'store', key: 'x', value: { a: [1, 2], s: 'é' } });
  t.is(w.status, 200);
  t.regex(w.headers.get('content-type')!, /^application\/json/);
  t.is(w.json(), null);
  const r = await postJson(h.url, '/v1/machines/kv1/call', { op: 'lookup', key: 'x' });
  t.is(r.status, 200);
  t.deepEqual(r.json(), { a: [1, 2], s: 'é' });
  t.is((await postJson(h.url, '/v1/machines/kv1/call', { op: 'size' })).json(), 1);
  t.deepEqual((await postJson(h.url, '/v1/machines/kv1/call', { op: 'entries' })).json(), [['x', { a: [1, 2], s: 'é' }]]);
  // Content-Type parameters and case do not matter.
  const p = await request(h.url, '/v1/machines/kv1/call', { method: 'POST', headers: { 'content-type': 'Application/JSON; charset=utf-8' }, body: '{"op":"has","key":"x"}' });
  t.is(p.status, 200);
  t.is(p.json(), true);
  t.deepEqual(await h.app.call('kv1', { op: 'lookup', key: 'x' }), { a: [1, 2], s: 'é' });
});

test('CBOR call: machine codec both ways, every CBOR value type intact', async (t) => {
  const h = await startHarness(t);
  const value = { big: 2n ** 70n, when: new Date(86_400_000), bytes: new Uint8Array([1, 2, 3]), map: new Map<unknown, unknown>([[1, 'one'], ['k', [true, null]]]) };
  const w = await request(h.url, '/v1/machines/kv2/call', { method: 'POST', headers: CBOR, body: cbor.encode({ op: 'store', key: 'v', value }) });
  t.is(w.status, 200);
  t.is(w.headers.get('content-type'), 'application/cbor');
  t.is(decodeCbor(w.body), null);
  const r = await request(h.url, '/v1/machines/kv2/call', { method: 'POST', headers: CBOR, body: cbor.encode({ op: 'lookup', key: 'v' }) });
  t.is(r.status, 200);
  t.deepEqual(decodeCbor(r.body), value);

  // The same value read over JSON: the documented lossy mapping.
  const j = await postJson(h.url, '/v1/machines/kv2/call', { op: 'lookup', key: 'v' });
  t.deepEqual(j.json(), { big: '1180591620717411303424', when: '1970-01-02T00:00:00.000Z', bytes: 'AQID', map: [[1, 'one'], ['k', [true, null]]] });
});

test('GET /v1/machines: tree and flat list with status, restarts, seq and snapshot seq', async (t) => {
  const h = await startHarness(t);
  await postJson(h.url, '/v1/machines/kv1/call', { op: 'store', key: 'a', value: 1 });
  await postJson(h.url, '/v1/machines/kv1/call', { op: 'store', key: 'b', value: 2 });
  t.is((await postJson(h.url, '/v1/machines/kv1/call', { op: 'lookup', key: 'crash' })).status, 500);
  const r = await request(h.url, '/v1/machines');
  t.is(r.status, 200);
  const body = r.json();
  t.is(body.tree.kind, 'supervisor');
  t.is(body.tree.name, 'root');
  t.deepEqual(body.tree.children.map((c: { name: string }) => c.name), ['kv1', 'kv2', 'gate', 'temp']);
  t.deepEqual(body.machines.map((m: { name: string }) => m.name), ['kv1', 'kv2', 'gate', 'temp']);
  const kv1 = body.machines[0];
  t.like(kv1, { name: 'kv1', supervisors: ['root'], status: 'running', restarts: 1, lastError: 'divide by zero', seq: 2, snapshotSeq: 0, version: KV_STATE_VERSION });
  t.like(body.machines[1], { name: 'kv2', status: 'running', restarts: 0, seq: 0 });
  t.is(body.queueDepth, 0);

  const c = await request(h.url, '/v1/checkpoint', { method: 'POST' });
  t.is(c.status, 200);
  t.deepEqual(c.json().snapshots.map((s: { machine: string; seq: number }) => [s.machine, s.seq]), [['kv1', 2]]);
  const after = (await request(h.url, '/v1/machines')).json();
  t.is(after.machines[0].snapshotSeq, 2);
  t.is(kv1.snapshot, null);
  t.is(after.machines[0].snapshot.seq, 2);
  t.true(after.machines[0].snapshot.size > 0);
  t.regex(after.machines[0].snapshot.takenAt, /^\d{4}-\d\d-\d\dT/);
});

test('POST /v1/checkpoint?name= snapshots one machine; unknown name is 404', async (t) => {
  const h = await startHarness(t);
  await postJson(h.url, '/v1/machines/kv1/call', { op: 'store', key: 'a', value: 1 });
  await postJson(h.url, '/v1/machines/kv2/call', { op: 'store', key: 'a', value: 1 });
  const one = await request(h.url, '/v1/checkpoint?name=kv2', { method: 'POST' });
  t.is(one.status, 200);
  t.deepEqual(one.json().snapshots.map((s: { machine: string }) => s.machine), ['kv2']);
  const bad = await request(h.url, '/v1/checkpoint?name=nope', { method: 'POST' });
  t.is(bad.status, 404);
  t.is(bad.json().error.code, 'UNKNOWN_MACHINE');
});

test('GET /healthz and HEAD /healthz', async (t) => {
  const h = await startHarness(t);
  const r = await request(h.url, '/healthz');
  t.is(r.status, 200);
  t.like(r.json(), { status: 'ok', storage: 'ok' });
  t.true(['checking', 'ok'].includes(r.json().integrity.state), JSON.stringify(r.json()));
  const head = await request(h.url, '/healthz', { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(head.body.length, 0);
});

test('GET /metrics: Prometheus text with calls, errors by code and per-machine gauges', async (t) => {
  const h = await startHarness(t);
  await postJson(h.url, '/v1/machines/kv1/call', { op: 'store', key: 'a', value: 1 });
  await postJson(h.url, '/v1/machines/nope/call', { op: 'size' });
  const r = await request(h.url, '/metrics');
  t.is(r.status, 200);
  t.is(r.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  const text = r.body.toString('utf8');
  t.regex(text, /^ssm_calls_total 1$/m);
  t.regex(text, /^ssm_errors_total\{code="UNKNOWN_MACHINE"\} 1$/m);
  t.regex(text, /^ssm_machine_seq\{machine="kv1"\} 1$/m);
  t.regex(text, /^ssm_commit_seconds_count 1$/m);
  t.regex(text, /# TYPE ssm_batch_size histogram/);
});

test('error statuses: 404 unknown machine, 400 undecodable bodies, 500 crash, 415, 404 route, 405', async (t) => {
  const h = await startHarness(t);
  const expectError = async (p: Promise<{ status: number; json(): any; headers: Headers }>, status: number, code: string, name?: string) => {
    const r = await p;
    t.is(r.status, status, code);
    t.regex(r.headers.get('content-type')!, /^application\/json/);
    const e = r.json().error;
    t.is(e.code, code);
    t.is(typeof e.message, 'string');
    if (name) t.is(e.name, name);
    return r;
  };
  await expectError(postJson(h.url, '/v1/machines/nope/call', { op: 'size' }), 404, 'UNKNOWN_MACHINE', 'UnknownMachineError');
  await expectError(request(h.url, '/v1/machines/nope/call', { method: 'POST', headers: CBOR, body: cbor.encode({ op: 'size' }) }), 404, 'UNKNOWN_MACHINE');
  await expectError(request(h.url, '/v1/machines/kv1/call', { method: 'POST', headers: CBOR, body: new Uint8Array([0xff, 0xff, 0x1b]) }), 400, 'DECODE_ERROR', 'DecodeError');
  await expectError(request(h.url, '/v1/machines/kv1/call', { method: 'POST', headers: CBOR, body: cbor.encode({ op: 'explode' }) }), 400, 'DECODE_ERROR');
  await expectError(request(h.url, '/v1/machines/kv1/call', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"op":' }), 400, 'DECODE_ERROR');
  await expectError(request(h.url, '/v1/machines/kv1/call', { method: 'POST', headers: { 'content-type': 'application/json' }, body: new Uint8Array([0x22, 0xc3, 0x28, 0x22]) }), 400, 'DECODE_ERROR');
  await expectError(postJson(h.url, '/v1/machines/kv1/call', { op: 'store', key: 7, value: 1 }), 400, 'DECODE_ERROR');
  await expectError(postJson(h.url, '/v1/machines/kv1/call', [1, 2]), 400, 'DECODE_ERROR');
  // None of the rejected inputs reached the machine.
  t.is((await request(h.url, '/v1/machines')).json().machines[0].restarts, 0);

  const crash = await expectError(postJson(h.url, '/v1/machines/kv1/call', { op: 'lookup', key: 'crash' }), 500, 'MACHINE_CRASHED', 'MachineCrashedError');
  t.is(crash.json().error.message, 'kv1 crashed: divide by zero');
  t.deepEqual(crash.json().error.cause, { name: 'Error', message: 'divide by zero' });

  const u = await expectError(request(h.url, '/v1/machines/kv1/call', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
  t.is(u.headers.get('accept'), 'application/cbor, application/json');
  await expectError(request(h.url, '/v1/machines/kv1/call', { method: 'POST', body: new Uint8Array([1]) }), 415, 'UNSUPPORTED_MEDIA_TYPE');

  await expectError(request(h.url, '/nope'), 404, 'NOT_FOUND');
  await expectError(request(h.url, '/v1/machines/kv1'), 404, 'NOT_FOUND');
  await expectError(request(h.url, '/v1/machines/kv1/call/'), 404, 'NOT_FOUND');
  await expectError(request(h.url, '/healthz/'), 404, 'NOT_FOUND');
  const m1 = await expectError(request(h.url, '/v1/machines/kv1/call'), 405, 'METHOD_NOT_ALLOWED');
  t.is(m1.headers.get('allow'), 'POST');
  const m2 = await expectError(request(h.url, '/metrics', { method: 'POST' }), 405, 'METHOD_NOT_ALLOWED');
  t.is(m2.headers.get('allow'), 'GET, HEAD');
  await expectError(request(h.url, '/v1/machines', { method: 'DELETE' }), 405, 'METHOD_NOT_ALLOWED');
  await expectError(request(h.url, '/healthz', { method: 'PUT' }), 405, 'METHOD_NOT_ALLOWED');
  await expectError(request(h.url, '/v1/checkpoint'), 405, 'METHOD_NOT_ALLOWED');
});

test('503 with Retry-After when the queue is full', async (t) => {
  const h = await startHarness(t, { queueCapacity: 2 });
  const release = await h.holdLoop();
  const queued = [h.app.call('kv1', { op: 'size' }), h.app.call('kv1', { op: 'size' })];
  const r = await postJson(h.url, '/v1/machines/kv1/call', { op: 'store', key: 'lost', value: 1 });
  t.is(r.status, 503);
  t.is(r.headers.get('retry-after'), '1');
  t.is(r.json().error.code, 'QUEUE_FULL');
  await release();
  t.deepEqual(await Promise.all(queued), [0, 0]);
  // The refused write was never applied.
  t.is((await postJson(h.url, '/v1/machines/kv1/call', { op: 'has', key: 'lost' })).json(), false);
});

test('504 when a call times out in the queue; the request is never applied', async (t) => {
  const h = await startHarness(t, {}, { callTimeoutMs: 100 });
  const release = await h.holdLoop();
  const r = await postJson(h.url, '/v1/machines/kv1/call', { op: 'store', key: 'late', value: 1 });
  t.is(r.status, 504);
  t.is(r.json().error.code, 'CALL_TIMEOUT');
  await release();
  t.is((await postJson(h.url, '/v1/machines/kv1/call', { op: 'has', key: 'late' })).json(), false);
});

test('503 on a storage error; the failed write is not acknowledged nor applied', async (t) => {
  const h = await startHarness(t);
  await postJson(h.url, '/v1/machines/kv1/call', { op: 'store', key: 'kept', value: 1 });
  h.faults.failCommits = true;
  const r = await postJson(h.url, '/v1/machines/kv1/call', { op: 'store', key: 'failed', value: 2 });
  t.is(r.status, 503);
  t.is(r.json().error.code, 'STORAGE_ERROR');
  h.faults.failCommits = false;
  t.is((await postJson(h.url, '/v1/machines/kv1/call', { op: 'has', key: 'failed' })).json(), false);
  t.is((await postJson(h.url, '/v1/machines/kv1/call', { op: 'lookup', key: 'kept' })).json(), 1);
});

test('503 for a stopped machine and for a stopped application; healthz reports it', async (t) => {
  const h = await startHarness(t);
  t.is((await postJson(h.url, '/v1/machines/temp/call', { op: 'lookup', key: 'crash' })).status, 500);
  const s = await postJson(h.url, '/v1/machines/temp/call', { op: 'size' });
  t.is(s.status, 503);
  t.is(s.json().error.code, 'MACHINE_STOPPED');

  await h.app.stop();
  const r = await postJson(h.url, '/v1/machines/kv1/call', { op: 'store', key: 'x', value: 1 });
  t.is(r.status, 503);
  t.is(r.json().error.code, 'APPLICATION_STOPPED');
  const c = await request(h.url, '/v1/machines/kv1/call', { method: 'POST', headers: CBOR, body: cbor.encode({ op: 'size' }) });
  t.is(c.status, 503);
  t.is(c.json().error.code, 'APPLICATION_STOPPED');
  const cp = await request(h.url, '/v1/checkpoint', { method: 'POST' });
  t.is(cp.status, 503);
  const hz = await request(h.url, '/healthz');
  t.is(hz.status, 503);
  t.deepEqual(hz.json(), { status: 'stopped' });
});

test('no request path reaches the filesystem', async (t) => {
  const h = await startHarness(t);
  for (const path of ['/../../../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/v1/machines/..%2F..%2Fetc%2Fpasswd/call', '/v1/machines/%2Fetc%2Fpasswd/call']) {
    const r = await request(h.url, path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"op":"size"}' });
    t.true(r.status === 404, `${path}: ${r.status}`);
    t.notRegex(r.body.toString(), /root:/);
  }
  const bad = await request(h.url, '/v1/machines/%E0%A4%A/call', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"op":"size"}' });
  t.is(bad.status, 400);
});

test('graceful close: refuses new connections, answers the in-flight request, then resolves', async (t) => {
  const h = await startHarness(t);
  const release = await h.holdLoop();
  const inflight = postJson(h.url, '/v1/machines/kv1/call', { op: 'store', key: 'inflight', value: 1 });
  // Let the request reach the server and queue.
  while (h.app.queueDepth === 0) await new Promise((r) => setTimeout(r, 5));
  let closed = false;
  const closing = h.endpoint.close().then(() => (closed = true));
  await t.throwsAsync(fetch(h.url + '/healthz'));
  t.false(closed);
  await release();
  const r = await inflight;
  t.is(r.status, 200);
  await closing;
  t.true(closed);
  t.true(await h.app.call('kv1', { op: 'has', key: 'inflight' }));
});
