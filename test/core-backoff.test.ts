import test, { type ExecutionContext } from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { startApplication, type App } from '../src/engine/application.js';
import type { LifecycleEvent } from '../src/engine/logger.js';
import { ApplicationStoppedError, ConfigError, MachineRestartingError } from '../src/errors.js';
import { backoffDelay, consecutiveCrashes, resolveBackoff, type BackoffOptions } from '../src/model/backoff.js';
import { defineMachine } from '../src/model/machine.js';
import { supervisor, worker } from '../src/model/tree.js';

const counter = defineMachine<number, 'add' | 'boom', number>({
  init: () => 0,
  step: (i, n) => {
    if (i === 'boom') throw new Error('boom');
    return [n + 1, n + 1];
  },
});

interface Probe {
  app: App;
  /** [event type, machine or supervisor, ms since start] */
  events: [string, string, number][];
}

async function start(t: ExecutionContext, backoff: BackoffOptions, intensity = 100): Promise<Probe> {
  const events: [string, string, number][] = [];
  const t0 = performance.now();
  const logger = (e: LifecycleEvent): void => {
    const who = 'machine' in e ? e.machine : 'supervisor' in e ? e.supervisor : '';
    events.push([e.type, who, performance.now() - t0]);
  };
  const tree = supervisor('one_for_one', [worker('w', counter, { backoff }), worker('other', counter)], { intensity, periodMs: 60_000 });
  const app = await startApplication(tree, { db: ':memory:', logger });
  t.teardown(() => app.stop());
  return { app, events };
}

const crash = (app: App): Promise<unknown> => app.call('w', 'boom').catch((e: unknown) => e);
const statusOf = (app: App, name: string): string => (app.status() as unknown as { children: { name: string; status: string }[] }).children.find((c) => c.name === name)!.status;
async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(5);
  }
}
/** ms from each crash of w to its next start. */
function waits(events: [string, string, number][]): number[] {
  const out: number[] = [];
  let crashedAt: number | null = null;
  for (const [type, who, at] of events) {
    if (who !== 'w') continue;
    if (type === 'crashed') crashedAt = at;
    if (type === 'started' && crashedAt !== null) {
      out.push(at - crashedAt);
      crashedAt = null;
    }
  }
  return out;
}

test('the delay: minMs, times factor per consecutive crash, capped at maxMs; jitter adds at most its share; a long run resets the count', (t) => {
  const p = resolveBackoff('w', { minMs: 100, maxMs: 1000, factor: 3, jitter: 0.5 })!;
  t.deepEqual([1, 2, 3, 4, 10].map((n) => backoffDelay(n, p, 0)), [100, 300, 900, 1000, 1000]);
  t.is(backoffDelay(2, p, 0.999), Math.round(300 * (1 + 0.5 * 0.999)));
  t.is(consecutiveCrashes(3, 999, p), 4);
  t.is(consecutiveCrashes(3, 1000, p), 1, 'resetAfterMs defaults to maxMs');
  t.deepEqual(resolveBackoff('w', { minMs: 5, maxMs: 5 }), { minMs: 5, maxMs: 5, factor: 2, jitter: 0, resetAfterMs: 5, whileWaiting: 'queue' });
});

test('bad backoff options are ConfigErrors naming the worker', (t) => {
  for (const bad of [{ minMs: 0, maxMs: 10 }, { minMs: 10, maxMs: 5 }, { minMs: 1, maxMs: Infinity }, { minMs: 1, maxMs: 2, factor: 0.5 }, { minMs: 1, maxMs: 2, jitter: 2 }, { minMs: 1, maxMs: 2, whileWaiting: 'drop' }, { minMs: 1, maxMs: 2, resetAfterMs: 0 }, null, 5]) {
    const err = t.throws(() => worker('w', counter, { backoff: bad as never }), { instanceOf: ConfigError });
    t.regex(err!.message, /^worker w: backoff\./);
  }
});

test('consecutive crashes wait minMs, then twice as long, up to maxMs; other machines are served meanwhile', async (t) => {
  const { app, events } = await start(t, { minMs: 100, maxMs: 400, resetAfterMs: 60_000 });
  for (let i = 0; i < 4; i++) {
    await crash(app);
    t.is(statusOf(app, 'w'), 'backoff');
    const t0 = performance.now();
    t.is(typeof (await app.call('other', 'add')), 'number');
    t.true(performance.now() - t0 < 90, 'another machine answers during the wait');
    await until(() => statusOf(app, 'w') === 'running');
  }
  const measured = waits(events);
  t.is(measured.length, 4);
  // Lower bounds only: a loaded machine may restart later, never earlier (1 ms of timer rounding).
  [100, 200, 400, 400].forEach((min, i) => t.true(measured[i]! >= min - 1, `wait ${i + 1}: ${measured[i]} ms >= ${min}`));
  t.true(measured[1]! > measured[0]! && measured[2]! > measured[1]!, `grows: ${measured.join(', ')}`);
  t.regex(app.prometheus(), /ssm_restart_backoffs_total 4\n/);
});

test('a run longer than resetAfterMs starts the delays again from minMs', async (t) => {
  const { app, events } = await start(t, { minMs: 100, maxMs: 2000, factor: 4, resetAfterMs: 300 });
  await crash(app);
  await until(() => statusOf(app, 'w') === 'running');
  await sleep(350);
  await crash(app);
  await until(() => statusOf(app, 'w') === 'running');
  const [first, second] = waits(events);
  t.true(first! >= 99 && second! >= 99);
  t.true(second! < 400, `after a healthy run the wait is minMs again, not 400 ms: ${second}`);
});

test("whileWaiting 'queue': calls wait for the restart and run after it, in order, on the durable state", async (t) => {
  const { app } = await start(t, { minMs: 200, maxMs: 200 });
  t.is(await app.call('w', 'add'), 1);
  await crash(app);
  const t0 = performance.now();
  const replies = await Promise.all([app.call('w', 'add'), app.call('w', 'add'), app.call('w', 'add')]);
  t.deepEqual(replies, [2, 3, 4], 'the acknowledged add survived the crash; queued calls ran in order');
  t.true(performance.now() - t0 >= 150, 'they waited for the restart');
});

test("whileWaiting 'fail': calls are refused at once with MachineRestartingError and a retry time", async (t) => {
  const { app } = await start(t, { minMs: 300, maxMs: 300, whileWaiting: 'fail' });
  await crash(app);
  const t0 = performance.now();
  const err = await t.throwsAsync(app.call('w', 'add'), { instanceOf: MachineRestartingError });
  t.true(performance.now() - t0 < 100);
  t.is(err!.code, 'MACHINE_RESTARTING');
  t.true(err!.retryAfterMs > 0 && err!.retryAfterMs <= 300);
  await until(() => statusOf(app, 'w') === 'running');
  t.is(await app.call('w', 'add'), 1);
});

test('stop during a backoff wait: prompt, waiting calls get ApplicationStoppedError, no restart after it', async (t) => {
  const { app, events } = await start(t, { minMs: 2000, maxMs: 2000 });
  await crash(app);
  const waiting = app.call('w', 'add', { timeoutMs: 0 });
  const t0 = performance.now();
  await app.stop();
  t.true(performance.now() - t0 < 1000, 'did not wait for the backoff');
  await t.throwsAsync(waiting, { instanceOf: ApplicationStoppedError });
  const startsAfterCrash = events.filter(([type, who]) => type === 'started' && who === 'w').length;
  await sleep(2200);
  t.is(events.filter(([type, who]) => type === 'started' && who === 'w').length, startsAfterCrash, 'no restart after the stop');
});

test('intensity still counts each crash: past it the supervisor gives up, backoff or not', async (t) => {
  const { app } = await start(t, { minMs: 50, maxMs: 50 }, 2);
  for (let i = 0; i < 2; i++) {
    await crash(app);
    await until(() => statusOf(app, 'w') === 'running');
  }
  await crash(app);
  const ended = await app.stopped;
  t.is(ended.reason, 'failure');
});

test('no backoff (the default): the restart is immediate, as in OTP', async (t) => {
  const tree = supervisor('one_for_one', [worker('w', counter)], { intensity: 10 });
  const app = await startApplication(tree, { db: ':memory:', logger: false });
  t.teardown(() => app.stop());
  await crash(app);
  t.is(statusOf(app, 'w'), 'running');
});

test('a misspelt backoff option is a ConfigError naming it and the accepted ones', (t) => {
  const err = t.throws(() => worker('w', counter, { backoff: { minMs: 100, maxMs: 1000, initalMs: 100 } as never }), { instanceOf: ConfigError });
  t.regex(err!.message, /^worker w: backoff\./);
  t.regex(err!.message, /initalMs/);
  for (const key of ['minMs', 'maxMs', 'factor', 'jitter', 'resetAfterMs', 'whileWaiting']) t.true(err!.message.includes(key), `names ${key}: ${err!.message}`);
});

test("delays beyond what a timer holds (2^31-1 ms; Node fires a longer one at once) are ConfigErrors, and jitter never pushes a delay past it", (t) => {
  const limit = 2 ** 31 - 1;
  for (const bad of [{ minMs: 1, maxMs: limit + 1 }, { minMs: limit + 1, maxMs: limit + 1 }, { minMs: 1, maxMs: 1e12 }]) {
    const err = t.throws(() => worker('w', counter, { backoff: bad }), { instanceOf: ConfigError });
    t.regex(err!.message, /^worker w: backoff\.(minMs|maxMs).*2147483647/);
  }
  const p = resolveBackoff('w', { minMs: 1000, maxMs: limit, jitter: 1 })!;
  t.true(backoffDelay(40, p, 0.999) <= limit, 'a jittered delay is clamped to what a timer holds');
  t.is(backoffDelay(1, resolveBackoff('w', { minMs: 1000, maxMs: limit, jitter: 1 })!, 0.5), 1500);
});

test('a crash while stopping (the drain) does not make stop wait out its backoff: waiting calls get ApplicationStoppedError, no restart', async (t) => {
  const { app, events } = await start(t, { minMs: 3000, maxMs: 3000 });
  // Queued before the stop: the drain steps the crash, and the add behind it would wait for the restart.
  const crashing = crash(app);
  const behind = app.call('w', 'add', { timeoutMs: 0 });
  const t0 = performance.now();
  await app.stop();
  const took = performance.now() - t0;
  t.true(took < 1500, `stop did not wait out the 3 s backoff: ${Math.round(took)} ms`);
  t.truthy(await crashing);
  await t.throwsAsync(behind, { instanceOf: ApplicationStoppedError });
  t.is(events.filter(([type, who]) => type === 'started' && who === 'w').length, 1, 'never restarted');
});

test.serial('retryAfterMs comes from the monotonic clock: a wall-clock step back does not make it huge', async (t) => {
  const { app } = await start(t, { minMs: 300, maxMs: 300, whileWaiting: 'fail' });
  await crash(app);
  const wall = Date.now;
  Date.now = () => wall() - 3_600_000;
  try {
    const err = await t.throwsAsync(app.call('w', 'add'), { instanceOf: MachineRestartingError });
    t.true(err!.retryAfterMs > 0 && err!.retryAfterMs <= 300, `retryAfterMs ${err!.retryAfterMs}`);
  } finally {
    Date.now = wall;
  }
});

test('a restart that fails to start again (init throws) is retried after the next, longer delay, not at once', async (t) => {
  const failing = { starts: 0 };
  const fragile = defineMachine<number, 'add' | 'boom', number>({
    init: () => {
      if (failing.starts > 0) {
        failing.starts--;
        throw new Error('cannot start yet');
      }
      return 0;
    },
    step: counter.step,
  });
  const events: [string, string, number][] = [];
  const t0 = performance.now();
  const logger = (e: LifecycleEvent): void => void events.push([e.type, 'machine' in e ? e.machine : '', performance.now() - t0]);
  const tree = supervisor('one_for_one', [worker('w', fragile, { backoff: { minMs: 100, maxMs: 1000, resetAfterMs: 60_000 } })], { intensity: 100, periodMs: 60_000 });
  const app = await startApplication(tree, { db: ':memory:', logger, crashLoop: false });
  t.teardown(() => app.stop());
  failing.starts = 2;
  await crash(app);
  await until(() => statusOf(app, 'w') === 'running');
  const [wait] = waits(events);
  // 100 ms to the first attempt (fails), 200 to the second (fails), 400 to the third: 700 at least.
  t.true(wait! >= 699, `the failed starts were retried after growing delays: ${Math.round(wait!)} ms`);
  t.is(failing.starts, 0);
  t.is(events.filter(([type]) => type === 'backoff').length, 3, 'a backoff per failed attempt');
});
