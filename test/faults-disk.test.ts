/**
 * Storage faults inside a running application: disk full (PRAGMA max_page_count on the
 * application's own connection, via the `faults.onOpen` seam) during a batch commit, a snapshot
 * and the log compaction that shares the snapshot's transaction, and an I/O error thrown at
 * commit (`faults.beforeCommit`) or at the compaction's commit (`faults.beforeSnapshotCommit`).
 *
 * Every case checks the same three things: a write is either acknowledged or rejected with
 * StorageError (never anything else); every acknowledged write is there, in memory and after a
 * restart from disk, and no rejected one is (StorageError promises nothing of the batch was
 * written); and the application serves reads and writes again once the fault is gone.
 */
import test from 'ava';
import type { App } from '../src/engine/application.js';
import { StorageError } from '../src/errors.js';
import type { StoreFaults } from '../src/storage/store-options.js';
import { kvEntries, kvTree, startRecording, tableCounts, tempDb, workerStatus } from './helpers/persistence-kv.js';
import { DiskLimit, bulky, errorCode, kvDigest, outcome } from './helpers/faults-util.js';

const MACHINES = ['kv1', 'kv2'];

interface Ledger {
  acked: Map<string, Map<string, unknown>>;
  rejected: Map<string, Set<string>>;
  codes: Map<string, number>;
}

function ledger(): Ledger {
  return {
    acked: new Map(MACHINES.map((m) => [m, new Map()])),
    rejected: new Map(MACHINES.map((m) => [m, new Set()])),
    codes: new Map(),
  };
}

/** Stores `count` keys concurrently, recording which were acknowledged and which were refused (and why). */
async function writeMany(app: App, l: Ledger, prefix: string, count: number, bytes: number): Promise<void> {
  await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const machine = MACHINES[i % MACHINES.length]!;
      const key = `${prefix}:${i}`;
      const value = bulky(key, bytes);
      const r = await outcome(app.call(machine, { op: 'store', key, value }));
      if (r.ok) {
        l.acked.get(machine)!.set(key, value);
        // A key written again later must not count as rejected.
        l.rejected.get(machine)!.delete(key);
      } else {
        const code = errorCode(r.error);
        l.codes.set(code, (l.codes.get(code) ?? 0) + 1);
        l.rejected.get(machine)!.add(key);
      }
    }),
  );
}

/** Every acknowledged key holds its value; no rejected key exists. Returns the number checked. */
async function checkLedger(t: import('ava').ExecutionContext, app: App, l: Ledger, when: string): Promise<number> {
  let n = 0;
  for (const m of MACHINES) {
    const entries = new Map(await kvEntries(app, m));
    for (const [k, v] of l.acked.get(m)!) {
      t.deepEqual(entries.get(k), v, `${when}: acknowledged ${m}/${k} missing or wrong`);
      n++;
    }
    for (const k of l.rejected.get(m)!) t.false(entries.has(k), `${when}: ${m}/${k} was refused with StorageError yet is present`);
    t.is(entries.size, l.acked.get(m)!.size, `${when}: ${m} holds exactly the acknowledged keys`);
  }
  return n;
}

/** Only StorageError may refuse a write during a storage fault. */
function onlyStorageErrors(t: import('ava').ExecutionContext, l: Ledger): void {
  t.deepEqual([...l.codes.keys()].filter((c) => c !== 'STORAGE_ERROR'), [], `unexpected rejections: ${JSON.stringify([...l.codes])}`);
}

async function reopenAndCheck(t: import('ava').ExecutionContext, db: string, l: Ledger, digest: string): Promise<App> {
  const { app } = await startRecording(kvTree(MACHINES), { db });
  t.teardown(() => app.stop());
  t.is(await kvDigest(app), digest, 'state after restart equals state before it');
  await checkLedger(t, app, l, 'after restart');
  return app;
}

test('disk full during batch commits: refused writes are StorageError and absent, acknowledged ones survive, writes resume once space is back', async (t) => {
  const db = tempDb(t, 'ssm-faults-');
  const limit = new DiskLimit();
  const { app, events } = await startRecording(kvTree(MACHINES), { db, faults: { onOpen: limit.onOpen }, snapshot: { every: 0 } });
  const l = ledger();
  await writeMany(app, l, 'before', 60, 200);
  t.is(l.codes.size, 0);

  limit.fill(0);
  await writeMany(app, l, 'full', 40, 8000);
  onlyStorageErrors(t, l);
  t.true((l.codes.get('STORAGE_ERROR') ?? 0) > 0, 'the disk-full cap refused writes');
  t.true(events.some((e) => e.type === 'storage_failed'), 'the failure was reported');
  // Still serving: reads answer, machines running, state is exactly what was acknowledged.
  await checkLedger(t, app, l, 'while full');
  for (const m of MACHINES) t.is(workerStatus(app, m).status, 'running', `${m} still running`);

  limit.free();
  const refusedBefore = l.codes.get('STORAGE_ERROR')!;
  await writeMany(app, l, 'after', 40, 8000);
  t.is(l.codes.get('STORAGE_ERROR'), refusedBefore, 'no refusals once space is back');
  await writeMany(app, l, 'full', 40, 8000); // the refused keys, written again, now succeed
  t.is(l.codes.get('STORAGE_ERROR'), refusedBefore);
  const checked = await checkLedger(t, app, l, 'after space freed');
  t.true(checked >= 140);
  const digest = await kvDigest(app);
  await app.stop();
  await reopenAndCheck(t, db, l, digest);
});

test('disk full during snapshots (policy and explicit): writes stay acknowledged, the snapshot fails cleanly, nothing is lost', async (t) => {
  const db = tempDb(t, 'ssm-faults-');
  const limit = new DiskLimit();
  const { app, events } = await startRecording(kvTree(MACHINES), { db, faults: { onOpen: limit.onOpen }, snapshot: { every: 40, maxTimeShare: 1 } });
  const l = ledger();
  // ~300 KB of state per machine: a snapshot needs far more room than a small log row.
  await writeMany(app, l, 'big', 600, 1000);
  const snapshotsBefore = tableCounts(db).snapshots;
  t.true(snapshotsBefore > 0, 'the policy took snapshots while there was room');

  limit.fill(40); // ~160 KB: room for small log rows, not for a snapshot
  const failedBefore = events.filter((e) => e.type === 'snapshot_failed').length;
  for (let round = 0; round < 3; round++) await writeMany(app, l, `small${round}`, 60, 20);
  onlyStorageErrors(t, l);
  t.is(l.codes.size, 0, 'small writes were all acknowledged: only the snapshots hit the cap');
  t.true(events.filter((e) => e.type === 'snapshot_failed').length > failedBefore, 'policy snapshots failed and were reported');
  const cp = await outcome(app.checkpoint());
  t.false(cp.ok, 'an explicit checkpoint is refused');
  t.true(!cp.ok && cp.error instanceof StorageError, `checkpoint error: ${!cp.ok ? errorCode(cp.error) : ''}`);
  await checkLedger(t, app, l, 'while full');
  t.is(tableCounts(db).snapshots, snapshotsBefore, 'no partial snapshot row was left');

  limit.free();
  const written = await app.checkpoint();
  t.is(written.length, MACHINES.length, 'checkpoints succeed again');
  await writeMany(app, l, 'after', 40, 100);
  t.is(l.codes.size, 0);
  const digest = await kvDigest(app);
  await app.stop();
  await reopenAndCheck(t, db, l, digest);
});

test('disk full during log compaction (the snapshot transaction that prunes snapshots and truncates the log): rolled back whole, recovery unaffected', async (t) => {
  const db = tempDb(t, 'ssm-faults-');
  const limit = new DiskLimit();
  const { app } = await startRecording(kvTree(MACHINES), { db, faults: { onOpen: limit.onOpen }, snapshot: { every: 0, keepSnapshots: 2 } });
  const l = ledger();
  // Two snapshots, then more log: the next checkpoint would prune the oldest snapshot and the
  // log rows only it needed.
  for (let round = 0; round < 3; round++) {
    await writeMany(app, l, `r${round}`, 200, 1000);
    if (round < 2) await app.checkpoint();
  }
  const before = tableCounts(db);
  t.is(before.snapshots, 4);
  limit.fill(2);
  const cp = await outcome(app.checkpoint());
  t.true(!cp.ok && cp.error instanceof StorageError, 'the compaction is refused with StorageError');
  t.deepEqual(tableCounts(db), before, 'no snapshot pruned, no log row truncated, nothing added');
  // Still serving from the same state; a restart now would recover from the untouched data.
  await checkLedger(t, app, l, 'while full');
  limit.free();
  await app.checkpoint();
  const after = tableCounts(db);
  t.is(after.snapshots, 4, 'compaction ran once space was back: still 2 per machine');
  t.true(after.log < before.log, 'and the log was truncated');
  const digest = await kvDigest(app);
  await app.stop();
  await reopenAndCheck(t, db, l, digest);
});

test('an I/O error at the compaction commit, after the prune and truncation ran: rolled back, nothing lost', async (t) => {
  const db = tempDb(t, 'ssm-faults-');
  let failSnapshots = false;
  const faults: StoreFaults = {
    beforeSnapshotCommit: () => {
      if (failSnapshots) throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_WRITE' });
    },
  };
  const { app } = await startRecording(kvTree(MACHINES), { db, faults, snapshot: { every: 0, keepSnapshots: 1 } });
  const l = ledger();
  await writeMany(app, l, 'a', 100, 300);
  await app.checkpoint();
  await writeMany(app, l, 'b', 100, 300);
  const before = tableCounts(db);
  failSnapshots = true;
  const cp = await outcome(app.checkpoint());
  t.true(!cp.ok && cp.error instanceof StorageError && /SQLITE_IOERR_WRITE/.test(cp.error.message), 'StorageError with the cause code');
  t.deepEqual(tableCounts(db), before, 'the deletes inside the failed transaction were rolled back');
  await writeMany(app, l, 'c', 50, 300);
  t.is(l.codes.size, 0, 'writes are unaffected by snapshot failures');
  failSnapshots = false;
  const digest = await kvDigest(app);
  await app.stop(); // the terminate snapshot succeeds now
  await reopenAndCheck(t, db, l, digest);
});

test('an I/O error at batch commit (faults.beforeCommit): exactly the failed batches are refused, others acknowledged, state equals the acknowledged writes', async (t) => {
  const db = tempDb(t, 'ssm-faults-');
  let commits = 0;
  let failing = true;
  const refusedBatches: string[][] = [];
  const faults: StoreFaults = {
    beforeCommit: (groups) => {
      commits++;
      if (failing && commits % 3 === 1) {
        refusedBatches.push(groups.map((g) => g.machine));
        throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
      }
    },
  };
  const { app, events } = await startRecording(kvTree(MACHINES), { db, faults, maxBatch: 16, snapshot: { every: 25, maxTimeShare: 1 } });
  const l = ledger();
  for (let round = 0; round < 10; round++) await writeMany(app, l, `w${round}`, 64, 100);
  onlyStorageErrors(t, l);
  const refused = l.codes.get('STORAGE_ERROR') ?? 0;
  t.true(refusedBatches.length >= 10, `${refusedBatches.length} batches failed`);
  t.true(refused >= refusedBatches.length, 'every failed batch refused its writes');
  t.true(l.acked.get('kv1')!.size + l.acked.get('kv2')!.size > 0);
  await checkLedger(t, app, l, 'after I/O errors');
  t.deepEqual(events.filter((e) => e.type === 'crashed'), [], 'a storage failure is not a machine crash');
  failing = false;
  for (let round = 0; round < 10; round++) await writeMany(app, l, `w${round}`, 64, 100);
  t.is(l.codes.get('STORAGE_ERROR'), refused, 'serving again: no more refusals');
  await checkLedger(t, app, l, 'after recovery');
  const digest = await kvDigest(app);
  await app.stop();
  await reopenAndCheck(t, db, l, digest);
});
