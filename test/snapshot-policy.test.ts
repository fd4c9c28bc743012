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
    const kv = () => ((app.status() as unknown as { children: unknown[] }).children[0] as { snapshotSeq: number; seq: number });
    t.is(kv().snapshotSeq, 0);
    const deadline = Date.now() + 5000;
    while (kv().snapshotSeq === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    t.is(kv().snapshotSeq, 1);
  } finally {
    await app.stop();
  }
});

test('maxTimeShare defers count and age triggers after a costly snapshot, never the byte bound', (t) => {
  const p = policy({ every: 10, everyMs: 500, everyBytes: 1000 }); // maxTimeShare 0.1 by default
  const last = { endedAt: 10_000, ms: 200 }; // may not be due again before 10,000 + 200 × 9
  const growth = { requests: 10, bytes: 999, firstAt: 9_000 };
  t.false(snapshotDue(p, growth, 11_799, last), 'count and age triggers wait out 9 × 200 ms');
  t.true(snapshotDue(p, growth, 11_800, last));
  t.true(snapshotDue(p, { ...growth, bytes: 1000 }, 10_001, last), 'the byte bound is never deferred');
  t.true(snapshotDue(p, growth, 10_001, null), 'no snapshot yet in this run: nothing to defer');
  t.true(snapshotDue(policy({ every: 10, maxTimeShare: 1 }), growth, 10_001, last), '1 turns the throttle off');
  t.false(snapshotDue(policy({ every: 10, maxTimeShare: 0.5 }), growth, 10_199, last), 'share 0.5: wait as long as it took');
  t.true(snapshotDue(policy({ every: 10, maxTimeShare: 0.5 }), growth, 10_200, last));
  for (const bad of [0, -0.1, 1.01, Number.NaN]) t.throws(() => policy({ maxTimeShare: bad }), { instanceOf: RangeError }, String(bad));
});

test('under a sustained write load, policy snapshots take about maxTimeShare of the time', async (t) => {
  // A state large enough that each snapshot costs real time (tens of ms), written without pause.
  const share = 0.2;
  const app = await startApplication(supervisor('one_for_one', [worker('kv', kvStore())]), { db: ':memory:', logger: false, snapshot: { every: 1_000, everyBytes: 0, maxTimeShare: share } });
  try {
    const keys = 150_000;
    for (let i = 0; i < keys; i += 1000) await Promise.all(Array.from({ length: 1000 }, (_, j) => app.call('kv', { op: 'store', key: `k${i + j}`, value: i + j })));
    const h = app.metrics.snapshotSeconds;
    const [sum0, count0] = [h.sum, h.count];
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < 2000) await Promise.all(Array.from({ length: 256 }, () => app.call('kv', { op: 'store', key: `k${n++ % keys}`, value: n })));
    const wall = performance.now() - t0;
    const spent = (h.sum - sum0) * 1000;
    const taken = h.count - count0;
    const each = taken > 0 ? spent / taken : 0;
    t.log(`${n} writes in ${Math.round(wall)} ms; ${taken} snapshots of ~${Math.round(each)} ms, ${Math.round(spent)} ms in all`);
    t.true(taken >= 1, 'snapshots still happen');
    t.true(taken < n / 1_000, 'fewer than one per 1,000 writes: the throttle deferred some');
    // Each gap is at least 1/share - 1 times the snapshot before it; a snapshot or two of slack at the edges.
    t.true(spent <= share * wall + 2 * each, `${Math.round(spent)} ms of snapshots in ${Math.round(wall)} ms`);
  } finally {
    await app.stop();
  }
});
