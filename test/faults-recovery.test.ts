/**
 * Damaged storage at start: a corrupt newest snapshot (flipped bytes) falls back to the older
 * snapshot plus replay with the same state; a snapshot whose state version the machine cannot
 * migrate, and a request log entry that no longer decodes, refuse to start with a RecoveryError
 * naming the machine and the sequence number, and delete nothing: once the cause is repaired,
 * every acknowledged write is there.
 */
import test from 'ava';
import fc from 'fast-check';
import { copyFileSync, existsSync } from 'node:fs';
import { startApplication } from '../src/engine/application.js';
import { RecoveryError } from '../src/errors.js';
import { kvStep, validateKvInput, type KvInput, type KvTable } from '../src/kv/kv-machine.js';
import { defineMachine } from '../src/model/machine.js';
import { childValue, kvTree, rawDb, recoveryOf, startRecording, tableCounts, tempDb } from './helpers/persistence-kv.js';
import { acks, runFixture } from './helpers/faults-spawn.js';
import { kvDigest, outcome } from './helpers/faults-util.js';

/** A KV state as a plain Map: kvStep works on any KvTable. */
type MapState = Map<string, unknown> & KvTable;

/** The failing machine's snapshots and log rows, byte for byte. */
function machineRows(db: string, machine: string): string {
  const raw = rawDb(db);
  try {
    const snaps = raw.prepare('SELECT id, seq, hex(state) FROM snapshots WHERE machine = ? ORDER BY id').raw().all(machine);
    const log = raw.prepare('SELECT id, first_seq, last_seq, hex(requests) FROM request_log WHERE machine = ? ORDER BY id').raw().all(machine);
    return JSON.stringify({ snaps, log });
  } finally {
    raw.close();
  }
}

function copyDb(from: string, to: string): void {
  for (const suffix of ['', '-wal']) if (existsSync(from + suffix)) copyFileSync(from + suffix, to + suffix);
}

test('corrupt newest snapshot (random flipped bytes): recovery takes the older snapshot plus replay, same state, nothing deleted', async (t) => {
  const pristine = tempDb(t, 'ssm-faults-rec-');
  const { app } = await startRecording(kvTree(['kv1']), { db: pristine, snapshot: { every: 0, keepSnapshots: 2 } });
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 50; i++) await app.call('kv1', { op: 'store', key: `r${round}:${i}`, value: { round, i, s: 'v'.repeat(i) } });
    if (round < 2) await app.checkpoint();
  }
  const digest = await kvDigest(app);
  await app.stop(); // writes the terminate snapshot: the newest
  const raw = rawDb(pristine);
  const [newest, older] = raw.prepare(`SELECT id, seq, length(state) AS size FROM snapshots WHERE machine = 'kv1' ORDER BY seq DESC`).all() as { id: number; seq: number; size: number }[];
  raw.close();
  t.truthy(newest && older && newest.seq > older.seq);

  const work = pristine.replace(/app\.db$/, 'work.db');
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fc.uniqueArray(fc.nat({ max: newest!.size - 1 }), { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: 255 }), async (positions, mask) => {
      runs++;
      copyDb(pristine, work);
      const w = rawDb(work, false);
      const blob = Buffer.from(w.prepare('SELECT state FROM snapshots WHERE id = ?').pluck().get(newest!.id) as Buffer);
      for (const p of positions) blob[p]! ^= mask;
      w.prepare('UPDATE snapshots SET state = ? WHERE id = ?').run(blob, newest!.id);
      w.close();
      const before = tableCounts(work);
      const { app: again, events } = await startRecording(kvTree(['kv1']), { db: work });
      try {
        const report = recoveryOf(events, 'kv1')!;
        t.is(report.path, 'older-snapshot');
        t.is(report.snapshotSeq, older!.seq);
        t.is(report.rejected[0]?.reason, 'checksum mismatch');
        t.true(report.replayed > 0, 'the log after the older snapshot was replayed');
        t.deepEqual(tableCounts(work), before, 'the corrupt snapshot is kept for inspection');
        t.is(await kvDigest(again), digest);
      } finally {
        await again.stop();
      }
    }),
    { numRuns: 25 },
  );
  t.is(runs, 25);
});

/** The KV machine without a migrate(), at a chosen state version. */
function kvWithoutMigrate(version: number) {
  return defineMachine<MapState, KvInput, unknown>({
    init: () => new Map(),
    step: kvStep,
    validate: validateKvInput,
    readOnly: (i) => i.op !== 'store' && i.op !== 'delete',
    version,
  });
}

test('a snapshot whose state version has no migration: RecoveryError at start naming the machine and seq, nothing deleted, the old version still starts', async (t) => {
  const db = tempDb(t, 'ssm-faults-rec-');
  const v1 = await startApplication(kvTree(['kv1', 'kv2'], kvWithoutMigrate(1)), { db, logger: false });
  for (let i = 0; i < 40; i++) await v1.call(i % 2 ? 'kv1' : 'kv2', { op: 'store', key: `k${i}`, value: i });
  const digest = await kvDigest(v1);
  await v1.stop();
  const before = tableCounts(db);
  const raw = rawDb(db);
  const snapSeq = raw.prepare(`SELECT max(seq) FROM snapshots WHERE machine = 'kv1'`).pluck().get() as number;
  raw.close();

  const r = await outcome(startApplication(kvTree(['kv1', 'kv2'], kvWithoutMigrate(2)), { db, logger: false }));
  t.false(r.ok);
  const err = !r.ok ? r.error : null;
  t.true(err instanceof RecoveryError, `got ${String(err)}`);
  t.is((err as RecoveryError).machine, 'kv1');
  t.is((err as RecoveryError).seq, snapSeq);
  t.regex((err as Error).message, /kv1.*version 1.*version 2.*no migrate/);
  t.deepEqual(tableCounts(db), before, 'nothing deleted or added');

  const again = await startApplication(kvTree(['kv1', 'kv2'], kvWithoutMigrate(1)), { db, logger: false });
  t.is(await kvDigest(again), digest, 'the version that wrote the data still reads all of it');
  await again.stop();
});

test('a request log entry that no longer decodes: RecoveryError naming the machine and the entry\'s seq, nothing deleted; repaired, every acknowledged write is back', async (t) => {
  const db = tempDb(t, 'ssm-faults-rec-');
  // A real log, unsnapshotted: a child writes and is SIGKILLed.
  const run = await runFixture(['write', db, '0', '8'], {}, { killAfter: 200 });
  t.is(run.signal, 'SIGKILL');
  const acked = acks(run.lines);
  const w = rawDb(db, false);
  const rows = w.prepare(`SELECT id, first_seq AS firstSeq, last_seq AS lastSeq, requests FROM request_log WHERE machine = 'kv2' ORDER BY first_seq`).all() as { id: number; firstSeq: number; lastSeq: number; requests: Buffer }[];
  t.true(rows.length >= 3, `kv2 has ${rows.length} log rows`);
  const victim = rows[Math.floor(rows.length / 2)]!;
  const damaged = [
    Buffer.from([0xff, 0xff, 0xff]), // not CBOR at all
    victim.requests.subarray(0, victim.requests.length - 2), // truncated
    Buffer.concat([Buffer.from([0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), victim.requests]), // absurd declared length
  ];
  for (const bad of damaged) {
    w.prepare('UPDATE request_log SET requests = ? WHERE id = ?').run(bad, victim.id);
    const damagedRows = machineRows(db, 'kv2');
    const r = await outcome(startApplication(kvTree(), { db, logger: false }));
    const err = !r.ok ? r.error : null;
    t.true(err instanceof RecoveryError, `got ${String(err)}`);
    t.is((err as RecoveryError).machine, 'kv2');
    t.is((err as RecoveryError).seq, victim.firstSeq, 'the error names the first seq of the entry that does not decode');
    t.regex((err as Error).message, new RegExp(`kv2.*${victim.firstSeq}`));
    // Only the failing machine's data is promised untouched: machines that did start are
    // stopped normally, which may checkpoint them (their data moves into a snapshot).
    t.is(machineRows(db, 'kv2'), damagedRows, 'nothing of kv2 deleted or changed');
  }
  w.prepare('UPDATE request_log SET requests = ? WHERE id = ?').run(victim.requests, victim.id);
  w.close();
  const app = await startApplication(kvTree(), { db, logger: false });
  try {
    for (const [m, k] of acked) t.deepEqual(await app.call(m, { op: 'lookup', key: k }), childValue(k), `${m}/${k}`);
  } finally {
    await app.stop();
  }
});
