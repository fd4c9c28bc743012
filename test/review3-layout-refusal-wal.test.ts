/**
 * Review 3: the README says a refused open (another `partitions`) leaves "the file byte for
 * byte as it was", and kv-layout.ts that it "leaves the folder exactly as it found it". Not
 * when a WAL is there (a process that was killed, or a copy taken while the store was open):
 * checkLayout's writable connection is the last to close, so SQLite checkpoints the WAL into
 * the database file and deletes it. No data is lost, but the files a user may be keeping as
 * evidence of a crash (or comparing, as test/kv-partitions.test.ts's fileState does) change.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { ConfigError } from '../src/errors.js';
import { openKV } from '../src/kv/open-kv.js';
import { tempDb } from './helpers/persistence-kv.js';

const digest = (p: string): string => (existsSync(p) ? createHash('sha256').update(readFileSync(p)).digest('hex') : 'none');

test('an open refused for its layout leaves the database and its WAL byte for byte as they were', async (t) => {
  const db = tempDb(t);
  const crashed = tempDb(t);
  const kv = await openKV<number>(db, { partitions: 4, durability: 'normal' });
  for (let i = 0; i < 50; i++) await kv.set(`k${i}`, i);
  // The files as a SIGKILL leaves them: the database and a WAL holding the recent commits.
  copyFileSync(db, crashed);
  copyFileSync(`${db}-wal`, `${crashed}-wal`);
  await kv.close();
  const before = [digest(crashed), digest(`${crashed}-wal`)];
  t.not(before[1], 'none');
  await t.throwsAsync(openKV(crashed, { partitions: 8 }), { instanceOf: ConfigError });
  t.deepEqual([digest(crashed), digest(`${crashed}-wal`)], before);
  // And the data is all there with the right layout.
  const again = await openKV<number>(crashed, { partitions: 4, durability: 'normal' });
  t.is(await again.size(), 50);
  await again.close();
});
