import test from 'ava';
import { startApplication } from '../src/engine/application.js';
import { ConfigError, MachineCrashedError, MachineStoppedError, StartError } from '../src/errors.js';
import { stopNormally, type AnyMachine } from '../src/model/machine.js';
import { supervisor, worker, type RestartType, type Strategy } from '../src/model/tree.js';
import { Recorder, sleep, startProbeApp, workerStatus } from './helpers/core-fixtures.js';

/**
 * Cases of OTP's lib/stdlib/test/supervisor_SUITE.erl that map onto this model, each named after
 * its OTP case, with OTP's flags (intensity, period 3600 s).
 */

const HOUR = 3_600_000;

/** A probe machine that stops normally on `quit` and whose init() fails on the calls in `failOn`. */
function child(rec: Recorder, name: string, failOn: (call: number) => boolean = () => false): AnyMachine {
  const base = rec.machine(name);
  let calls = 0;
  return {
    ...base,
    init: () => {
      if (failOn(++calls)) throw new Error(`${name} start ${calls} fails`);
      return base.init();
    },
    step: (input: { op: string }, state: unknown) => (input.op === 'quit' ? stopNormally(state, 'bye') : base.step(input as never, state as never)),
  };
}

for (const [restart, restarted] of [['permanent', true], ['transient', false], ['temporary', false]] as const) {
  test(`${restart}_normal`, async (t) => {
    const rec = new Recorder();
    const app = await startProbeApp(t, supervisor('one_for_one', [worker('child1', child(rec, 'child1'), { restart })], { intensity: 2, periodMs: HOUR }), rec);
    t.is(await app.call('child1', { op: 'quit' }), 'bye');
    if (restarted) t.is(await app.call('child1', { op: 'count' }), 0);
    else await t.throwsAsync(app.call('child1', { op: 'count' }), { instanceOf: MachineStoppedError });
  });
}

for (const [restart, restarted] of [['permanent', true], ['transient', true], ['temporary', false]] as [RestartType, boolean][]) {
  test(`${restart}_abnormal`, async (t) => {
    const rec = new Recorder();
    const app = await startProbeApp(t, supervisor('one_for_one', [worker('child1', child(rec, 'child1'), { restart })], { intensity: 2, periodMs: HOUR }), rec);
    await t.throwsAsync(app.call('child1', { op: 'crash' }), { instanceOf: MachineCrashedError });
    if (restarted) t.is(workerStatus(app, 'child1').status, 'running');
    else await t.throwsAsync(app.call('child1', { op: 'count' }), { instanceOf: MachineStoppedError });
  });
}

/** [child1, child2] with OTP's flags; child2's start fails once, on its first restart. */
async function otherChildFailsRestart(t: Parameters<typeof startProbeApp>[0], strategy: Strategy) {
  const rec = new Recorder();
  const tree = supervisor(strategy, [worker('child1', child(rec, 'child1')), worker('child2', child(rec, 'child2', (n) => n === 2))], { intensity: 3, periodMs: HOUR });
  const app = await startProbeApp(t, tree, rec);
  const mark = rec.trace.length;
  await t.throwsAsync(app.call('child1', { op: 'crash' }), { instanceOf: MachineCrashedError });
  for (const n of ['child1', 'child2']) t.is(workerStatus(app, n).status, 'running');
  return rec.hooks(mark);
}

test('one_for_all_other_child_fails_restart', async (t) => {
  // The restarted child1 is terminated when child2 fails to start, then both start again.
  t.deepEqual(await otherChildFailsRestart(t, 'one_for_all'), ['stop:child2', 'stop:child1', 'start:child1', 'stop:child1', 'start:child1', 'start:child2']);
});

test('rest_for_one_other_child_fails_restart', async (t) => {
  // Only child2 is started again: child1, already restarted, is not restarted a second time.
  t.deepEqual(await otherChildFailsRestart(t, 'rest_for_one'), ['stop:child2', 'stop:child1', 'start:child1', 'start:child2']);
});

for (const strategy of ['one_for_one', 'one_for_all', 'rest_for_one'] as const) {
  test(`${strategy}_escalation`, async (t) => {
    // child2 can never be started again: the retries use up the intensity and the supervisor gives up.
    const rec = new Recorder();
    const failing = strategy === 'one_for_one' ? 'child1' : 'child2';
    const children = [worker('child1', child(rec, 'child1', (n) => failing === 'child1' && n > 1)), worker('child2', child(rec, 'child2', (n) => failing === 'child2' && n > 1))];
    const app = await startProbeApp(t, supervisor(strategy, children, { name: 'sup_test', intensity: 4, periodMs: HOUR }), rec);
    await t.throwsAsync(app.call('child1', { op: 'crash' }), { instanceOf: MachineCrashedError });
    const result = await app.stopped;
    t.true(result.reason === 'failure' && result.error instanceof StartError && result.error.machine === failing);
    t.is(rec.lines().filter((l) => l.startsWith('restarting')).length, 4, 'four attempts within intensity 4, the fifth gives up');
  });
}

test('sup_start_fail', async (t) => {
  const rec = new Recorder();
  const err = await t.throwsAsync(startApplication(supervisor('one_for_one', [worker('child1', child(rec, 'child1', () => true))]), { db: ':memory:', logger: false }), { instanceOf: StartError });
  t.is(err!.machine, 'child1');
});

test('sup_start_map_faulty_specs', (t) => {
  t.throws(() => supervisor('one_for_one', ['child4' as never]), { instanceOf: ConfigError });
  t.throws(() => supervisor('one_for_one', [], { periodMs: Infinity }), { instanceOf: ConfigError });
});

test('tree: a one_for_all restart starts a stopped transient child again', async (t) => {
  const rec = new Recorder();
  const tree = supervisor('one_for_all', [worker('child1', child(rec, 'child1')), worker('supchild3', child(rec, 'supchild3'), { restart: 'transient' })], { intensity: 4, periodMs: HOUR });
  const app = await startProbeApp(t, tree, rec);
  await app.call('supchild3', { op: 'quit' });
  await sleep(5);
  t.is(workerStatus(app, 'supchild3').status, 'stopped');
  await t.throwsAsync(app.call('child1', { op: 'crash' }), { instanceOf: MachineCrashedError });
  t.is(workerStatus(app, 'supchild3').status, 'running');
});
