import test, { type ExecutionContext } from 'ava';
import { cbor, decodeCbor } from '../src/encoding/cbor.js';
import { ApplicationStoppedError, CallTimeoutError, DecodeError, EncodeError, MachineCrashedError, MachineStoppedError, QueueFullError, UnknownMachineError } from '../src/errors.js';
import { kvMachine } from '../src/kv/kv-machine.js';
import { defineMachine } from '../src/model/machine.js';
import { supervisor, worker } from '../src/model/tree.js';
import { Recorder, gate, seqs, settled, startProbeApp, workerStatus } from './helpers/core-fixtures.js';

/**
 * The request path: bounded queue, call timeouts, decode/unknown-machine errors, crash replies,
 * requests waiting during a restart, temporary children, cast.
 */

/** A tree whose machine `slow` blocks the loop during its restart until the test opens a gate. */
async function slowRestartApp(t: ExecutionContext, options: { queueCapacity?: number } = {}) {
  const rec = new Recorder();
  let armed: { entered: () => void; release: Promise<void> } | null = null;
  const slow = rec.worker(
    'slow',
    { shutdownMs: 30_000 },
    {
      onStart: () => {
        if (!armed) return;
        const a = armed;
        armed = null;
        a.entered();
        return a.release;
      },
    },
  );
  const tree = supervisor('one_for_one', [slow, rec.worker('kv')], { intensity: 10, periodMs: 60_000 });
  const app = await startProbeApp(t, tree, rec, options);
  /** Crashes `slow` and resolves once its restart is blocked in onStart; `release()` lets it finish. */
  const blockLoop = async () => {
    const entered = gate();
    const release = gate();
    armed = { entered: () => entered.open(), release: release.promise };
    const crash = settled(app.call('slow', { op: 'crash' }));
    await entered.promise;
    return { crash, release: () => release.open() };
  };
  return { app, rec, blockLoop };
}

test('queue full: the (capacity+1)th call rejects at once with QueueFullError; every accepted call is answered', async (t) => {
  const rec = new Recorder();
  const app = await startProbeApp(t, supervisor('one_for_one', [rec.worker('kv')]), rec, { queueCapacity: 3 });
  const order: string[] = [];
  const track = (label: string, p: Promise<unknown>) =>
    p.then(
      (v) => (order.push(`${label} ok`), v),
      (e: unknown) => {
        order.push(`${label} ${(e as Error).name}`);
        throw e;
      },
    );
  const accepted = [0, 1, 2].map((i) => track(`call${i}`, app.call('kv', { op: 'put', key: `k${i}`, value: i })));
  t.is(app.queueDepth, 3);
  const over = track('over', app.call('kv', { op: 'put', key: 'over', value: 'x' }));
  const err = await t.throwsAsync(over, { instanceOf: QueueFullError });
  t.is((err as QueueFullError).capacity, 3);
  t.deepEqual(order, ['over QueueFullError'], 'rejected before any accepted call was served');
  t.deepEqual(await Promise.all(accepted), [null, null, null]);
  t.is(await app.call('kv', { op: 'get', key: 'over' }), null, 'the rejected request was never applied');
  for (const i of [0, 1, 2]) t.is(await app.call('kv', { op: 'get', key: `k${i}` }), i);
  t.is(workerStatus(app, 'kv').seq, 3);
});

test('queue full while the loop is busy restarting: overflow rejects, all accepted are served after the restart', async (t) => {
  const { app, blockLoop } = await slowRestartApp(t, { queueCapacity: 4 });
  const { crash, release } = await blockLoop();
  const accepted = [1, 2, 3, 4].map((i) => settled(app.call('kv', { op: 'inc' })));
  t.is(app.queueDepth, 4);
  await t.throwsAsync(app.call('kv', { op: 'inc' }), { instanceOf: QueueFullError });
  t.throws(() => app.cast('kv', { op: 'inc' }), { instanceOf: QueueFullError });
  release();
  const c = await crash;
  t.true(!c.ok && c.error instanceof MachineCrashedError);
  const results = await Promise.all(accepted);
  t.deepEqual(
    results.map((r) => (r.ok ? r.value : r.error)),
    [1, 2, 3, 4],
  );
  t.is(await app.call('kv', { op: 'count' }), 4, 'exactly the accepted ones were applied');
});

test('call timeout: a request still queued when its timeout fires rejects with CallTimeoutError and is never applied', async (t) => {
  const { app, rec, blockLoop } = await slowRestartApp(t);
  await app.call('kv', { op: 'put', key: 'before', value: 0 });
  const seqBefore = workerStatus(app, 'kv').seq;
  const { crash, release } = await blockLoop();
  const timedOut = app.call('kv', { op: 'put', key: 'x', value: 'never' }, { timeoutMs: 50 });
  const patient = app.call('kv', { op: 'put', key: 'y', value: 'yes' }, { timeoutMs: 30_000 });
  t.is(app.queueDepth, 2);
  const err = await t.throwsAsync(timedOut, { instanceOf: CallTimeoutError });
  t.is((err as CallTimeoutError).machine, 'kv');
  t.is((err as CallTimeoutError).timeoutMs, 50);
  t.is(app.queueDepth, 1, 'the timed-out request was removed from the queue');
  release();
  await crash;
  t.is(await patient, null);
  t.is(await app.call('kv', { op: 'get', key: 'x' }), null, 'the timed-out store was not applied');
  t.is(await app.call('kv', { op: 'get', key: 'y' }), 'yes');
  t.is(workerStatus(app, 'kv').seq, seqBefore + 1, 'only the patient store was logged');
  t.false(rec.trace.includes('step:kv:put:x'), 'the timed-out request never reached step');
});

test('callTimeoutMs applies to calls without their own timeout', async (t) => {
  const rec = new Recorder();
  let armed = false;
  const entered = gate();
  const release = gate();
  const tree = supervisor(
    'one_for_one',
    [
      rec.worker('slow', { shutdownMs: 30_000 }, { onStart: () => (armed ? (entered.open(), release.promise) : undefined) }),
      rec.worker('kv'),
    ],
    { intensity: 10, periodMs: 60_000 },
  );
  const app = await startProbeApp(t, tree, rec, { callTimeoutMs: 40 });
  armed = true;
  const crash = settled(app.call('slow', { op: 'crash' }, { timeoutMs: 30_000 }));
  await entered.promise;
  const err = await t.throwsAsync(app.call('kv', { op: 'inc' }), { instanceOf: CallTimeoutError });
  t.is((err as CallTimeoutError).timeoutMs, 40);
  release.open();
  await crash;
  t.is(await app.call('kv', { op: 'count' }), 0);
});

test('DecodeError from callBytes with garbage bytes leaves the machine untouched', async (t) => {
  const rec = new Recorder();
  const app = await startProbeApp(t, supervisor('one_for_one', [rec.worker('kv'), worker('store', kvMachine({ deliberateCrash: true }))]), rec);
  await app.call('kv', { op: 'put', key: 'k', value: 'v' });
  await app.call('store', { op: 'store', key: 'k', value: 'v' });
  const before = seqs(app);
  const stepsBefore = rec.trace.filter((s) => s.startsWith('step:')).length;
  for (const garbage of [[0x1c], [0xff, 0xff, 0xff], [0xa1, 0x63], [0x9f], []]) {
    await t.throwsAsync(app.callBytes('kv', Uint8Array.from(garbage)), { instanceOf: DecodeError }, `bytes ${garbage.join(',')}`);
    await t.throwsAsync(app.callBytes('store', Uint8Array.from(garbage)), { instanceOf: DecodeError });
  }
  // Well-formed CBOR that the machine's validate() rejects is a DecodeError too, not a crash.
  await t.throwsAsync(app.callBytes('store', cbor.encode({ op: 'store', value: 1 })), { instanceOf: DecodeError });
  await t.throwsAsync(app.callBytes('store', cbor.encode({ op: 'explode' })), { instanceOf: DecodeError });
  t.deepEqual(seqs(app), before);
  t.is(rec.trace.filter((s) => s.startsWith('step:')).length, stepsBefore, 'step never ran');
  t.false(rec.events.some((e) => e.type === 'crashed'));
  t.is(workerStatus(app, 'store').restarts, 0);
  t.is(await app.call('kv', { op: 'get', key: 'k' }), 'v');
  t.is(await app.call('store', { op: 'lookup', key: 'k' }), 'v');
  // And the wire path works for good bytes.
  t.deepEqual(decodeCbor(await app.callBytes('store', cbor.encode({ op: 'lookup', key: 'k' }))), 'v');
});

test('UnknownMachineError leaves every machine untouched', async (t) => {
  const rec = new Recorder();
  const app = await startProbeApp(t, supervisor('one_for_one', [rec.worker('a'), rec.worker('b')]), rec);
  await app.call('a', { op: 'inc' });
  const before = seqs(app);
  const err = await t.throwsAsync(app.call('nope', { op: 'inc' }), { instanceOf: UnknownMachineError });
  t.is((err as UnknownMachineError).machine, 'nope');
  await t.throwsAsync(app.callBytes('nope', cbor.encode({ op: 'inc' })), { instanceOf: UnknownMachineError });
  t.throws(() => app.cast('nope', { op: 'inc' }), { instanceOf: UnknownMachineError });
  await t.throwsAsync(app.checkpoint('nope'), { instanceOf: UnknownMachineError });
  t.deepEqual(seqs(app), before);
  t.is(await app.call('a', { op: 'count' }), 1);
  t.is(await app.call('b', { op: 'count' }), 0);
});

test('a crash replies MachineCrashedError with the machine name and the cause', async (t) => {
  const rec = new Recorder();
  const app = await startProbeApp(t, supervisor('one_for_one', [rec.worker('kv'), worker('store', kvMachine({ deliberateCrash: true }))], { intensity: 5 }), rec);
  const err = await t.throwsAsync(app.call('kv', { op: 'crash', why: 'divide by zero' }), { instanceOf: MachineCrashedError });
  t.is((err as MachineCrashedError).machine, 'kv');
  t.is((err as MachineCrashedError).code, 'MACHINE_CRASHED');
  t.true((err as MachineCrashedError).cause instanceof Error);
  t.is(((err as MachineCrashedError).cause as Error).message, 'divide by zero');
  t.regex((err as Error).message, /kv crashed: divide by zero/);
  // The wire path reports crashes the same way.
  const err2 = await t.throwsAsync(app.callBytes('store', cbor.encode({ op: 'lookup', key: 'crash' })), { instanceOf: MachineCrashedError });
  t.is((err2 as MachineCrashedError).machine, 'store');
  t.is(workerStatus(app, 'kv').lastError, 'divide by zero');
  t.is(workerStatus(app, 'kv').status, 'running');
});

test('requests queued for a machine during its restart are served after it, in order; none is lost', async (t) => {
  const rec = new Recorder();
  const entered = gate();
  const release = gate();
  let armed = false;
  const tree = supervisor(
    'one_for_one',
    [rec.worker('kv', { shutdownMs: 30_000 }, { onStart: () => (armed ? ((armed = false), entered.open(), release.promise) : undefined) }), rec.worker('other')],
    { intensity: 5, periodMs: 60_000 },
  );
  const app = await startProbeApp(t, tree, rec);
  await app.call('kv', { op: 'inc' });
  armed = true;
  // Same turn as the crash: these land in the crashing batch after it and must be put back.
  const crash = settled(app.call('kv', { op: 'crash' }));
  const sameBatch = [1, 2, 3].map(() => app.call('kv', { op: 'inc' }));
  const otherSameBatch = app.call('other', { op: 'inc' });
  await entered.promise;
  const restartMark = rec.trace.length;
  // During the restart: queued behind it.
  const during = [1, 2, 3].map(() => app.call('kv', { op: 'inc' }));
  const otherDuring = app.call('other', { op: 'inc' });
  release.open();
  const c = await crash;
  t.true(!c.ok && c.error instanceof MachineCrashedError);
  t.deepEqual(await Promise.all(sameBatch), [2, 3, 4], 'requests behind the crash in its batch were served, after the restart');
  t.deepEqual(await Promise.all(during), [5, 6, 7]);
  t.is(await otherSameBatch, 1);
  t.is(await otherDuring, 2);
  const afterRestart = rec.trace.slice(restartMark);
  t.is(afterRestart.filter((s) => s === 'step:kv:inc').length, 6, 'all six kv requests stepped after the restart began');
  t.is(workerStatus(app, 'kv').seq, 7);
});

test('temporary children are not restarted: later calls get MachineStoppedError; siblings and intensity untouched', async (t) => {
  const rec = new Recorder();
  const tree = supervisor('one_for_all', [rec.worker('a'), rec.worker('tmp', { restart: 'temporary' }), rec.worker('b')], { intensity: 0 });
  const app = await startProbeApp(t, tree, rec);
  const a0 = await app.call('a', { op: 'self' });
  const mark = rec.trace.length;
  const crash = app.call('tmp', { op: 'crash' });
  const behind = settled(app.call('tmp', { op: 'inc' }));
  await t.throwsAsync(crash, { instanceOf: MachineCrashedError });
  const b = await behind;
  t.true(!b.ok && b.error instanceof MachineStoppedError, 'a request queued behind the crash is answered, with MachineStoppedError');
  t.deepEqual(rec.hooks(mark), ['stop:tmp'], 'no sibling restarted, tmp not started again');
  const err = await t.throwsAsync(app.call('tmp', { op: 'count' }), { instanceOf: MachineStoppedError });
  t.is((err as MachineStoppedError).machine, 'tmp');
  t.throws(() => app.cast('tmp', { op: 'inc' }), { instanceOf: MachineStoppedError });
  t.is(workerStatus(app, 'tmp').status, 'stopped');
  t.is(workerStatus(app, 'tmp').restarts, 0);
  t.is(await app.call('a', { op: 'self' }), a0);
  // Intensity 0 at the root, yet the application is still up: dropping is not a restart.
  t.is(await app.call('b', { op: 'inc' }), 1);
});

test('cast delivers; cast to an unknown machine throws', async (t) => {
  const rec = new Recorder();
  const app = await startProbeApp(t, supervisor('one_for_one', [rec.worker('kv')]), rec);
  t.is(app.cast('kv', { op: 'put', key: 'c', value: 42 }), undefined);
  app.cast('kv', { op: 'inc' });
  t.is(await app.call('kv', { op: 'get', key: 'c' }), 42);
  t.is(await app.call('kv', { op: 'count' }), 1);
  t.throws(() => app.cast('ghost', { op: 'inc' }), { instanceOf: UnknownMachineError });
});

test('a crash caused by a cast is handled by the supervisor like any other', async (t) => {
  const rec = new Recorder();
  const app = await startProbeApp(t, supervisor('one_for_one', [rec.worker('kv')], { intensity: 5 }), rec);
  await app.call('kv', { op: 'inc' });
  app.cast('kv', { op: 'crash' });
  t.is(await app.call('kv', { op: 'inc' }), 2);
  t.deepEqual(
    rec.lines().filter((l) => l.startsWith('crashed') || l.startsWith('restarting')),
    ['crashed kv', 'restarting root kv'],
  );
});

test('stop() during a restart waits for it, serves what was queued, then terminates', async (t) => {
  const { app, rec, blockLoop } = await slowRestartApp(t);
  const { crash, release } = await blockLoop();
  const queued = [settled(app.call('kv', { op: 'inc' })), settled(app.call('slow', { op: 'inc' }))];
  const stopping = app.stop();
  await t.throwsAsync(app.call('kv', { op: 'inc' }), { instanceOf: ApplicationStoppedError });
  release();
  await stopping;
  const c = await crash;
  t.true(!c.ok && c.error instanceof MachineCrashedError);
  t.deepEqual(
    (await Promise.all(queued)).map((r) => (r.ok ? r.value : String(r.error))),
    [1, 1],
  );
  t.deepEqual(rec.hooks().slice(-2), ['stop:kv', 'stop:slow']);
  t.deepEqual(await app.stopped, { reason: 'normal' });
});

test('a step that returns something other than [state, output] is a crash, and the state is rebuilt', async (t) => {
  const rec = new Recorder();
  const machine = defineMachine<{ n: number }, { op: 'inc' | 'bad' }, number>({
    init: () => ({ n: 0 }),
    step: (input, state) => {
      state.n++;
      return (input.op === 'bad' ? state.n : [state, state.n]) as unknown as readonly [{ n: number }, number];
    },
  });
  const app = await startProbeApp(t, supervisor('one_for_one', [worker('m', machine)], { intensity: 5 }), rec);
  t.is(await app.call('m', { op: 'inc' }), 1);
  const err = await t.throwsAsync(app.call('m', { op: 'bad' }), { instanceOf: MachineCrashedError });
  t.true((err as MachineCrashedError).cause instanceof TypeError);
  t.is(await app.call('m', { op: 'inc' }), 2, 'the half-applied bad step was discarded');
  t.is(workerStatus(app, 'm').restarts, 1);
});

test('an input that cannot be logged (EncodeError) is rejected before step and leaves the machine untouched', async (t) => {
  const rec = new Recorder();
  const app = await startProbeApp(t, supervisor('one_for_one', [rec.worker('kv')]), rec);
  await app.call('kv', { op: 'inc' });
  const before = seqs(app);
  await t.throwsAsync(app.call('kv', { op: 'put', key: 'f', value: () => 1 }), { instanceOf: EncodeError });
  t.deepEqual(seqs(app), before);
  t.false(rec.trace.includes('step:kv:put:f'));
  t.is(await app.call('kv', { op: 'get', key: 'f' }), null);
  t.false(rec.events.some((e) => e.type === 'crashed'));
});
