/** The KV ops behind WATCH: `digest` (of a key's value and expiry) and a batch's `guard`, through the untrusted path (as HTTP sends them). */
import test from 'ava';
import { join } from 'node:path';
import { startApplication } from '../src/engine/application.js';
import { kvTree } from '../src/kv/demo.js';
import { tempDir } from './fixtures/serve-helpers.js';

test('digest answers null for an absent key and a digest that changes with the value or the expiry; a guarded batch applies only while they hold, also after a restart', async (t) => {
  const db = join(tempDir(t), 'g.db');
  let app = await startApplication(kvTree(), { db, logger: false });
  const digest = async (key: string): Promise<string | null> => (await app.callValue<(string | null)[]>('kv1', { op: 'digest', keys: [key] }))[0]!;
  t.is(await digest('k'), null);
  await app.callValue('kv1', { op: 'store', key: 'k', value: 'v' });
  const d1 = (await digest('k'))!;
  t.regex(d1, /^[0-9a-f]{64}$/);
  await app.callValue('kv1', { op: 'expire', key: 'k', ttlMs: 100_000 });
  const d2 = (await digest('k'))!;
  t.not(d2, d1, 'an expiry changes the digest');
  const guarded = (guard: unknown) => app.callValue('kv1', { op: 'batch', ops: [{ op: 'store', key: 'n', value: 1 }], guard });
  t.is(await guarded([{ key: 'k', digest: d1 }]), null, 'stale: nothing applied');
  t.is(await app.callValue('kv1', { op: 'has', key: 'n' }), false);
  t.deepEqual(await guarded([{ key: 'k', digest: d2 }, { key: 'absent', digest: null }]), [null]);
  t.is(await app.callValue('kv1', { op: 'lookup', key: 'n' }), 1);
  await app.stop();
  app = await startApplication(kvTree(), { db, logger: false });
  t.is(await digest('k'), d2, 'the same digest after a restart (replayed state)');
  t.is(await app.callValue('kv1', { op: 'lookup', key: 'n' }), 1);
  for (const bad of [[{ key: 'k' }], [{ key: 'k', digest: 'zz' }], { key: 'k' }]) {
    await t.throwsAsync(guarded(bad), { code: 'DECODE_ERROR', message: /guard/ });
  }
  await t.throwsAsync(app.callValue('kv1', { op: 'digest', keys: [] }), { code: 'DECODE_ERROR', message: /op digest needs "keys"/ });
  await t.throwsAsync(app.callValue('kv1', { op: 'batch', ops: [{ op: 'digest', keys: ['k'] }] }), { code: 'DECODE_ERROR', message: /cannot be part of a batch/ });
  await app.stop();
});
