/**
 * The snapshot policy on disk: after `every` logged requests a snapshot exists; log rows that
 * every kept snapshot already covers are truncated (unless `retainLog`); only `keepSnapshots`
 * snapshots remain. A request whose step threw goes to failed_requests and is never replayed.
 */
import test from 'ava';
import { startApplication } from '../src/engine/application.js';
import { cbor } from '../src/encoding/cbor.js';
import { MachineCrashedError } from '../src/errors.js';
import { kvStep, kvMachine, type KvInput, type KvTable } from '../src/kv/kv-machine.js';
import { defineMachine } from '../src/model/machine.js';
import { kvEntries, kvTree, rawDb, recoveryOf, startRecording, tempDb } from './helpers/persistence-kv.js';

/** A KV state as a plain Map: kvStep works on any KvTable. */
type MapState = Map<string, unknown> & KvTable;

interface OnDisk {
  snapshots: number[];
  reasons: string[];
  logSeqs: number[];
}

function onDisk(db: string, machine: string): OnDisk {
  const raw = rawDb(db);
  try {
    const snaps = raw.prepare('SELECT seq, reason FROM snapshots WHERE machine = ? ORDER BY seq').all(machine) as { seq: number; reason: string }[];
    const rows = raw.prepare('SELECT first_seq, last_seq, requests FROM request_log WHERE machine = ? ORDER BY last_seq').all(machine) as { first_seq: number; last_seq: number; requests: Buffer }[];
    const logSeqs: number[] = [];
    for (const r of rows) {
      const inputs = cbor.decodeMultiple(r.requests) as unknown[];
      if (inputs.length !== r.last_seq - r.first_seq + 1) throw new Error(`log row ${r.first_seq}..${r.last_seq} holds ${inputs.length} requests`);
      for (let s = r.first_seq; s <= r.last_seq; s++) logSeqs.push(s);
    }
    return { snapshots: snaps.map((s) => s.seq), reasons: snaps.map((s) => s.reason), logSeqs };
  } finally {
    raw.close();
  }
}

const range = (from: number, to: number): number[] => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

for (const { every, keep, retainLog } of [
  { every: 5, keep: 2, retainLog: false },
  { every: 3, keep: 3, retainLog: false },
  { every: 4, keep: 1, retainLog: false },
  { every: 5, keep: 2, retainLog: true },
]) {
  test(`every ${every}, keepSnapshots ${keep}, retainLog ${retainLog}: snapshots and log truncation after each request`, async (t) => {
    const db = tempDb(t);
    const app = await startApplication(kvTree(), { db, logger: false, snapshot: { every, keepSnapshots: keep, retainLog, everyBytes: 0, maxTimeShare: 1 } });
    for (let n = 1; n <= 17; n++) {
      // One request per batch, so the policy sees each one.
      await app.call('kv1', { op: 'store', key: `k${n % 6}`, value: n });
      const due = range(1, n).filter((s) => s % every === 0);
      const kept = due.slice(-keep);
      const disk = onDisk(db, 'kv1');
      t.deepEqual(disk.snapshots, kept, `after ${n}: snapshots`);
      t.true(
        disk.reasons.every((r) => r === 'policy'),
        'taken by policy',
      );
      // The log is kept back to the oldest of `keep` snapshots, and whole until `keep` exist, so
      // every kept snapshot (or init) remains a fall-back.
      const expectedLog = retainLog || kept.length < keep ? range(1, n) : range(kept[0]! + 1, n);
      t.deepEqual(disk.logSeqs, expectedLog, `after ${n}: log rows`);
    }
    t.deepEqual(onDisk(db, 'kv2'), { snapshots: [], reasons: [], logSeqs: [] }, 'the other machine is untouched');
    const expected = await kvEntries(app, 'kv1');
    await app.stop();
    const { app: again, events } = await startRecording(kvTree(), { db, snapshot: { every, keepSnapshots: keep, retainLog, maxTimeShare: 1 } });
    t.like(recoveryOf(events, 'kv1'), { path: 'snapshot', seq: 17 });
    t.deepEqual(await kvEntries(again, 'kv1'), expected);
    await again.stop();
  });
}

test('everyBytes: a snapshot once the log since the last one reaches the byte budget', async (t) => {
  const db = tempDb(t);
  const input = (n: number): KvInput => ({ op: 'store', key: `k${n}`, value: 'v'.repeat(50) });
  const size = cbor.encode(input(1)).byteLength; // keys k1..k9 all encode to the same size
  const budget = size * 3 + 1; // reached by the 4th request
  const app = await startApplication(kvTree(), { db, logger: false, snapshot: { every: 0, everyBytes: budget } });
  for (let n = 1; n <= 9; n++) {
    await app.call('kv1', input(n));
    t.deepEqual(onDisk(db, 'kv1').snapshots, n >= 8 ? [4, 8] : n >= 4 ? [4] : [], `after ${n}`);
  }
  await app.stop();
});

test('a request whose step threw is in failed_requests, never in the log, and never replayed', async (t) => {
  const db = tempDb(t);
  // A state-changing (logged) input that throws: the one kind a replay could trip over.
  const picky = defineMachine<MapState, KvInput, unknown>({
    ...kvMachine({ deliberateCrash: true }),
    step: (input, state) => {
      if (input.op === 'store' && input.key === 'bad') throw new RangeError('no bad keys');
      return kvStep(input, state);
    },
  });
  let loseSnapshots = false;
  const options = {
    db,
    logger: false as const,
    snapshot: { every: 0 },
    faults: {
      beforeSnapshotCommit: () => {
        if (loseSnapshots) throw new Error('injected: snapshot lost');
      },
    },
  };
  const app = await startApplication(kvTree(['kv1', 'kv2'], picky), options);
  await app.call('kv1', { op: 'store', key: 'a', value: 1 });
  // In one batch with good requests around it: they commit, it does not.
  const burst = await Promise.allSettled([
    app.call('kv1', { op: 'store', key: 'b', value: 2 }),
    app.call('kv1', { op: 'store', key: 'bad', value: 'boom' }),
    app.call('kv1', { op: 'store', key: 'c', value: 3 }),
  ]);
  t.deepEqual(
    burst.map((r) => r.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  t.true((burst[1] as PromiseRejectedResult).reason instanceof MachineCrashedError);
  loseSnapshots = true; // the restart below must replay the whole log from init
  await app.stop();
  loseSnapshots = false;

  const raw = rawDb(db);
  const failed = raw.prepare('SELECT machine, after_seq, error_name, error_message, stack, input FROM failed_requests').all() as Record<string, unknown>[];
  const logged = (raw.prepare(`SELECT requests FROM request_log WHERE machine = 'kv1' ORDER BY last_seq`).pluck().all() as Buffer[]).flatMap((b) => cbor.decodeMultiple(b) as KvInput[]);
  raw.close();
  t.is(failed.length, 1);
  t.like(failed[0], { machine: 'kv1', after_seq: 2, error_name: 'RangeError', error_message: 'no bad keys' });
  t.regex(failed[0]!['stack'] as string, /no bad keys/);
  t.deepEqual(cbor.decode(failed[0]!['input'] as Buffer), { op: 'store', key: 'bad', value: 'boom' });
  t.deepEqual(
    logged.map((i) => (i.op === 'store' ? i.key : i.op)),
    ['a', 'b', 'c'],
    'the log holds the good requests only',
  );

  // Replay from init meets only good requests: no RecoveryError, the failed one has no effect.
  const { app: again, events } = await startRecording(kvTree(['kv1', 'kv2'], picky), options);
  t.like(recoveryOf(events, 'kv1'), { path: 'init', replayed: 3, seq: 3 });
  t.deepEqual(await kvEntries(again, 'kv1'), [
    ['a', 1],
    ['b', 2],
    ['c', 3],
  ]);
  await again.stop();
});
