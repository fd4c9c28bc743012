import test, { type ExecutionContext } from 'ava';
import { MachineCrashedError } from '../src/errors.js';
import { supervisor, type Strategy } from '../src/model/tree.js';
import { Recorder, seqs, startProbeApp, supervisorStatus, workerStatus } from './helpers/core-fixtures.js';

/**
 * Restart strategies: exactly the right machines restarted, stopped in reverse and started in
 * order, and everything else left alone (same live state object, same data).
 */

/** root one_for_one [a, sub<strategy>[b, c, d], e]; c crashes. */
async function crashInSub(t: ExecutionContext, strategy: Strategy) {
  const rec = new Recorder();
  const tree = supervisor(
    'one_for_one',
    [rec.worker('a'), supervisor(strategy, [rec.worker('b'), rec.worker('c'), rec.worker('d')], { name: 'sub', intensity: 10, periodMs: 60_000 }), rec.worker('e')],
    { name: 'root', intensity: 10, periodMs: 60_000 },
  );
  const app = await startProbeApp(t, tree, rec);
  const names = ['a', 'b', 'c', 'd', 'e'];
  const before: Record<string, unknown> = {};
  for (const n of names) {
    await app.call(n, { op: 'put', key: 'k', value: `v-${n}` });
    await app.call(n, { op: 'inc' });
    before[n] = await app.call(n, { op: 'self' });
  }
  const hookMark = rec.trace.length;
  const eventMark = rec.events.length;
  const err = await t.throwsAsync(app.call('c', { op: 'crash', why: 'kaboom' }), { instanceOf: MachineCrashedError });
  t.is((err as MachineCrashedError).machine, 'c');
  t.is(((err as MachineCrashedError).cause as Error).message, 'kaboom');
  // Every machine still has its data (restarted ones are rebuilt from storage).
  for (const n of names) {
    t.is(await app.call(n, { op: 'get', key: 'k' }), `v-${n}`, `data of ${n}`);
    t.is(await app.call(n, { op: 'count' }), 1, `counter of ${n} (the crash's corruption is gone)`);
  }
  const after: Record<string, unknown> = {};
  for (const n of names) after[n] = await app.call(n, { op: 'self' });
  const restarted = names.filter((n) => after[n] !== before[n]);
  return { app, rec, hooks: rec.hooks(hookMark), lines: rec.lines(eventMark), restarted };
}

test('one_for_one restarts only the crashed machine', async (t) => {
  const { app, hooks, lines, restarted } = await crashInSub(t, 'one_for_one');
  t.deepEqual(restarted, ['c']);
  t.deepEqual(hooks, ['stop:c', 'start:c']);
  t.deepEqual(lines, ['crashed c', 'restarting sub c', 'terminated c crash', 'started c']);
  t.deepEqual(
    ['a', 'b', 'c', 'd', 'e'].map((n) => workerStatus(app, n).restarts),
    [0, 0, 1, 0, 0],
  );
});

test('one_for_all restarts every sibling: stopped in reverse, started in order', async (t) => {
  const { app, hooks, lines, restarted } = await crashInSub(t, 'one_for_all');
  t.deepEqual(restarted, ['b', 'c', 'd']);
  t.deepEqual(hooks, ['stop:d', 'stop:c', 'stop:b', 'start:b', 'start:c', 'start:d']);
  t.deepEqual(lines, [
    'crashed c',
    'restarting sub b,c,d',
    'terminated d restart',
    'terminated c crash',
    'terminated b restart',
    'started b',
    'started c',
    'started d',
  ]);
  t.deepEqual(
    ['a', 'b', 'c', 'd', 'e'].map((n) => workerStatus(app, n).restarts),
    [0, 1, 1, 1, 0],
  );
});

test('rest_for_one restarts the crashed machine and those started after it, not those before', async (t) => {
  const { app, hooks, lines, restarted } = await crashInSub(t, 'rest_for_one');
  t.deepEqual(restarted, ['c', 'd']);
  t.deepEqual(hooks, ['stop:d', 'stop:c', 'start:c', 'start:d']);
  t.deepEqual(lines, ['crashed c', 'restarting sub c,d', 'terminated d restart', 'terminated c crash', 'started c', 'started d']);
  t.deepEqual(
    ['a', 'b', 'c', 'd', 'e'].map((n) => workerStatus(app, n).restarts),
    [0, 0, 1, 1, 0],
  );
});

test('rest_for_one on the first child restarts all; on the last child only the last', async (t) => {
  const rec = new Recorder();
  const tree = supervisor('rest_for_one', [rec.worker('a'), rec.worker('b'), rec.worker('c')], { intensity: 10, periodMs: 60_000 });
  const app = await startProbeApp(t, tree, rec);
  let mark = rec.trace.length;
  await t.throwsAsync(app.call('a', { op: 'crash' }), { instanceOf: MachineCrashedError });
  t.deepEqual(rec.hooks(mark), ['stop:c', 'stop:b', 'stop:a', 'start:a', 'start:b', 'start:c']);
  mark = rec.trace.length;
  await t.throwsAsync(app.call('c', { op: 'crash' }), { instanceOf: MachineCrashedError });
  t.deepEqual(rec.hooks(mark), ['stop:c', 'start:c']);
});

test('one_for_all at the root restarts a whole child subtree, depth-first, in order', async (t) => {
  const rec = new Recorder();
  const tree = supervisor('one_for_all', [rec.worker('a'), supervisor('one_for_one', [rec.worker('b'), rec.worker('c')], { name: 'sub' }), rec.worker('d')], {
    name: 'root',
    intensity: 10,
    periodMs: 60_000,
  });
  const app = await startProbeApp(t, tree, rec);
  await app.call('b', { op: 'put', key: 'k', value: 1 });
  const mark = rec.trace.length;
  const eventMark = rec.events.length;
  await t.throwsAsync(app.call('a', { op: 'crash' }), { instanceOf: MachineCrashedError });
  t.deepEqual(rec.hooks(mark), ['stop:d', 'stop:c', 'stop:b', 'stop:a', 'start:a', 'start:b', 'start:c', 'start:d']);
  t.deepEqual(rec.lines(eventMark).slice(0, 2), ['crashed a', 'restarting root a,b,c,d']);
  t.is(await app.call('b', { op: 'get', key: 'k' }), 1);
  // The inner supervisor's own window was not charged: the restart was the root's.
  t.is(supervisorStatus(app, 'sub').status, 'running');
});

test('a crash does not change the sequence numbers of other machines, and the crashed request is not logged', async (t) => {
  const rec = new Recorder();
  const tree = supervisor('one_for_one', [rec.worker('a'), rec.worker('b')], { intensity: 10, periodMs: 60_000 });
  const app = await startProbeApp(t, tree, rec);
  await app.call('a', { op: 'inc' });
  await app.call('b', { op: 'inc' });
  await app.call('b', { op: 'inc' });
  t.deepEqual(seqs(app), { a: 1, b: 2 });
  await t.throwsAsync(app.call('a', { op: 'crash' }), { instanceOf: MachineCrashedError });
  t.deepEqual(seqs(app), { a: 1, b: 2 });
  t.is(await app.call('a', { op: 'count' }), 1);
});
