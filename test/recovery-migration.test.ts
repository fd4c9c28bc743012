/**
 * State versions: a snapshot written by version 1 of a machine (state as a plain object) is
 * migrated by version 2 (state as a Map) at recovery, before the log after it is replayed by
 * version 2's step. A version without migrate(), or whose migrate() throws, is refused with a
 * RecoveryError and nothing on disk is touched.
 */
import test from 'ava';
import { startApplication } from '../src/engine/application.js';
import { RecoveryError } from '../src/errors.js';
import { kvStep, type KvInput, type KvTable } from '../src/kv/kv-machine.js';
import { defineMachine } from '../src/model/machine.js';
import { supervisor, worker } from '../src/model/tree.js';
import { kvEntries, rawDb, recoveryOf, startRecording, tableCounts, tempDb } from './helpers/persistence-kv.js';

/** A KV state as a plain Map: kvStep works on any KvTable. */
type MapState = Map<string, unknown> & KvTable;

type V1State = Record<string, unknown>;

/** Version 1: the state is a plain object. */
const v1 = defineMachine<V1State, KvInput, unknown>({
  version: 1,
  init: () => ({}),
  readOnly: (i) => i.op === 'lookup' || i.op === 'entries' || i.op === 'size',
  step: (i, s) => {
    switch (i.op) {
      case 'store':
        s[i.key] = i.value;
        return [s, null];
      case 'delete': {
        const had = i.key in s;
        delete s[i.key];
        return [s, had];
      }
      case 'lookup':
        return [s, i.key in s ? s[i.key] : null];
      case 'entries':
        return [s, Object.entries(s).sort(([a], [b]) => (a < b ? -1 : 1))];
      default:
        return [s, Object.keys(s).length];
    }
  },
});

function v2(migrate?: (state: unknown, from: number) => MapState) {
  return defineMachine<MapState, KvInput, unknown>({
    version: 2,
    init: () => new Map(),
    step: (i, s) => {
      if (!(s instanceof Map)) throw new TypeError('version 2 expects a Map');
      return kvStep(i, s);
    },
    readOnly: (i) => i.op === 'lookup' || i.op === 'entries' || i.op === 'size' || i.op === 'has',
    ...(migrate ? { migrate } : {}),
  });
}

const tree = (m: ReturnType<typeof v2> | typeof v1) => supervisor('one_for_one', [worker('kv', m)], { name: 'root' });

/**
 * Version 1 writes a, b, checkpoints (snapshot at seq 2, state version 1), writes c, and stops
 * with its terminate snapshot failing, so c (seq 3) is only in the log after the v1 snapshot.
 */
async function writeV1(db: string): Promise<void> {
  let failSnapshots = false;
  const app = await startApplication(tree(v1), {
    db,
    logger: false,
    snapshot: { every: 0 },
    faults: {
      beforeSnapshotCommit: () => {
        if (failSnapshots) throw new Error('injected: terminate snapshot lost');
      },
    },
  });
  await app.call('kv', { op: 'store', key: 'a', value: 1 });
  await app.call('kv', { op: 'store', key: 'b', value: { nested: [2] } });
  await app.checkpoint('kv');
  await app.call('kv', { op: 'store', key: 'c', value: 3 });
  failSnapshots = true;
  await app.stop();
}

test('a version-1 snapshot is migrated by version 2, then the log after it is replayed', async (t) => {
  const db = tempDb(t);
  await writeV1(db);
  const calls: number[] = [];
  const migrating = v2((state, from) => {
    calls.push(from);
    if (from !== 1 || state instanceof Map || typeof state !== 'object' || state === null) throw new TypeError('unexpected v1 state');
    return new Map(Object.entries(state as V1State));
  });
  const { app, events } = await startRecording(tree(migrating), { db, snapshot: { every: 0 } });
  t.deepEqual(calls, [1], 'migrate ran once, from version 1');
  t.like(recoveryOf(events, 'kv'), { path: 'snapshot', snapshotSeq: 2, snapshotVersion: 1, replayed: 1, seq: 3 });
  t.deepEqual(await kvEntries(app, 'kv'), [
    ['a', 1],
    ['b', { nested: [2] }],
    ['c', 3],
  ]);
  t.is(await app.call('kv', { op: 'size' }), 3, 'the state is now a Map (version 2 step)');
  await app.call('kv', { op: 'delete', key: 'a' });
  await app.stop();

  const raw = rawDb(db);
  t.is(raw.prepare(`SELECT state_version FROM snapshot_list WHERE machine = 'kv' ORDER BY seq DESC LIMIT 1`).pluck().get(), 2, 'the new snapshot is version 2');
  t.is(raw.prepare(`SELECT state_version FROM machines WHERE name = 'kv'`).pluck().get(), 2);
  raw.close();

  // From a version-2 snapshot, nothing needs migrating.
  const again = await startRecording(tree(migrating), { db, snapshot: { every: 0 } });
  t.deepEqual(calls, [1]);
  t.like(recoveryOf(again.events, 'kv'), { snapshotVersion: 2, seq: 4 });
  t.deepEqual(await kvEntries(again.app, 'kv'), [
    ['b', { nested: [2] }],
    ['c', 3],
  ]);
  await again.app.stop();
});

test('version 2 without migrate(): RecoveryError naming the machine, nothing deleted, version 1 still opens', async (t) => {
  const db = tempDb(t);
  await writeV1(db);
  const before = tableCounts(db);
  const err = await t.throwsAsync(startApplication(tree(v2()), { db, logger: false }), { instanceOf: RecoveryError });
  t.is(err?.machine, 'kv');
  t.is(err?.seq, 2, 'names the sequence number of the snapshot it could not use');
  t.regex(err?.message ?? '', /version 1.*version 2.*migrate/);
  t.deepEqual(tableCounts(db), before);

  const app = await startApplication(tree(v1), { db, logger: false });
  t.deepEqual(await kvEntries(app, 'kv'), [
    ['a', 1],
    ['b', { nested: [2] }],
    ['c', 3],
  ]);
  await app.stop();
});

test('a migrate() that throws: RecoveryError, nothing deleted', async (t) => {
  const db = tempDb(t);
  await writeV1(db);
  const before = tableCounts(db);
  const err = await t.throwsAsync(
    startApplication(
      tree(
        v2(() => {
          throw new Error('cannot read this shape');
        }),
      ),
      { db, logger: false },
    ),
    { instanceOf: RecoveryError },
  );
  t.is(err?.machine, 'kv');
  t.regex(err?.message ?? '', /cannot read this shape/);
  t.deepEqual(tableCounts(db), before);
});
