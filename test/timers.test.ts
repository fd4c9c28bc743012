/**
 * Durable timers (issue 16.2): a step sets a timer in the commit of its request; the timer's
 * input arrives later as a logged request of its own, once, after stops and restarts too.
 */
import test from 'ava';
import Database from 'better-sqlite3';
import { startApplication, type App } from '../src/engine/application.js';
import { MachineCrashedError } from '../src/errors.js';
import { defineMachine, setTimer, withTimers } from '../src/model/machine.js';
import { supervisor, worker } from '../src/model/tree.js';
import { timerTree } from './fixtures/timer-machine.js';
import { runCli } from './helpers/cli.js';
import { tempDb } from './helpers/persistence-kv.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function start(t: Parameters<typeof tempDb>[0], db = tempDb(t)): Promise<App> {
  const app = await startApplication(timerTree(), { db, logger: false });
  t.teardown(() => app.stop());
  return app;
}

const fired = (app: App, name = 't') => app.call(name, { fired: true }) as Promise<string[]>;

async function until(check: () => Promise<boolean>, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await sleep(10);
  }
  return check();
}

test('a timer set by a step delivers its input once, as a logged request, in due order with others', async (t) => {
  const app = await start(t);
  // Margins wide enough that a loaded machine sets all three before the first is due.
  await app.call('t', { set: 'b', afterMs: 1200, token: 'B' });
  await app.call('t', { set: 'a', afterMs: 800, token: 'A' });
  await app.call('t', { set: 'c', at: Date.now() + 1600, token: 'C' });
  t.deepEqual(await fired(app), []);
  t.true(await until(async () => (await fired(app)).length === 3));
  t.deepEqual(await fired(app), ['A', 'B', 'C']);
  await sleep(100);
  t.deepEqual(await fired(app), ['A', 'B', 'C'], 'never twice');
  t.is(app.metrics.timersFired, 3);
  t.regex(app.prometheus(), /ssm_timers_fired_total 3\n[\s\S]*ssm_timers_pending 0/);
});

test('cancel, and setting an id again, replace what was pending', async (t) => {
  const app = await start(t);
  await app.call('t', { set: 'x', afterMs: 50, token: 'X1' });
  await app.call('t', { set: 'x', afterMs: 80, token: 'X2' });
  await app.call('t', { set: 'y', afterMs: 50, token: 'Y' });
  await app.call('t', { cancel: 'y' });
  await app.call('t', { cancel: 'never-set' });
  await sleep(300);
  t.deepEqual(await fired(app), ['X2']);
  // The same id on another machine is another timer.
  await app.call('t', { set: 'z', afterMs: 10, token: 'Zt' });
  await app.call('u', { set: 'z', afterMs: 10, token: 'Zu' });
  t.true(await until(async () => (await fired(app)).length === 2 && (await fired(app, 'u')).length === 1));
});

test('timers survive a stop: those that fell due while the application was down fire on start, in due order', async (t) => {
  const db = tempDb(t);
  const first = await startApplication(timerTree(), { db, logger: false });
  const now = Date.now();
  // Due after the stop even on a loaded machine, and before the restart.
  for (const [id, ms] of [['late', 1600], ['early', 1200], ['mid', 1400], ['future', 60_000]] as const) await first.call('t', { set: id, at: now + ms, token: id });
  await first.stop();
  const raw = new Database(db, { readonly: true });
  t.teardown(() => raw.close());
  t.deepEqual(raw.prepare('SELECT timer FROM timer_list').pluck().all(), ['early', 'mid', 'late', 'future'], 'readable, soonest first');
  const cli = await runCli(['timers', '--db', db]);
  t.is(cli.code, 0, cli.stderr);
  t.deepEqual([...cli.stdout.matchAll(/^\S+  \((?:in|.* overdue)[^)]*\)  t  "(\w+)"  set at seq \d+$/gm)].map((m) => m[1]), ['early', 'mid', 'late', 'future']);
  t.regex(cli.stdout, /input: \{"fire":"future","id":"future"\}/);
  const json = await runCli(['timers', 't', '--db', db, '--json', '--limit', '1']);
  t.deepEqual(JSON.parse(json.stdout), { machine: 't', timer: 'early', dueAt: new Date(now + 1200).toISOString(), setSeq: 2, setAt: JSON.parse(json.stdout).setAt, input: { fire: 'early', id: 'early' } });
  await sleep(Math.max(0, now + 1700 - Date.now()));
  const app = await start(t, db);
  t.true(await until(async () => (await fired(app)).length === 3));
  t.deepEqual(await fired(app), ['early', 'mid', 'late']);
  t.deepEqual(raw.prepare('SELECT timer FROM timers').pluck().all(), ['future']);
  t.regex(app.prometheus(), /ssm_timers_pending 1\n/);
});

test('a periodic timer (each delivery sets the next) runs its course; its log replays to the same state', async (t) => {
  const db = tempDb(t);
  const app = await startApplication(timerTree(), { db, logger: false });
  await app.call('t', { every: 'tick', afterMs: 10, times: 5 });
  t.true(await until(async () => (await fired(app)).length === 5));
  await sleep(100);
  t.deepEqual(await fired(app), ['tick#0', 'tick#1', 'tick#2', 'tick#3', 'tick#4']);
  await app.stop();
  // Recovery replays the log (timer commands in it are ignored: the table holds their effect).
  const again = await start(t, db);
  await sleep(100);
  t.deepEqual(await fired(again), ['tick#0', 'tick#1', 'tick#2', 'tick#3', 'tick#4']);
});

test('a delivery that crashes its machine is recorded as failed and not delivered again; bad timer commands are crashes', async (t) => {
  const tree = supervisor('one_for_one', [worker('c', defineMachine<number, { go?: true; fire?: true }, unknown>({
    init: () => 0,
    step: (i, n) => {
      if (i.fire) throw new Error('delivery crashes');
      return withTimers(n + 1, 'set', setTimer('once', { fire: true }, { afterMs: 10 }));
    },
  }))], { intensity: 1000 });
  const other = await startApplication(tree, { db: tempDb(t), logger: false });
  t.teardown(() => other.stop());
  await other.call('c', { go: true });
  t.true(await until(async () => other.metrics.crashes === 1));
  await sleep(1500);
  t.is(other.metrics.crashes, 1, 'not delivered again (not even after the retry interval)');
  const raw = new Database(other.databasePath, { readonly: true });
  t.teardown(() => raw.close());
  t.is(raw.prepare('SELECT count(*) FROM timers').pluck().get(), 0);
  t.is(raw.prepare('SELECT error_message FROM failed_requests').pluck().get(), 'delivery crashes');
  // Malformed commands crash the step that returned them: nothing of that request is committed.
  const bad = supervisor('one_for_one', [worker('b', defineMachine<number, string, unknown>({
    init: () => 0,
    readOnly: (i) => i === 'read',
    step: (i, n) => withTimers(n + 1, 'x', i === 'noid' ? setTimer('', 1, { afterMs: 1 }) : i === 'nan' ? setTimer('a', 1, { afterMs: Number.NaN }) : i === 'fn' ? setTimer('a', () => 1, { afterMs: 1 }) : setTimer('a', 1, { afterMs: 1 })),
  }))], { intensity: 1000 });
  const b = await startApplication(bad, { db: tempDb(t), logger: false });
  t.teardown(() => b.stop());
  for (const input of ['noid', 'nan', 'fn', 'read']) await t.throwsAsync(b.call('b', input), { instanceOf: MachineCrashedError }, input);
});
