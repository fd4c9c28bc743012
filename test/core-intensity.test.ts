import test from 'ava';
import { ApplicationStoppedError, MachineCrashedError } from '../src/errors.js';
import { supervisor } from '../src/model/tree.js';
import { Recorder, settled, sleep, startProbeApp, supervisorStatus, workerStatus } from './helpers/core-fixtures.js';

/** Restart intensity (OTP's sliding window), escalation up the tree, and application stop at the root. */

test('intensity N tolerates N restarts within the period; the N+1th escalates and stops the application', async (t) => {
  const rec = new Recorder();
  const tree = supervisor('one_for_one', [rec.worker('a'), rec.worker('b'), rec.worker('c'), rec.worker('d')], { name: 'root', intensity: 3, periodMs: 60_000 });
  const app = await startProbeApp(t, tree, rec);
  let stoppedEarly = false;
  void app.stopped.then(() => (stoppedEarly = true));
  for (let i = 1; i <= 3; i++) {
    await t.throwsAsync(app.call('b', { op: 'crash' }), { instanceOf: MachineCrashedError });
    t.is(workerStatus(app, 'b').restarts, i);
    t.is(await app.call('b', { op: 'inc' }), i, 'the machine answers after each tolerated restart');
  }
  await sleep(10);
  t.false(stoppedEarly, 'three restarts are within intensity 3');
  t.false(rec.lines().includes('escalated root'));

  const mark = rec.events.length;
  const crash = settled(app.call('b', { op: 'crash' }));
  // Queued behind the crash in the same turn: pending when the root gives up.
  const pending = [settled(app.call('a', { op: 'inc' })), settled(app.call('c', { op: 'inc' })), settled(app.call('d', { op: 'get', key: 'x' }))];
  const result = await app.stopped;
  t.is(result.reason, 'failure');
  t.true(result.reason === 'failure' && (result.error as Error).message === 'boom');
  const c = await crash;
  t.true(!c.ok && c.error instanceof MachineCrashedError, 'the crashing caller gets MachineCrashedError');
  for (const p of await Promise.all(pending)) t.true(!p.ok && p.error instanceof ApplicationStoppedError, 'pending calls reject with ApplicationStoppedError');
  await t.throwsAsync(app.call('a', { op: 'count' }), { instanceOf: ApplicationStoppedError });
  t.throws(() => app.cast('a', { op: 'inc' }), { instanceOf: ApplicationStoppedError });
  t.deepEqual(rec.machinesWith('terminated', mark), ['d', 'c', 'b', 'a'], 'every machine terminated, in reverse start order');
  t.deepEqual(rec.lines(mark), ['crashed b', 'escalated root', 'terminated d escalation', 'terminated c escalation', 'terminated b crash', 'terminated a escalation', 'application_stopped']);
  // stop() after a failure is harmless and idempotent.
  await app.stop();
});

test('intensity 0: the first crash stops the application (hooks run in reverse)', async (t) => {
  const rec = new Recorder();
  const app = await startProbeApp(t, supervisor('one_for_all', [rec.worker('a'), rec.worker('b'), rec.worker('c')], { intensity: 0 }), rec);
  const mark = rec.trace.length;
  await t.throwsAsync(app.call('a', { op: 'crash' }), { instanceOf: MachineCrashedError });
  t.is((await app.stopped).reason, 'failure');
  t.deepEqual(rec.hooks(mark), ['stop:c', 'stop:b', 'stop:a']);
});

test('restarts older than periodMs fall out of the window', async (t) => {
  const rec = new Recorder();
  const app = await startProbeApp(t, supervisor('one_for_one', [rec.worker('a')], { name: 'root', intensity: 1, periodMs: 1000 }), rec);
  await t.throwsAsync(app.call('a', { op: 'crash' }), { instanceOf: MachineCrashedError });
  await sleep(1300);
  // The first restart is now outside the window: this one is tolerated.
  await t.throwsAsync(app.call('a', { op: 'crash' }), { instanceOf: MachineCrashedError });
  t.is(await app.call('a', { op: 'inc' }), 1);
  t.false(rec.lines().includes('escalated root'));
  // Two within the window: exceeded.
  await t.throwsAsync(app.call('a', { op: 'crash' }), { instanceOf: MachineCrashedError });
  t.is((await app.stopped).reason, 'failure');
  t.true(rec.lines().includes('escalated root'));
});

test('a child supervisor that exceeds its intensity fails; the parent restarts that subtree (one_for_one)', async (t) => {
  const rec = new Recorder();
  const tree = supervisor(
    'one_for_one',
    [rec.worker('a'), supervisor('one_for_one', [rec.worker('b'), rec.worker('c')], { name: 'sub', intensity: 0 }), rec.worker('d')],
    { name: 'root', intensity: 5, periodMs: 60_000 },
  );
  const app = await startProbeApp(t, tree, rec);
  for (const n of ['a', 'b', 'c', 'd']) await app.call(n, { op: 'inc' });
  const a0 = await app.call('a', { op: 'self' });
  const d0 = await app.call('d', { op: 'self' });
  const c0 = await app.call('c', { op: 'self' });
  const hookMark = rec.trace.length;
  const mark = rec.events.length;
  await t.throwsAsync(app.call('b', { op: 'crash' }), { instanceOf: MachineCrashedError });
  t.deepEqual(rec.lines(mark), [
    'crashed b',
    'escalated sub',
    'terminated c escalation',
    'terminated b crash',
    'restarting root b,c',
    'started b',
    'started c',
  ]);
  t.deepEqual(rec.hooks(hookMark), ['stop:c', 'stop:b', 'start:b', 'start:c']);
  t.is(await app.call('a', { op: 'self' }), a0, 'a untouched');
  t.is(await app.call('d', { op: 'self' }), d0, 'd untouched');
  t.not(await app.call('c', { op: 'self' }), c0, 'c restarted with its supervisor');
  for (const n of ['a', 'b', 'c', 'd']) t.is(await app.call(n, { op: 'count' }), 1, `${n} keeps its data`);
  t.is(supervisorStatus(app, 'sub').status, 'running');
  // The restarted subtree works, with a fresh window of its own (intensity 0 again).
  const mark2 = rec.events.length;
  await t.throwsAsync(app.call('c', { op: 'crash' }), { instanceOf: MachineCrashedError });
  t.deepEqual(rec.lines(mark2), ['crashed c', 'escalated sub', 'terminated c crash', 'terminated b escalation', 'restarting root b,c', 'started b', 'started c']);
  t.is(await app.call('b', { op: 'count' }), 1);
  t.is(await app.call('a', { op: 'self' }), a0, 'a still untouched');
});

test('escalation up the tree: the parent applies its own strategy (rest_for_one restarts the failed subtree and those after it)', async (t) => {
  const rec = new Recorder();
  const tree = supervisor(
    'rest_for_one',
    [rec.worker('a'), supervisor('one_for_one', [rec.worker('b'), rec.worker('c')], { name: 'sub', intensity: 0 }), rec.worker('d')],
    { name: 'root', intensity: 5, periodMs: 60_000 },
  );
  const app = await startProbeApp(t, tree, rec);
  const a0 = await app.call('a', { op: 'self' });
  const hookMark = rec.trace.length;
  await t.throwsAsync(app.call('c', { op: 'crash' }), { instanceOf: MachineCrashedError });
  t.deepEqual(rec.hooks(hookMark), ['stop:c', 'stop:b', 'stop:d', 'start:b', 'start:c', 'start:d']);
  t.is(await app.call('a', { op: 'self' }), a0);
  t.is(await app.call('d', { op: 'inc' }), 1);
});

test('escalation that also exceeds the parent stops the application: subtree first, then the rest in reverse', async (t) => {
  const rec = new Recorder();
  const tree = supervisor(
    'one_for_one',
    [rec.worker('a'), supervisor('one_for_one', [rec.worker('b'), rec.worker('c')], { name: 'sub', intensity: 0 }), rec.worker('d')],
    { name: 'root', intensity: 0 },
  );
  const app = await startProbeApp(t, tree, rec);
  const mark = rec.events.length;
  const crash = settled(app.call('b', { op: 'crash' }));
  const queued = settled(app.call('d', { op: 'inc' }));
  const result = await app.stopped;
  t.is(result.reason, 'failure');
  t.true((await crash).ok === false);
  const q = await queued;
  t.true(!q.ok && q.error instanceof ApplicationStoppedError);
  t.deepEqual(rec.lines(mark), [
    'crashed b',
    'escalated sub',
    'terminated c escalation',
    'terminated b crash',
    'escalated root',
    'terminated d escalation',
    'terminated a escalation',
    'application_stopped',
  ]);
  await t.throwsAsync(app.call('a', { op: 'count' }), { instanceOf: ApplicationStoppedError });
});

test('default intensity is OTP\'s: one restart in 5 s is tolerated, a second one escalates', async (t) => {
  const rec = new Recorder();
  const app = await startProbeApp(t, supervisor('one_for_one', [rec.worker('a')], { name: 'root' }), rec);
  await t.throwsAsync(app.call('a', { op: 'crash' }), { instanceOf: MachineCrashedError });
  t.is(await app.call('a', { op: 'inc' }), 1);
  await t.throwsAsync(app.call('a', { op: 'crash' }), { instanceOf: MachineCrashedError });
  t.is((await app.stopped).reason, 'failure');
  t.true(rec.lines().includes('escalated root'));
});
