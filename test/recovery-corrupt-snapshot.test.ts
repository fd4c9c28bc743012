/**
 * A corrupt newest snapshot is detected by its checksum and skipped: recovery falls back to the
 * older kept snapshot and replays the longer log after it, reaching the same state, and says so
 * in the 'started' event. With no usable snapshot and the log truncated, recovery refuses
 * (RecoveryError) rather than starting from a wrong state, and deletes nothing.
 */
import test from 'ava';
import { startApplication, type App } from '../src/engine/application.js';
import { RecoveryError } from '../src/errors.js';
import { kvEntries, kvTree, rawDb, recoveryOf, startRecording, tableCounts, tempDb, workerStatus } from './helpers/persistence-kv.js';

const POLICY = { every: 0, everyBytes: 0, keepSnapshots: 2 };

/** kv1 gets snapshots at seq 5, 10 and (terminate) 13; kept: 10 and 13, log 11..13. */
async function buildHistory(db: string): Promise<{ kv1: [string, unknown][]; kv2: [string, unknown][] }> {
  const app = await startApplication(kvTree(), { db, logger: false, snapshot: POLICY });
  const store = (m: string, key: string, value: unknown): Promise<unknown> => app.call(m, { op: 'store', key, value });
  for (let i = 1; i <= 5; i++) await store('kv1', `k${i}`, i);
  await app.checkpoint('kv1');
  for (let i = 6; i <= 9; i++) await store('kv1', `k${i % 4}`, { i, d: new Date(1_700_000_000_000 + i) });
  await app.call('kv1', { op: 'delete', key: 'k5' });
  await app.checkpoint('kv1');
  await store('kv1', 'k5', 'back');
  await store('kv1', 'big', 2n ** 80n);
  await store('kv1', 'set', new Set([1, 2, 3]));
  await store('kv2', 'other', 1);
  const expected = { kv1: await kvEntries(app, 'kv1'), kv2: await kvEntries(app, 'kv2') };
  assertSeq(app, 13);
  await app.stop();
  return expected;
}

function assertSeq(app: App, seq: number): void {
  if (workerStatus(app, 'kv1').seq !== seq) throw new Error(`history: expected kv1 at seq ${seq}, got ${workerStatus(app, 'kv1').seq}`);
}

/** Flips bytes in the middle of a snapshot's state blob, through a separate connection. */
function corruptSnapshot(db: string, machine: string, seq: number): void {
  const raw = rawDb(db, false);
  try {
    const row = raw.prepare('SELECT id, state FROM snapshots WHERE machine = ? AND seq = ? ORDER BY id DESC LIMIT 1').get(machine, seq) as { id: number; state: Buffer } | undefined;
    if (!row) throw new Error(`no snapshot of ${machine} at seq ${seq}`);
    const bytes = Buffer.from(row.state);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = bytes[at]! ^ 0xff;
    bytes[at + 1] = bytes[at + 1]! ^ 0x5a;
    raw.prepare('UPDATE snapshots SET state = ? WHERE id = ?').run(bytes, row.id);
  } finally {
    raw.close();
  }
}

test('corrupt newest snapshot: older snapshot plus a longer replay gives the same state', async (t) => {
  const db = tempDb(t);
  const expected = await buildHistory(db);
  const raw = rawDb(db);
  t.deepEqual(raw.prepare(`SELECT seq FROM snapshots WHERE machine = 'kv1' ORDER BY seq`).pluck().all(), [10, 13]);
  t.deepEqual(raw.prepare(`SELECT first_seq || '..' || last_seq FROM request_log WHERE machine = 'kv1' ORDER BY last_seq`).pluck().all(), ['11..11', '12..12', '13..13']);
  raw.close();

  // Control: an intact file recovers from the newest snapshot with nothing to replay.
  {
    const { app, events } = await startRecording(kvTree(), { db, snapshot: POLICY });
    t.like(recoveryOf(events, 'kv1'), { path: 'snapshot', snapshotSeq: 13, replayed: 0, seq: 13 });
    await app.stop();
  }

  corruptSnapshot(db, 'kv1', 13);
  const { app, events } = await startRecording(kvTree(), { db, snapshot: POLICY });
  const report = recoveryOf(events, 'kv1');
  t.like(report, { path: 'older-snapshot', snapshotSeq: 10, replayed: 3, seq: 13 });
  t.is(report?.rejected.length, 1);
  t.like(report?.rejected[0], { seq: 13, reason: 'checksum mismatch' });
  t.like(recoveryOf(events, 'kv2'), { path: 'snapshot' }, 'the other machine is unaffected');
  t.deepEqual(await kvEntries(app, 'kv1'), expected.kv1);
  t.deepEqual(await kvEntries(app, 'kv2'), expected.kv2);
  t.is(workerStatus(app, 'kv1').seq, 13);
  // The recovered machine keeps working and its next writes continue the sequence.
  await app.call('kv1', { op: 'store', key: 'after', value: 14 });
  t.is(workerStatus(app, 'kv1').seq, 14);
  await app.stop();

  const again = await startRecording(kvTree(), { db, snapshot: POLICY });
  t.like(recoveryOf(again.events, 'kv1'), { path: 'snapshot', seq: 14 });
  t.deepEqual(await kvEntries(again.app, 'kv1'), [...expected.kv1, ['after', 14] as [string, unknown]].sort(([a], [b]) => (a < b ? -1 : 1)));
  await again.app.stop();
});

test('every snapshot corrupt and the log truncated: RecoveryError, nothing deleted', async (t) => {
  const db = tempDb(t);
  await buildHistory(db);
  corruptSnapshot(db, 'kv1', 13);
  corruptSnapshot(db, 'kv1', 10);
  const before = tableCounts(db);
  const err = await t.throwsAsync(startApplication(kvTree(), { db, logger: false, snapshot: POLICY }), { instanceOf: RecoveryError });
  t.is(err?.machine, 'kv1');
  t.is(err?.code, 'RECOVERY_ERROR');
  t.regex(err?.message ?? '', /gap/);
  t.deepEqual(tableCounts(db), before, 'a failed recovery deletes nothing');
  // The lock was released: the file can be opened again (and still fails the same way).
  await t.throwsAsync(startApplication(kvTree(), { db, logger: false, snapshot: POLICY }), { instanceOf: RecoveryError });
});
