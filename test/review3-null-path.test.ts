/**
 * Review 3: openKV(null) (a JavaScript caller, or `openKV(config.path)` with the entry unset as
 * null) is not refused and does not use the documented default storage/kv.db: `path` defaults
 * only for undefined, checkLayout(null) finds "nothing" (existsSync(null) is false), and the
 * application then opens ITS default, storage/ssm.db (ssm serve's database). The layout check
 * is skipped on the file actually opened, so a store there of another partition count is
 * opened with the wrong routing (keys seem lost, new writes split the data).
 */
import test from 'ava';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openKV } from '../src/kv/open-kv.js';

test('openKV(null, { partitions: 4 }) neither opens storage/ssm.db unchecked nor skips the layout check', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ssm-review3-null-'));
  const cwd = process.cwd();
  process.chdir(dir);
  t.teardown(() => {
    process.chdir(cwd);
    rmSync(dir, { recursive: true, force: true });
  });
  // storage/ssm.db holds a store of 8 partitions.
  const eight = await openKV<number>('storage/ssm.db', { partitions: 8, durability: 'normal' });
  await eight.set('a', 1);
  await eight.close();
  const opened = await openKV<number>(null as unknown as string, { partitions: 4, durability: 'normal' }).catch((err: Error) => err);
  if (opened instanceof Error) {
    t.log(`refused: ${opened.name}: ${opened.message}`);
    t.pass();
    return;
  }
  const where = opened.path;
  const a = await opened.get('a');
  await opened.close();
  t.log(`opened ${where}, get('a') = ${String(a)}`);
  t.not(where, 'storage/ssm.db', 'null must not open the application default storage/ssm.db (unchecked)');
  t.true(where === join('storage', 'kv.db') && existsSync(join(dir, 'storage', 'kv.db')));
});
