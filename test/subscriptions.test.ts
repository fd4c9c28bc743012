/**
 * Change feeds (issue 14.2): every committed request of a machine, in order, after its commit,
 * from a seq in the past (read back, outputs recomputed) and then live; slow subscribers are cut
 * off with a resumable error; a truncated past is a typed error.
 */
import test from 'ava';
import { startApplication, type App } from '../src/engine/application.js';
import type { ChangeEvent } from '../src/engine/change-feed.js';
import { ConfigError, LogTruncatedError, SubscriberTooSlowError, UnknownMachineError } from '../src/errors.js';
import { kvTree, tempDb } from './helpers/persistence-kv.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function start(t: Parameters<typeof tempDb>[0], options = {}): Promise<App> {
  const app = await startApplication(kvTree(), { db: tempDb(t), logger: false, ...options });
  t.teardown(() => app.stop());
  return app;
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await sleep(5);
}

test('live: each committed write once, in seq order, with input and output; reads and other machines are not events', async (t) => {
  const app = await start(t);
  const events: ChangeEvent[] = [];
  const sub = app.subscribe('kv1', {}, (e) => void events.push(e));
  await Promise.all(Array.from({ length: 50 }, (_, i) => app.call('kv1', { op: 'store', key: `k${i}`, value: i })));
  await app.call('kv1', { op: 'lookup', key: 'k1' });
  await app.call('kv2', { op: 'store', key: 'other', value: 1 });
  await app.call('kv1', { op: 'delete', key: 'k0' });
  await until(() => events.length === 51);
  t.deepEqual(events.map((e) => e.seq), Array.from({ length: 51 }, (_, i) => i + 1));
  // A delete carries the time stamped on it at the door (it is judged at it: expiry).
  const now = (events[50]!.input as { now?: number }).now;
  t.is(typeof now, 'number');
  t.deepEqual(events[50], { machine: 'kv1', seq: 51, input: { op: 'delete', key: 'k0', now }, output: true });
  t.is(sub.lastSeq, 51);
  sub.close();
  t.deepEqual(await sub.ended, { reason: 'closed' });
  await app.call('kv1', { op: 'store', key: 'after', value: 1 });
  await sleep(20);
  t.is(events.length, 51, 'nothing after close');
});

test('from a past seq: read back with the outputs replay recomputes, then live without a gap or a duplicate, while writes go on', async (t) => {
  const app = await start(t, { snapshot: { every: 25, maxTimeShare: 1, retainLog: true } });
  for (let i = 0; i < 100; i++) await app.call('kv1', { op: 'store', key: `k${i % 10}`, value: i });
  const events: ChangeEvent[] = [];
  const sub = app.subscribe('kv1', { fromSeq: 40 }, async (e) => {
    events.push(e);
    if (e.seq % 10 === 0) await sleep(1); // a listener that takes its time
  });
  const writing = (async () => {
    for (let i = 100; i < 200; i++) await app.call('kv1', { op: 'delete', key: `k${i % 10}` });
  })();
  await writing;
  await until(() => events.length === 161);
  t.deepEqual(events.map((e) => e.seq), Array.from({ length: 161 }, (_, i) => i + 40));
  // seq 101 deletes k0 (last stored at seq 91): true; seq 111 deletes it again: false.
  t.deepEqual(events.find((e) => e.seq === 40), { machine: 'kv1', seq: 40, input: { op: 'store', key: 'k9', value: 39 }, output: null });
  t.deepEqual(events.find((e) => e.seq === 101)?.output, true);
  t.deepEqual(events.find((e) => e.seq === 111)?.output, false, 'output recomputed: k0 was already deleted at seq 101');
  sub.close();
});

test('a slow subscriber is cut off with SubscriberTooSlowError and resumes from lastSeq + 1 without losing events', async (t) => {
  const app = await start(t);
  let release!: () => void;
  const blocked = new Promise<void>((r) => (release = r));
  const seen: number[] = [];
  const slow = app.subscribe('kv1', { maxBuffered: 10 }, async (e) => {
    seen.push(e.seq);
    await blocked;
  });
  await Promise.all(Array.from({ length: 30 }, (_, i) => app.call('kv1', { op: 'store', key: `k${i}`, value: i })));
  const end = await slow.ended;
  t.is(end.reason, 'error');
  const err = (end as { error: SubscriberTooSlowError }).error;
  t.true(err instanceof SubscriberTooSlowError);
  t.is(err.lastSeq, slow.lastSeq);
  release();
  const rest: number[] = [];
  const again = app.subscribe('kv1', { fromSeq: slow.lastSeq + 1 }, (e) => void rest.push(e.seq));
  await until(() => rest.length === 30 - slow.lastSeq);
  t.deepEqual(rest, Array.from({ length: 30 - slow.lastSeq }, (_, i) => slow.lastSeq + 1 + i));
  again.close();
  t.is(app.metrics.loggedRequests, 30, 'the engine did not wait for it');
});

test('a past no longer retained is LogTruncatedError naming the oldest seq; bad arguments are refused; stop ends subscriptions', async (t) => {
  const app = await start(t, { snapshot: { every: 10, maxTimeShare: 1 } });
  for (let i = 0; i < 40; i++) await app.call('kv1', { op: 'store', key: `k${i}`, value: i });
  await sleep(50);
  const sub = app.subscribe('kv1', { fromSeq: 1 }, () => {});
  const end = await sub.ended;
  t.is(end.reason, 'error');
  const err = (end as { error: LogTruncatedError }).error;
  t.true(err instanceof LogTruncatedError, String(err));
  t.true(err.oldestSeq > 1);
  const ok: number[] = [];
  const fromOldest = app.subscribe('kv1', { fromSeq: err.oldestSeq }, (e) => void ok.push(e.seq));
  await until(() => ok.length === 41 - err.oldestSeq);
  t.is(ok[0], err.oldestSeq);
  t.throws(() => app.subscribe('nope', {}, () => {}), { instanceOf: UnknownMachineError });
  t.throws(() => app.subscribe('kv1', { fromSeq: 0 }, () => {}), { instanceOf: ConfigError });
  t.throws(() => app.subscribe('kv1', { maxBuffered: 0 }, () => {}), { instanceOf: ConfigError });
  await app.stop();
  t.deepEqual(await fromOldest.ended, { reason: 'stopped' });
});

test('ssm log --follow prints requests as a server commits them, in order, until interrupted', async (t) => {
  const { spawn } = await import('node:child_process');
  const { ROOT } = await import('./helpers/cli.js');
  const { eachLine } = await import('./helpers/lines.js');
  const db = tempDb(t);
  const app = await startApplication(kvTree(), { db, logger: false, snapshot: { retainLog: true } });
  t.teardown(() => app.stop());
  await app.call('kv1', { op: 'store', key: 'before', value: 0 });
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'log', 'kv1', '--db', db, '--follow', '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  const seqs: number[] = [];
  eachLine(child.stdout!, (line) => seqs.push((JSON.parse(line) as { seq: number }).seq));
  await until(() => seqs.length === 1, 20_000);
  for (let i = 1; i <= 20; i++) await app.call('kv1', { op: 'store', key: `k${i}`, value: i });
  await until(() => seqs.length === 21, 10_000);
  t.deepEqual(seqs, Array.from({ length: 21 }, (_, i) => i + 1));
  const exited = new Promise<{ code: number | null; signal: string | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  child.kill('SIGINT');
  const end = await exited;
  t.true(end.signal === 'SIGINT' || end.code === 130, `ends on Ctrl-C as tail -f does: ${JSON.stringify(end)}`);
});
