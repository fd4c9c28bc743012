import test from 'ava';
import { join } from 'node:path';
import { cbor, decodeCbor } from '../src/encoding/cbor.js';
import { DecodeError } from '../src/errors.js';
import { InvalidKeyError, openKV } from '../src/kv/open-kv.js';
import { postJson, request, startHarness, tempDir } from './fixtures/serve-helpers.js';

// Two keys that differ only in a lone surrogate: CBOR (UTF-8) would store both as U+FFFD.
const A = 'q\ud800';
const B = 'q\udfff';

test('keys with lone surrogates are refused on HTTP JSON, HTTP CBOR, callValue and callBytes; nothing aliases', async (t) => {
  const h = await startHarness(t);
  // JSON: the escapes arrive as lone surrogates after JSON.parse.
  for (const key of [A, B]) {
    const r = await request(h.url, '/v1/machines/kv1/call', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ op: 'store', key, value: key }) });
    t.is(r.status, 400, key);
    t.is(r.json().error.code, 'DECODE_ERROR');
    t.regex(r.json().error.message, /lone surrogate/);
  }
  // CBOR: a text string holding the WTF-8 bytes of a lone surrogate (ED A0 80).
  const wtf8 = Buffer.concat([Buffer.from(cbor.encode({ op: 'store', key: 'qXXX', value: 1 }))]);
  const at = wtf8.indexOf(Buffer.from('qXXX'));
  wtf8.set([0x71, 0xed, 0xa0, 0x80], at);
  const r = await request(h.url, '/v1/machines/kv1/call', { method: 'POST', headers: { 'content-type': 'application/cbor' }, body: wtf8 });
  t.is(r.status, 400);
  await t.throwsAsync(h.app.callValue('kv1', { op: 'store', key: A, value: 1 }), { instanceOf: DecodeError });
  await t.throwsAsync(h.app.callBytes('kv1', wtf8), { instanceOf: DecodeError });
  await t.throwsAsync(h.app.callValue('kv1', { op: 'lookup', key: B }), { instanceOf: DecodeError });
  await t.throwsAsync(h.app.callValue('kv1', { op: 'entries', prefix: A }), { instanceOf: DecodeError });
  t.is(decodeCbor((await request(h.url, '/v1/machines/kv1/call', { method: 'POST', headers: { 'content-type': 'application/cbor' }, body: cbor.encode({ op: 'size' }) })).body), 0);
  // A well-formed astral character (a surrogate pair) is an ordinary key.
  t.is((await postJson(h.url, '/v1/machines/kv1/call', { op: 'store', key: 'q\ud83d\ude00', value: 1 })).status, 200);
  t.is((await postJson(h.url, '/v1/machines/kv1/call', { op: 'lookup', key: 'q\ud83d\ude00' })).json(), 1);
});

test('openKV refuses keys with lone surrogates with InvalidKeyError, on every method', async (t) => {
  const kv = await openKV(join(tempDir(t), 'kv.db'));
  t.teardown(() => kv.close());
  await t.throwsAsync(kv.set(A, 1), { instanceOf: InvalidKeyError });
  await t.throwsAsync(kv.set(B, 2), { instanceOf: InvalidKeyError });
  await t.throwsAsync(kv.get(A), { instanceOf: InvalidKeyError });
  await t.throwsAsync(kv.delete(A), { instanceOf: InvalidKeyError });
  await t.throwsAsync(kv.has(B), { instanceOf: InvalidKeyError });
  await t.throwsAsync(kv.entries({ prefix: A }), { instanceOf: InvalidKeyError });
  t.is(await kv.size(), 0);
});
