import test from 'ava';
import { MachineCrashedError, StartError } from '../src/errors.js';
import { startApplication } from '../src/engine/application.js';
import type { AnyMachine } from '../src/model/machine.js';
import { supervisor, worker, type Strategy } from '../src/model/tree.js';
import { Recorder, sleep, startProbeApp, workerStatus } from './helpers/core-fixtures.js';

/**
 * A restart whose start fails is tried again, as OTP's try_again_restart (supervisor.erl
 * restart/2): each attempt counts against the intensity, one_for_all stops the children already
 * restarted and starts them all again, rest_for_one starts again from the child that failed.
 */

/** A probe machine whose init() throws on the calls listed in `failOn` (1-based). */
function flaky(rec: Recorder, name: string, failOn: number[]): AnyMachine {
  let calls = 0;
  const base = rec.machine(name);
  return {
    ...base,
    init: () => {
      calls++;
      if (failOn.includes(calls)) throw new Error(`init of ${name} failed (call ${calls})`);
      return base.init();
    },
  };
}

/** root <strategy> [a, f, b], intensity 3; `crasher` crashes; f's first restart fails to start. */
async function run(t: Parameters<typeof startProbeApp>[0], strategy: Strategy, crasher: string, intensity = 3) {
  const rec = new Recorder();
  // f is never written: it has no snapshot, so every start of f calls init().
  const tree = supervisor(strategy, [rec.worker('a'), rec.worker('b'), worker('f', flaky(rec, 'f', [2])), rec.worker('c')], { name: 'root', intensity, periodMs: 60_000 });
  const app = await startProbeApp(t, tree, rec);
  let stopped = false;
  void app.stopped.then(() => (stopped = true));
  const mark = rec.trace.length;
  await t.throwsAsync(app.call(crasher, { op: 'crash' }), { instanceOf: MachineCrashedError });
  await sleep(10);
  return { app, rec, hooks: rec.hooks(mark), stopped: () => stopped };
}

test('one_for_one: a restart whose start fails once is tried again and survives with intensity 3', async (t) => {
  const { app, rec, stopped } = await run(t, 'one_for_one', 'f');
  t.false(stopped(), 'the application keeps running');
  t.is(workerStatus(app, 'f').status, 'running');
  t.is(workerStatus(app, 'f').restarts, 2, 'two restart attempts of f');
  t.is(await app.call('f', { op: 'inc' }), 1);
  t.deepEqual(rec.lines().filter((l) => l.startsWith('restarting') || l.startsWith('escalated')), ['restarting root f', 'restarting root f']);
});

test('each attempt counts against the intensity: with intensity 1 a crash plus a failed start escalates', async (t) => {
  const { app, rec, stopped } = await run(t, 'one_for_one', 'f', 1);
  const result = await app.stopped;
  t.true(stopped());
  t.is(result.reason, 'failure');
  t.regex(((result as { error: Error }).error).message, /init of f failed/);
  t.deepEqual(rec.lines().filter((l) => l.startsWith('restarting') || l.startsWith('escalated')), ['restarting root f', 'escalated root']);
});

test('one_for_all: the retry stops the children already restarted and starts them all again', async (t) => {
  const { app, hooks, stopped } = await run(t, 'one_for_all', 'a');
  t.false(stopped());
  // First attempt: all stopped in reverse, a and b start, f fails (no onStart); then a and b
  // are stopped again and everything started in order.
  t.deepEqual(hooks, ['stop:c', 'stop:f', 'stop:b', 'stop:a', 'start:a', 'start:b', 'stop:b', 'stop:a', 'start:a', 'start:b', 'start:f', 'start:c']);
  t.deepEqual(['a', 'b', 'f', 'c'].map((n) => workerStatus(app, n).restarts), [2, 2, 2, 1]);
  for (const n of ['a', 'b', 'f', 'c']) t.is(workerStatus(app, n).status, 'running');
});

test('rest_for_one: the retry starts again from the child that failed, keeping those before it', async (t) => {
  const { app, hooks, stopped } = await run(t, 'rest_for_one', 'b');
  t.false(stopped());
  t.deepEqual(hooks, ['stop:c', 'stop:f', 'stop:b', 'start:b', 'start:f', 'start:c']);
  t.deepEqual(['a', 'b', 'f', 'c'].map((n) => workerStatus(app, n).restarts), [0, 1, 2, 1]);
  for (const n of ['a', 'b', 'f', 'c']) t.is(workerStatus(app, n).status, 'running');
});

test('a child supervisor that fails to start is torn down and tried again', async (t) => {
  const rec = new Recorder();
  const sub = supervisor('one_for_one', [rec.worker('s1'), worker('f', flaky(rec, 'f', [2])), rec.worker('s2')], { name: 'sub', intensity: 0 });
  const app = await startProbeApp(t, supervisor('one_for_all', [rec.worker('a'), sub], { name: 'root', intensity: 3, periodMs: 60_000 }), rec);
  const mark = rec.trace.length;
  await t.throwsAsync(app.call('a', { op: 'crash' }), { instanceOf: MachineCrashedError });
  t.deepEqual(rec.hooks(mark), ['stop:s2', 'stop:f', 'stop:s1', 'stop:a', 'start:a', 'start:s1', 'stop:s1', 'stop:a', 'start:a', 'start:s1', 'start:f', 'start:s2']);
  for (const n of ['a', 's1', 'f', 's2']) t.is(workerStatus(app, n).status, 'running');
});

test('a failed start names the machine and keeps the cause (OTP failed_to_start_child)', async (t) => {
  const rec = new Recorder();
  const tree = supervisor('one_for_one', [rec.worker('a'), worker('f', flaky(rec, 'f', [1]))]);
  const err = await t.throwsAsync(startApplication(tree, { db: ':memory:', logger: false }), { instanceOf: StartError });
  t.is(err!.machine, 'f');
  t.is(err!.code, 'START_ERROR');
  t.regex((err!.cause as Error).message, /init of f failed \(call 1\)/);
  t.regex(err!.message, /^f failed to start: init of f failed/);
  t.deepEqual(rec.hooks(), ['start:a', 'stop:a'], 'the start is undone');
});

test('a restart that keeps failing escalates with the StartError naming the machine', async (t) => {
  const { app } = await run(t, 'one_for_one', 'f', 1);
  const result = await app.stopped;
  t.true(result.reason === 'failure' && result.error instanceof StartError && result.error.machine === 'f');
});
