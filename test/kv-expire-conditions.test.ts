/** The expire op's `when` (Redis's EXPIRE NX/XX/GT/LT) through app.call, its validation, and replay of conditional expiries. */
import test from 'ava';
import { join } from 'node:path';
import { startApplication } from '../src/engine/application.js';
import { kvTree } from '../src/kv/demo.js';
import { tempDir } from './fixtures/serve-helpers.js';

test('expire with when: nx, xx, gt, lt, xx-gt, xx-lt set the expiry only when their condition holds, and replay the same', async (t) => {
  const db = join(tempDir(t), 'c.db');
  let app = await startApplication(kvTree(), { db, logger: false });
  const now = Date.now();
  const at = (s: number): number => now + s * 1000;
  const expire = (when: string, s: number): Promise<unknown> => app.call('kv1', { op: 'expire', key: 'k', expiresAt: at(s), when });
  await app.call('kv1', { op: 'store', key: 'k', value: 1 });
  t.false(await expire('xx', 100), 'xx: no expiry yet');
  t.false(await expire('gt', 100), 'gt: no expiry counts as never');
  t.false(await expire('xx-lt', 100));
  t.true(await expire('lt', 100), 'lt: earlier than never');
  t.false(await expire('nx', 50), 'nx: it has one now');
  t.false(await expire('gt', 50));
  t.true(await expire('gt', 300));
  t.false(await expire('lt', 400));
  t.true(await expire('xx-lt', 200));
  t.true(await expire('xx-gt', 250));
  t.is(await app.call('kv1', { op: 'ttl', key: 'k', now }), at(250) - now);
  await t.throwsAsync(app.callValue('kv1', { op: 'expire', key: 'k', ttlMs: 10, when: 'sometimes' }), { code: 'DECODE_ERROR', message: /"when" must be one of "nx", "xx", "gt", "lt", "xx-gt", "xx-lt"/ });
  await t.throwsAsync(app.callValue('kv1', { op: 'size', expiring: 'yes' }), { code: 'DECODE_ERROR', message: /"expiring" must be a boolean/ });
  t.deepEqual(await app.callValue('kv1', { op: 'size', expiring: true }), { keys: 1, expiring: 1 });
  await app.stop();
  app = await startApplication(kvTree(), { db, logger: false, snapshot: { every: 0 } });
  t.is(await app.call('kv1', { op: 'ttl', key: 'k', now }), at(250) - now, 'replayed from the log to the same expiry');
  await app.stop();
});
