import test from 'ava';
import { startApplication } from '../src/engine/application.js';
import { MachineStoppedError } from '../src/errors.js';
import { stopNormally, type AnyMachine } from '../src/model/machine.js';
import { supervisor, worker, type RestartType, type Strategy } from '../src/model/tree.js';
import { Recorder, settled, sleep, startProbeApp, workerStatus } from './helpers/core-fixtures.js';
import { tempDb } from './helpers/persistence-kv.js';

/**
 * Normal exit (OTP's `{stop, normal, Reply, State}`): a step replies and stops its machine.
 * permanent: restarted always, counted as a restart; transient: only after a crash; temporary:
 * never. The state at the stop is committed, snapshotted, and restored by the next start.
 */

/** A probe machine that also understands `{ op: 'quit' }`: reply 'bye' and stop normally. */
function quitter(rec: Recorder, name: string): AnyMachine {
  const base = rec.machine(name);
  return {
    ...base,
    step: (input: { op: string }, state: unknown) => (input.op === 'quit' ? stopNormally(state, 'bye') : base.step(input as never, state as never)),
  };
}

async function app1(t: Parameters<typeof startProbeApp>[0], restart: RestartType, options: { intensity?: number; strategy?: Strategy } = {}) {
  const rec = new Recorder();
  const tree = supervisor(options.strategy ?? 'one_for_one', [rec.worker('a'), worker('q', quitter(rec, 'q'), { restart }), rec.worker('b')], { name: 'root', intensity: options.intensity ?? 5, periodMs: 60_000 });
  const app = await startProbeApp(t, tree, rec);
  let stopped = false;
  void app.stopped.then(() => (stopped = true));
  await app.call('q', { op: 'inc' });
  return { app, rec, stopped: () => stopped };
}

test('permanent: the stopping call is answered, the machine restarts from the state it stopped with, and it counts as a restart', async (t) => {
  const { app, rec } = await app1(t, 'permanent');
  const mark = rec.trace.length;
  const ev = rec.events.length;
  t.is(await app.call('q', { op: 'quit' }), 'bye');
  t.is(await app.call('q', { op: 'count' }), 1, 'the state at the stop was kept');
  t.is(workerStatus(app, 'q').restarts, 1);
  t.is(workerStatus(app, 'q').status, 'running');
  t.deepEqual(rec.hooks(mark), ['stop:q', 'start:q']);
  t.deepEqual(rec.lines(ev), ['restarting root q', 'terminated q restart', 'started q']);
  t.is(workerStatus(app, 'q').snapshotSeq, workerStatus(app, 'q').seq, 'snapshotted as it stopped');
});

test('permanent: normal stops count against the intensity like crashes (intensity 1: the second escalates)', async (t) => {
  const { app, rec } = await app1(t, 'permanent', { intensity: 1 });
  t.is(await app.call('q', { op: 'quit' }), 'bye');
  t.is(await app.call('q', { op: 'quit' }), 'bye');
  const result = await app.stopped;
  t.is(result.reason, 'failure');
  t.true(rec.lines().includes('escalated root'));
});

for (const restart of ['transient', 'temporary'] as const) {
  test(`${restart}: the stopping call is answered, then the machine stays stopped (MachineStoppedError), snapshotted, no restart counted`, async (t) => {
    const { app, rec, stopped } = await app1(t, restart, { intensity: 0 });
    const mark = rec.trace.length;
    const ev = rec.events.length;
    // Queued in the same batch as the stop: meets the stopped machine.
    const [quit, after] = await Promise.all([settled(app.call('q', { op: 'quit' })), settled(app.call('q', { op: 'inc' }))]);
    t.deepEqual(quit, { ok: true, value: 'bye' });
    t.true(!after.ok && after.error instanceof MachineStoppedError && after.error.machine === 'q');
    await t.throwsAsync(app.call('q', { op: 'count' }), { instanceOf: MachineStoppedError });
    await sleep(10);
    t.false(stopped(), 'intensity 0 is not consumed by a normal stop');
    t.is(workerStatus(app, 'q').status, 'stopped');
    t.is(workerStatus(app, 'q').restarts, 0);
    t.is(workerStatus(app, 'q').snapshotSeq, workerStatus(app, 'q').seq, 'snapshotted as it stopped');
    t.deepEqual(rec.hooks(mark), ['stop:q']);
    t.deepEqual(rec.lines(ev), ['terminated q normal']);
    t.is(await app.call('a', { op: 'inc' }), 1, 'siblings are untouched');
  });
}

test('permanent: calls queued behind the stop are served by the restarted machine', async (t) => {
  const { app } = await app1(t, 'permanent');
  const [quit, after] = await Promise.all([app.call('q', { op: 'quit' }), app.call('q', { op: 'inc' })]);
  t.is(quit, 'bye');
  t.is(after, 2);
});

test('transient: a crash is still restarted', async (t) => {
  const { app } = await app1(t, 'transient');
  await t.throwsAsync(app.call('q', { op: 'crash' }));
  t.is(workerStatus(app, 'q').restarts, 1);
  t.is(await app.call('q', { op: 'count' }), 1);
});

test("one_for_all: a sibling's crash starts a normally stopped transient child again (its spec is kept, as OTP), never a temporary one", async (t) => {
  for (const restart of ['transient', 'temporary'] as const) {
    const { app } = await app1(t, restart, { strategy: 'one_for_all' });
    await app.call('q', { op: 'quit' });
    await t.throwsAsync(app.call('a', { op: 'crash' }));
    if (restart === 'transient') t.is(await app.call('q', { op: 'count' }), 1, 'transient restarted with its state');
    else await t.throwsAsync(app.call('q', { op: 'count' }), { instanceOf: MachineStoppedError });
    await app.stop();
  }
});

test('the state a machine stopped with is restored when the application starts again', async (t) => {
  const db = tempDb(t, 'ssm-normal-exit-');
  const rec = new Recorder();
  const tree = () => supervisor('one_for_one', [worker('q', quitter(rec, 'q'), { restart: 'transient' })]);
  const app = await startApplication(tree(), { db, logger: false });
  await app.call('q', { op: 'inc' });
  await app.call('q', { op: 'inc' });
  t.is(await app.call('q', { op: 'quit' }), 'bye');
  await app.stop();
  const again = await startApplication(tree(), { db, logger: false });
  t.is(await again.call('q', { op: 'count' }), 2);
  t.is(workerStatus(again, 'q').status, 'running');
  await again.stop();
});

test('a step result that is neither [state, output] nor stopNormally(...) is a crash', async (t) => {
  const rec = new Recorder();
  const base = rec.machine('x');
  const bad: AnyMachine = { ...base, step: (_i: unknown, s: unknown) => [s, 1, { stop: 'weird' }] as never };
  const app = await startProbeApp(t, supervisor('one_for_one', [worker('x', bad)], { intensity: 5 }), rec);
  const err = await t.throwsAsync(app.call('x', { op: 'inc' }));
  t.regex((err!.cause as Error).message, /must return \[state, output\] or stopNormally/);
});
