import test from 'ava';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { affectedChildren, planRestart, planRetry, recordRestart, type FailureInput } from '../src/engine/restart-plan.js';
import type { RestartType, Strategy } from '../src/model/tree.js';

/** restart-plan.ts is pure: its decisions are checked against properties over random inputs. */

const strategyArb = fc.constantFrom<Strategy>('one_for_one', 'one_for_all', 'rest_for_one');

/** A supervisor's children: count, which one failed, which others are alive. */
const childrenArb = fc.integer({ min: 1, max: 12 }).chain((count) =>
  fc.record({
    count: fc.constant(count),
    failed: fc.integer({ min: 0, max: count - 1 }),
    alive: fc.array(fc.boolean(), { minLength: count, maxLength: count }),
  }),
);

const failureArb: fc.Arbitrary<FailureInput> = fc
  .record({
    strategy: strategyArb,
    children: childrenArb,
    failedRestart: fc.constantFrom<RestartType>('permanent', 'transient', 'temporary'),
    intensity: fc.integer({ min: 0, max: 5 }),
    periodMs: fc.integer({ min: 1, max: 10_000 }),
    now: fc.integer({ min: 0, max: 1_000_000 }),
    ages: fc.array(fc.integer({ min: 0, max: 20_000 }), { maxLength: 8 }),
  })
  .map((r) => ({
    strategy: r.strategy,
    childCount: r.children.count,
    failed: r.children.failed,
    failedRestart: r.failedRestart,
    alive: r.children.alive.map((a, i) => i !== r.children.failed && a),
    restartTimes: r.ages.map((age) => r.now - age).sort((a, b) => a - b),
    intensity: r.intensity,
    periodMs: r.periodMs,
    now: r.now,
  }));

test('one_for_one always restarts exactly the failed child', (t) => {
  fc.assert(
    fc.property(childrenArb, ({ count, failed, alive }) => {
      assert.deepEqual(affectedChildren('one_for_one', count, failed, alive), [failed]);
    }),
  );
  t.pass();
});

test('one_for_all restarts the failed child and every alive sibling, in start order', (t) => {
  fc.assert(
    fc.property(childrenArb, ({ count, failed, alive }) => {
      const expected = [...Array(count).keys()].filter((i) => i === failed || alive[i]);
      assert.deepEqual(affectedChildren('one_for_all', count, failed, alive), expected);
    }),
  );
  t.pass();
});

test('rest_for_one restarts the failed child and the alive ones after it, never one before', (t) => {
  fc.assert(
    fc.property(childrenArb, ({ count, failed, alive }) => {
      const got = affectedChildren('rest_for_one', count, failed, alive);
      const expected = [...Array(count).keys()].filter((i) => i === failed || (i > failed && alive[i]));
      assert.deepEqual(got, expected);
      assert.ok(got.every((i) => i >= failed));
    }),
  );
  t.pass();
});

test('planRestart: a restart stops in exactly the reverse of its start order, and the failed child is in both', (t) => {
  fc.assert(
    fc.property(failureArb, (input) => {
      const { decision } = planRestart(input);
      if (decision.action !== 'restart') return;
      assert.deepEqual([...decision.stop].reverse(), [...decision.start]);
      assert.ok(decision.start.includes(input.failed));
      assert.deepEqual(decision.start, affectedChildren(input.strategy, input.childCount, input.failed, input.alive));
      // Start order is ascending (left to right) and without duplicates.
      assert.ok(decision.start.every((v, i, a) => i === 0 || a[i - 1]! < v));
    }),
  );
  t.pass();
});

test('planRestart: temporary children are dropped without touching the window; others restart or escalate', (t) => {
  fc.assert(
    fc.property(failureArb, (input) => {
      const { decision, restartTimes } = planRestart(input);
      if (input.failedRestart === 'temporary') {
        assert.deepEqual(decision, { action: 'drop', stop: [input.failed] });
        assert.deepEqual(restartTimes, [...input.restartTimes]);
        return;
      }
      const window = recordRestart(input.restartTimes, input.now, input.intensity, input.periodMs);
      assert.deepEqual(restartTimes, window.times);
      assert.equal(decision.action, window.exceeded ? 'escalate' : 'restart');
    }),
  );
  t.pass();
});

test('planRestart: escalation stops every running child and the failed one, in reverse start order', (t) => {
  fc.assert(
    fc.property(failureArb, (input) => {
      const { decision } = planRestart(input);
      if (decision.action !== 'escalate') return;
      const expected = [...Array(input.childCount).keys()].filter((i) => i === input.failed || input.alive[i]).reverse();
      assert.deepEqual(decision.stop, expected);
    }),
  );
  t.pass();
});

test('recordRestart: exceeded iff more than `intensity` restarts (this one included) fall within the window', (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 20_000 }), { maxLength: 10 }),
      fc.integer({ min: 20_000, max: 40_000 }),
      fc.integer({ min: 0, max: 6 }),
      fc.integer({ min: 1, max: 20_000 }),
      (times, now, intensity, periodMs) => {
        const { times: kept, exceeded } = recordRestart(times, now, intensity, periodMs);
        const inWindow = times.filter((x) => now - x < periodMs).length + 1;
        assert.equal(exceeded, inWindow > intensity);
        assert.equal(kept.length, inWindow);
        assert.equal(kept.at(-1), now);
        assert.ok(kept.every((x) => now - x < periodMs));
      },
    ),
  );
  t.pass();
});

test('recordRestart: N restarts at the same instant are tolerated with intensity N; the N+1th is not', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 10 }), fc.integer({ min: 1, max: 100_000 }), fc.integer({ min: 0, max: 1e9 }), (n, periodMs, now) => {
      let times: number[] = [];
      for (let i = 0; i < n; i++) {
        const r = recordRestart(times, now, n, periodMs);
        assert.ok(!r.exceeded);
        times = r.times;
      }
      assert.ok(recordRestart(times, now, n, periodMs).exceeded);
      // Once the period has passed, the window is empty again.
      assert.equal(recordRestart(times, now + periodMs, n, periodMs).exceeded, n === 0);
    }),
  );
  t.pass();
});

test('recordRestart and planRestart do not mutate their inputs', (t) => {
  fc.assert(
    fc.property(failureArb, (input) => {
      const times = [...input.restartTimes];
      const alive = [...input.alive];
      planRestart(input);
      recordRestart(input.restartTimes, input.now, input.intensity, input.periodMs);
      assert.deepEqual(input.restartTimes, times);
      assert.deepEqual(input.alive, alive);
    }),
  );
  t.pass();
});

test('planRestart: temporary siblings caught in a one_for_all or rest_for_one restart are stopped but not started again', (t) => {
  for (const strategy of ['one_for_all', 'rest_for_one'] as const) {
    const { decision } = planRestart({
      strategy,
      childCount: 3,
      failed: 0,
      failedRestart: 'permanent',
      childRestart: ['permanent', 'temporary', 'permanent'],
      alive: [false, true, true],
      restartTimes: [],
      intensity: 5,
      periodMs: 1000,
      now: 0,
    });
    t.deepEqual(decision, { action: 'restart', stop: [2, 1, 0], start: [0, 2] }, strategy);
  }
});

test('planRetry (OTP try_again_restart): counts against the intensity; retries what OTP retries', (t) => {
  fc.assert(
    fc.property(failureArb, fc.integer({ min: 0, max: 11 }), (input, k) => {
      const first = planRestart({ ...input, failedRestart: 'permanent' });
      if (first.decision.action !== 'restart') return;
      const pending = first.decision.start;
      const failed = pending[k % pending.length]!;
      // Children of the attempt started before `failed` are running, the rest are not.
      const alive = input.alive.map((a, i) => (pending.includes(i) ? i < failed : a));
      const { decision, restartTimes } = planRetry({ ...input, failed, pending, alive, restartTimes: first.restartTimes });
      const window = recordRestart(first.restartTimes, input.now, input.intensity, input.periodMs);
      assert.deepEqual(restartTimes, window.times);
      assert.equal(decision.action, window.exceeded ? 'escalate' : 'restart');
      if (decision.action !== 'restart') return;
      const expected = input.strategy === 'one_for_one' ? [failed] : input.strategy === 'one_for_all' ? [...pending] : pending.filter((i) => i >= failed);
      assert.deepEqual(decision.start, expected);
      assert.deepEqual(decision.stop, expected.filter((i) => i === failed || alive[i]).reverse());
    }),
  );
  t.pass();
});
