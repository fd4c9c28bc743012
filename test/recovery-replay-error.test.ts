/**
 * A replay that throws (the step changed, or is not deterministic) stops the start with a
 * RecoveryError naming the machine and the sequence number of the request it could not replay,
 * and deletes nothing: the original code still recovers everything.
 */
import test from 'ava';
import { startApplication } from '../src/engine/application.js';
import { RecoveryError } from '../src/errors.js';
import { kvStep, kvMachine, type KvInput, type KvTable } from '../src/kv/kv-machine.js';
import { defineMachine } from '../src/model/machine.js';
import { kvEntries, kvTree, tableCounts, tempDb } from './helpers/persistence-kv.js';

/** A KV state as a plain Map: kvStep works on any KvTable. */
type MapState = Map<string, unknown> & KvTable;

/** Writes k1..k5 to kv1 (and one write to kv2). With `snapshotAt`, kv1 is checkpointed after that many; the terminate snapshot is lost so the log must be replayed. */
async function writeHistory(db: string, snapshotAt?: number): Promise<void> {
  let failSnapshots = false;
  const app = await startApplication(kvTree(), {
    db,
    logger: false,
    snapshot: { every: 0 },
    faults: {
      beforeSnapshotCommit: () => {
        if (failSnapshots) throw new Error('injected: snapshot lost');
      },
    },
  });
  await app.call('kv2', { op: 'store', key: 'x', value: 'untouched' });
  for (let i = 1; i <= 5; i++) {
    await app.call('kv1', { op: 'store', key: `k${i}`, value: i });
    if (i === snapshotAt) await app.checkpoint('kv1');
  }
  failSnapshots = true;
  await app.stop();
}

/** The KV machine with a changed step: it now refuses to store `key`. */
const changed = (key: string) =>
  defineMachine<MapState, KvInput, unknown>({
    ...kvMachine({ deliberateCrash: true }),
    step: (input, state) => {
      if (input.op === 'store' && input.key === key) throw new Error(`refusing ${key}`);
      return kvStep(input, state);
    },
  });

for (const { snapshotAt, badKey, seq } of [
  { snapshotAt: undefined, badKey: 'k3', seq: 3 },
  { snapshotAt: 2, badKey: 'k4', seq: 4 },
]) {
  test(`replay that throws at seq ${seq} (${snapshotAt ? `after snapshot @${snapshotAt}` : 'from init'}): RecoveryError with machine and seq, nothing deleted`, async (t) => {
    const db = tempDb(t);
    await writeHistory(db, snapshotAt);
    const before = tableCounts(db);
    const err = await t.throwsAsync(startApplication(kvTree(['kv1', 'kv2'], changed(badKey)), { db, logger: false }), { instanceOf: RecoveryError });
    t.is(err?.machine, 'kv1');
    t.is(err?.seq, seq);
    t.regex(err?.message ?? '', new RegExp(`kv1.*seq ${seq}.*refusing ${badKey}`));
    t.deepEqual(tableCounts(db), before, 'nothing deleted (log rows and snapshots unchanged)');

    const app = await startApplication(kvTree(), { db, logger: false });
    t.deepEqual(await kvEntries(app, 'kv1'), [1, 2, 3, 4, 5].map((i) => [`k${i}`, i]));
    t.deepEqual(await kvEntries(app, 'kv2'), [['x', 'untouched']]);
    await app.stop();
  });
}
