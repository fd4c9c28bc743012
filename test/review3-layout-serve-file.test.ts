/**
 * Review 3: the layout check knows only the machine `kv` and the family `kv`. A database
 * written by `ssm serve` (machines kv1, kv2, kv3 and the family `accounts`) holding data is
 * opened by openKV, with or without partitions, as an empty store: no error, size 0, the
 * served keys invisible, and openKV's own machines (and a layout marker) are added to the
 * other application's file. A user pointing openKV at storage/ssm.db sees their data "gone".
 */
import test from 'ava';
import { ConfigError } from '../src/errors.js';
import { startApplication } from '../src/engine/application.js';
import { serveTree } from '../src/kv/demo.js';
import { openKV } from '../src/kv/open-kv.js';
import { rawDb, tempDb } from './helpers/persistence-kv.js';

for (const partitions of [1, 4]) {
  test(`openKV (partitions: ${partitions}) refuses a database written by ssm serve that holds data, and adds nothing to it`, async (t) => {
    const db = tempDb(t);
    const app = await startApplication(serveTree(), { db, logger: false });
    await app.call('kv1', { op: 'store', key: 'a', value: 1 });
    await app.call('accounts/alice', { op: 'store', key: 'balance', value: 10 });
    await app.stop();
    const names = (): string[] => {
      const raw = rawDb(db);
      try {
        return raw.prepare('SELECT name FROM machines ORDER BY name').pluck().all() as string[];
      } finally {
        raw.close();
      }
    };
    const before = names();
    const opened = await openKV(db, { partitions, durability: 'normal' }).catch((err: Error) => err);
    if (!(opened instanceof Error)) {
      t.log(`opened: size ${await opened.size()}, get('a') = ${String(await opened.get('a'))}`);
      await opened.close();
    }
    t.true(opened instanceof ConfigError, 'a file of another application is refused, not opened as an empty store');
    t.deepEqual(names(), before);
  });
}
