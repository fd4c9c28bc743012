/**
 * A batch whose commit fails acknowledges nothing and loses nothing. Two faults: a real full
 * disk (`PRAGMA max_page_count` pinned to the file's current size on the application's own
 * connection, through the `faults.onOpen` seam, so SQLite itself fails with SQLITE_FULL) and an
 * I/O error thrown inside the batch transaction (`faults.beforeCommit`). Every call of the failed
 * batch rejects with StorageError, the machines are back at their durable state, and once the
 * fault clears the application serves again and what it accepts survives a restart.
 */
import test from 'ava';
import type { Database } from 'better-sqlite3';
import { startApplication, type App } from '../src/engine/application.js';
import { cbor } from '../src/encoding/cbor.js';
import { StorageError } from '../src/errors.js';
import { kvEntries, kvTree, rawDb, tempDb, workerStatus } from './helpers/persistence-kv.js';

const BIG = 'v'.repeat(256 * 1024); // needs ~64 new pages: cannot fit in a pinned file

async function settle(ps: Promise<unknown>[]): Promise<PromiseSettledResult<unknown>[]> {
  return Promise.allSettled(ps);
}

async function durableState(app: App): Promise<{ kv1: unknown; kv2: unknown; seq1: number; seq2: number }> {
  return { kv1: await kvEntries(app, 'kv1'), kv2: await kvEntries(app, 'kv2'), seq1: workerStatus(app, 'kv1').seq, seq2: workerStatus(app, 'kv2').seq };
}

test('disk full (max_page_count): the batch rejects with StorageError, nothing of it is kept, service resumes when space returns', async (t) => {
  const db = tempDb(t);
  let conn: Database | undefined;
  const options = { db, logger: false as const, snapshot: { every: 0, retainLog: true }, faults: { onOpen: (d: Database) => (conn = d) } };
  const app = await startApplication(kvTree(), options);
  t.truthy(conn, 'the onOpen seam handed over the connection');
  await app.call('kv1', { op: 'store', key: 'a', value: 'durable-a' });
  await app.call('kv2', { op: 'store', key: 'b', value: 'durable-b' });
  await app.call('kv1', { op: 'store', key: 'gone', value: 'deleted-later' });
  const before = await durableState(app);

  // The disk is "full": the file may not grow by a single page.
  const pages = conn!.pragma('page_count', { simple: true }) as number;
  t.is(conn!.pragma(`max_page_count = ${pages}`, { simple: true }), pages);

  // One batch: writes to both machines, a delete, and reads. Submitted in the same tick.
  const batch = [
    app.call('kv1', { op: 'store', key: 'a', value: BIG }),
    app.call('kv1', { op: 'delete', key: 'gone' }),
    app.call('kv2', { op: 'store', key: 'b', value: 'lost-b' }),
    app.call('kv2', { op: 'store', key: 'c', value: 'lost-c' }),
    app.call('kv1', { op: 'lookup', key: 'a' }),
  ];
  const results = await settle(batch);
  for (const [i, r] of results.entries()) {
    t.is(r.status, 'rejected', `call ${i} of the failed batch must not be acknowledged`);
    if (r.status === 'rejected') {
      t.true(r.reason instanceof StorageError, `call ${i} rejects with StorageError, got ${String(r.reason)}`);
      t.is((r.reason as StorageError).code, 'STORAGE_ERROR');
    }
  }
  const cause = (results[0] as PromiseRejectedResult).reason as StorageError;
  t.regex(`${cause.message} ${String((cause.cause as { code?: string })?.code)}`, /SQLITE_FULL|full/i, 'a real disk-full error from SQLite');

  // Memory is back at the durable state: what a restart would see.
  t.deepEqual(await durableState(app), before);
  for (const m of ['kv1', 'kv2']) t.is(workerStatus(app, m).status, 'running');

  // Space returns: the application serves again.
  conn!.pragma('max_page_count = 1073741823');
  await app.call('kv1', { op: 'store', key: 'a', value: 'after-fault' });
  await app.call('kv2', { op: 'store', key: 'big', value: BIG });
  await app.call('kv1', { op: 'delete', key: 'gone' });
  const after = await durableState(app);
  t.is(after.seq1, before.seq1 + 2, 'the failed batch consumed no sequence numbers');
  t.is(after.seq2, before.seq2 + 1);
  await app.stop();

  const raw = rawDb(db);
  const logged = (raw.prepare('SELECT requests FROM request_log ORDER BY id').pluck().all() as Buffer[]).flatMap((b) => cbor.decodeMultiple(b) as unknown[]);
  raw.close();
  t.true(logged.some((i) => (i as { value?: unknown }).value === 'after-fault'), 'the log is readable here');
  t.false(
    logged.some((i) => String((i as { value?: unknown }).value).startsWith('lost-')),
    'nothing of the failed batch reached the log',
  );

  const reopened = await startApplication(kvTree(), { db, logger: false });
  t.deepEqual(await durableState(reopened), after);
  t.deepEqual(await kvEntries(reopened, 'kv1'), [['a', 'after-fault']]);
  t.deepEqual(await kvEntries(reopened, 'kv2'), [
    ['b', 'durable-b'],
    ['big', BIG],
  ]);
  await reopened.stop();
});

test('I/O error inside the commit (faults.beforeCommit): all calls of the batch reject, state is the durable one, later writes persist', async (t) => {
  const db = tempDb(t);
  let failures = 0;
  const options = {
    db,
    logger: false as const,
    snapshot: { every: 3, maxTimeShare: 1 },
    faults: {
      beforeCommit: () => {
        if (failures > 0) {
          failures--;
          throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
        }
      },
    },
  };
  const app = await startApplication(kvTree(), options);
  for (let i = 0; i < 4; i++) await app.call('kv1', { op: 'store', key: `k${i}`, value: i });
  const before = await durableState(app);

  failures = 1;
  const results = await settle(Array.from({ length: 20 }, (_, i) => app.call(i % 2 ? 'kv1' : 'kv2', { op: 'store', key: `x${i}`, value: i })));
  t.true(
    results.every((r) => r.status === 'rejected' && r.reason instanceof StorageError),
    'the whole batch rejected with StorageError',
  );
  t.deepEqual(await durableState(app), before);

  // The fault has cleared (it fired once): the application serves again.
  const ok = await settle(Array.from({ length: 20 }, (_, i) => app.call(i % 2 ? 'kv1' : 'kv2', { op: 'store', key: `y${i}`, value: i })));
  t.true(ok.every((r) => r.status === 'fulfilled'));
  const after = await durableState(app);
  await app.stop();
  const reopened = await startApplication(kvTree(), { db, logger: false });
  t.deepEqual(await durableState(reopened), after);
  t.false((await kvEntries(reopened, 'kv1')).some(([k]) => k.startsWith('x')), 'no write of the failed batch survived');
  await reopened.stop();
});
