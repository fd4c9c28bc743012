import test from 'ava';
import { startApplication } from '../src/application.js';
import { kvStore } from '../src/examples/kv-store.js';
import { DEFAULT_SNAPSHOT_POLICY, resolveSnapshotPolicy, snapshotDue } from '../src/snapshot-policy.js';
import { supervisor, worker } from '../src/tree.js';

const policy = (p = {}) => resolveSnapshotPolicy(p);

test('nothing logged since the last snapshot: never due, whatever the policy', (t) => {
  t.false(snapshotDue(policy({ every: 1, everyMs: 1, everyBytes: 1 }), { requests: 0, bytes: 0, firstAt: null }, 1e12));
});

test('due by count, by bytes and by age, each on its own', (t) => {
  const p = policy({ every: 10, everyBytes: 1000, everyMs: 500 });
  t.false(snapshotDue(p, { requests: 9, bytes: 999, firstAt: 1000 }, 1499));
  t.true(snapshotDue(p, { requests: 10, bytes: 0, firstAt: 1000 }, 1000));
  t.true(snapshotDue(p, { requests: 1, bytes: 1000, firstAt: 1000 }, 1000));
  t.true(snapshotDue(p, { requests: 1, bytes: 1, firstAt: 1000 }, 1500));
});

test('0 disables a trigger', (t) => {
  const p = policy({ every: 0, everyBytes: 0, everyMs: 0 });
  t.false(snapshotDue(p, { requests: 1e9, bytes: 1e12, firstAt: 0 }, 1e12));
});

test('defaults and validation', (t) => {
  t.deepEqual(policy(), DEFAULT_SNAPSHOT_POLICY);
  t.is(policy({ every: undefined }).every, DEFAULT_SNAPSHOT_POLICY.every);
  t.throws(() => policy({ every: -1 }), { instanceOf: RangeError });
  t.throws(() => policy({ keepSnapshots: 0 }), { instanceOf: RangeError });
  t.throws(() => policy({ everyMs: Number.NaN }), { instanceOf: RangeError });
});

test('a time-based snapshot is taken even when writes stop', async (t) => {
  const app = await startApplication(supervisor('one_for_one', [worker('kv', kvStore())]), { db: ':memory:', logger: false, snapshot: { every: 0, everyBytes: 0, everyMs: 100 } });
  try {
    await app.call('kv', { op: 'store', key: 'a', value: 1 });
    const kv = () => (app.status().children[0] as { snapshotSeq: number; seq: number });
    t.is(kv().snapshotSeq, 0);
    const deadline = Date.now() + 5000;
    while (kv().snapshotSeq === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    t.is(kv().snapshotSeq, 1);
  } finally {
    await app.stop();
  }
});
