import test from 'ava';
import { startApplication } from '../src/engine/application.js';
import { ApplicationStoppedError, ConfigError } from '../src/errors.js';
import { supervisor, worker } from '../src/model/tree.js';
import { Recorder, startProbeApp } from './helpers/core-fixtures.js';

/** Start/stop order, hooks under grace time, configuration errors at start. */

test('start order is depth-first, left to right; stop order is its exact reverse', async (t) => {
  const rec = new Recorder();
  const tree = supervisor('one_for_one', [
    rec.worker('a'),
    supervisor('one_for_all', [rec.worker('b'), supervisor('rest_for_one', [rec.worker('c'), rec.worker('d')]), rec.worker('e')]),
    rec.worker('f'),
    supervisor('one_for_one', [rec.worker('g')]),
  ]);
  const app = await startProbeApp(t, tree, rec);
  const order = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
  t.deepEqual(app.machines(), order);
  t.deepEqual(rec.hooks(), order.map((n) => `start:${n}`));
  t.deepEqual(rec.machinesWith('started'), order);
  const mark = rec.trace.length;
  const eventMark = rec.events.length;
  await app.stop();
  t.deepEqual(rec.hooks(mark), [...order].reverse().map((n) => `stop:${n}`));
  t.deepEqual(rec.lines(eventMark), [...[...order].reverse().map((n) => `terminated ${n} stop`), 'application_stopped']);
  t.deepEqual(await app.stopped, { reason: 'normal' });
  await t.throwsAsync(app.call('a', { op: 'count' }), { instanceOf: ApplicationStoppedError });
});

test('stop() serves the calls already queued before terminating, and is idempotent', async (t) => {
  const rec = new Recorder();
  const app = await startProbeApp(t, supervisor('one_for_one', [rec.worker('a')]), rec);
  const queued = [1, 2, 3].map(() => app.call('a', { op: 'inc' }));
  const stopping = app.stop();
  await t.throwsAsync(app.call('a', { op: 'inc' }), { instanceOf: ApplicationStoppedError }, 'new calls are refused once stopping');
  t.deepEqual(await Promise.all(queued), [1, 2, 3]);
  await stopping;
  await app.stop();
  t.is(rec.hooks().filter((h) => h === 'stop:a').length, 1, 'terminated once');
});

test('async hooks within the grace time are awaited, in order', async (t) => {
  const rec = new Recorder();
  const done: string[] = [];
  const slowHook = (label: string) => (name: string) =>
    new Promise<void>((r) =>
      setTimeout(() => {
        done.push(`${label}:${name}`);
        r();
      }, 30),
    );
  const opts = { shutdownMs: 5000 };
  const probe = { onStart: slowHook('started'), onTerminate: slowHook('stopped') };
  const app = await startProbeApp(t, supervisor('one_for_one', [rec.worker('a', opts, probe), rec.worker('b', opts, probe)]), rec);
  t.deepEqual(done, ['started:a', 'started:b'], 'b starts only after a has finished starting');
  await app.stop();
  t.deepEqual(done, ['started:a', 'started:b', 'stopped:b', 'stopped:a']);
  t.false(rec.events.some((e) => e.type === 'hook_timeout'));
});

test('an onStart that overruns shutdownMs is abandoned and reported; the machine runs', async (t) => {
  const rec = new Recorder();
  const never = () => new Promise<void>(() => {});
  const tree = supervisor('one_for_one', [rec.worker('a', { shutdownMs: 100 }, { onStart: never }), rec.worker('b')]);
  const t0 = Date.now();
  const app = await startProbeApp(t, tree, rec);
  t.true(Date.now() - t0 < 100 + 2000);
  const timeouts = rec.events.filter((e) => e.type === 'hook_timeout');
  t.deepEqual(timeouts, [{ type: 'hook_timeout', machine: 'a', hook: 'onStart', ms: 100 }]);
  t.deepEqual(rec.machinesWith('started'), ['a', 'b']);
  t.is(await app.call('a', { op: 'inc' }), 1);
});

test('onTerminate hooks that overrun are abandoned and reported; stop() completes within about the grace time', async (t) => {
  const rec = new Recorder();
  const never = () => new Promise<void>(() => {});
  const grace = 200;
  const tree = supervisor('one_for_one', [
    rec.worker('a', { shutdownMs: grace }, { onTerminate: never }),
    rec.worker('b', { shutdownMs: grace }, { onTerminate: never }),
    rec.worker('c', { shutdownMs: grace }),
  ]);
  const app = await startProbeApp(t, tree, rec);
  const mark = rec.events.length;
  const t0 = Date.now();
  await app.stop();
  const elapsed = Date.now() - t0;
  // Two hooks abandoned one after the other: 2 × grace, plus generous slack (behaviour, not perf).
  t.true(elapsed < 2 * grace + 2000, `stop took ${elapsed} ms`);
  t.true(elapsed >= grace, `the grace time was actually granted (${elapsed} ms)`);
  t.deepEqual(rec.lines(mark), [
    'terminated c stop',
    'hook_timeout b onTerminate',
    'terminated b stop',
    'hook_timeout a onTerminate',
    'terminated a stop',
    'application_stopped',
  ]);
  t.deepEqual(await app.stopped, { reason: 'normal' });
});

test('a hook that throws is reported (hook_failed) and does not stop the machine', async (t) => {
  const rec = new Recorder();
  const boom = () => {
    throw new Error('hook boom');
  };
  const app = await startProbeApp(t, supervisor('one_for_one', [rec.worker('a', {}, { onStart: boom, onTerminate: boom })]), rec);
  t.true(rec.lines().includes('hook_failed a onStart'));
  t.is(await app.call('a', { op: 'inc' }), 1);
  await app.stop();
  t.true(rec.lines().includes('hook_failed a onTerminate'));
  t.true(rec.lines().includes('terminated a stop'));
});

test('a slow onTerminate during a restart is bounded by the grace time too', async (t) => {
  const rec = new Recorder();
  const never = () => new Promise<void>(() => {});
  const app = await startProbeApp(t, supervisor('one_for_one', [rec.worker('a', { shutdownMs: 150 }, { onTerminate: never })], { intensity: 5 }), rec);
  const mark = rec.events.length;
  await t.throwsAsync(app.call('a', { op: 'crash' }));
  t.deepEqual(rec.lines(mark), ['crashed a', 'restarting root a', 'hook_timeout a onTerminate', 'terminated a crash', 'started a']);
  t.is(await app.call('a', { op: 'inc' }), 1);
});

test('duplicate machine names are a ConfigError at start', async (t) => {
  const rec = new Recorder();
  const tree = supervisor('one_for_one', [rec.worker('a'), supervisor('one_for_one', [rec.worker('b'), rec.worker('a')])]);
  const err = await t.throwsAsync(startApplication(tree, { db: ':memory:', logger: rec.logger }), { instanceOf: ConfigError });
  t.regex(err!.message, /duplicate.*\ba\b/);
  t.deepEqual(rec.hooks(), [], 'nothing was started');
});

test('invalid trees and options are ConfigErrors', async (t) => {
  const rec = new Recorder();
  t.throws(() => worker('bad name!', rec.machine('x')), { instanceOf: ConfigError });
  t.throws(() => supervisor('one_for_none' as 'one_for_one', []), { instanceOf: ConfigError });
  t.throws(() => supervisor('one_for_one', [], { intensity: -1 }), { instanceOf: ConfigError });
  t.throws(() => supervisor('one_for_one', [], { periodMs: 0 }), { instanceOf: ConfigError });
  await t.throwsAsync(startApplication(worker('w', rec.machine('w')) as never, { db: ':memory:', logger: false }), { instanceOf: ConfigError });
  await t.throwsAsync(startApplication(supervisor('one_for_one', [rec.worker('a')]), { db: ':memory:', logger: false, callTimeoutMs: 0 }), { instanceOf: ConfigError });
});
