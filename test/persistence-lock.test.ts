/**
 * One writer per database file: a second application, in another process or in this one, is
 * refused with DatabaseLockedError while the holder lives, and the refused opener disturbs
 * nothing. A holder killed with SIGKILL leaves a stale lock row that the next opener takes over.
 */
import test from 'ava';
import { startApplication } from '../src/engine/application.js';
import { DatabaseLockedError } from '../src/errors.js';
import { killHard, spawnKvChild } from './helpers/persistence-child.js';
import { kvEntries, kvTree, rawDb, tempDb } from './helpers/persistence-kv.js';

test('same process: a second startApplication on a held file is refused; the holder keeps working', async (t) => {
  const db = tempDb(t);
  const holder = await startApplication(kvTree(), { db, logger: false });
  await holder.call('kv1', { op: 'store', key: 'a', value: 1 });
  const err = await t.throwsAsync(startApplication(kvTree(), { db, logger: false }), { instanceOf: DatabaseLockedError });
  t.is(err?.code, 'DATABASE_LOCKED');
  // The refused opener must not have closed, locked or rewound anything of the holder's.
  await holder.call('kv1', { op: 'store', key: 'b', value: 2 });
  t.deepEqual(await kvEntries(holder, 'kv1'), [
    ['a', 1],
    ['b', 2],
  ]);
  await holder.stop();
  // Released on stop: the file opens again, with everything.
  const next = await startApplication(kvTree(), { db, logger: false });
  t.deepEqual(await kvEntries(next, 'kv1'), [
    ['a', 1],
    ['b', 2],
  ]);
  await next.stop();
});

test('another process is refused while this process holds the file', async (t) => {
  const db = tempDb(t);
  const holder = await startApplication(kvTree(), { db, logger: false });
  try {
    await holder.call('kv1', { op: 'store', key: 'mine', value: 1 });
    const other = spawnKvChild(['try-open', db]);
    const line = await other.waitFor((l) => l.startsWith('ok') || l.startsWith('error'));
    await other.closed;
    t.is(line, 'error DATABASE_LOCKED');
    await holder.call('kv1', { op: 'store', key: 'still-mine', value: 2 });
    t.is(await holder.call('kv1', { op: 'lookup', key: 'mine' }), 1);
  } finally {
    await holder.stop();
  }
  // Once released, the other process gets in.
  const after = spawnKvChild(['try-open', db]);
  t.is(await after.waitFor((l) => l.startsWith('ok') || l.startsWith('error')), 'ok');
  await after.closed;
});

test('a live holder in another process refuses this one; after SIGKILL of the holder, opening succeeds', async (t) => {
  const db = tempDb(t);
  const holder = spawnKvChild(['hold', db]);
  t.teardown(() => killHard(holder));
  await holder.waitFor((l) => l === 'ready');
  const err = await t.throwsAsync(startApplication(kvTree(), { db, logger: false }), { instanceOf: DatabaseLockedError });
  t.regex(err?.message ?? '', new RegExp(`pid ${holder.proc.pid}\\b`), 'names the holding process');
  // Refused twice in a row: the refusal itself leaves no state behind.
  await t.throwsAsync(startApplication(kvTree(), { db, logger: false }), { instanceOf: DatabaseLockedError });

  await killHard(holder);
  const raw = rawDb(db);
  t.is(raw.prepare('SELECT pid FROM app_lock WHERE id = 1').pluck().get(), holder.proc.pid, 'the killed holder left its lock row behind');
  raw.close();

  const app = await startApplication(kvTree(), { db, logger: false });
  await app.call('kv1', { op: 'store', key: 'taken-over', value: true });
  const raw2 = rawDb(db);
  t.is(raw2.prepare('SELECT pid FROM app_lock WHERE id = 1').pluck().get(), process.pid, 'the lock now names this process');
  raw2.close();
  await app.stop();
});
