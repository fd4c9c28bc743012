import test from 'ava';
import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApplication } from '../src/engine/application.js';
import { RecoveryError } from '../src/errors.js';
import { kvMachine } from '../src/kv/kv-machine.js';
import { defineMachine } from '../src/model/machine.js';
import { Store } from '../src/storage/store.js';
import { supervisor, worker } from '../src/model/tree.js';

const tmp = (name: string): string => join(mkdtempSync(join(tmpdir(), 'ssm-edges-')), name);
const kvTree = () => supervisor('one_for_one', [worker('kv', kvMachine({ deliberateCrash: true }))]);

test('the only snapshot corrupt and the log it covered truncated: RecoveryError, never a silent restart from init()', async (t) => {
  const db = tmp('silent.db');
  let app = await startApplication(kvTree(), { db, logger: false, snapshot: { keepSnapshots: 1 } });
  for (let i = 0; i < 3; i++) await app.call('kv', { op: 'store', key: `k${i}`, value: i });
  await app.stop(); // one snapshot @3, and keepSnapshots 1 lets the log up to 3 go
  const conn = new Database(db);
  t.is((conn.prepare('SELECT count(*) FROM request_log').pluck().get() as number), 0);
  conn.exec("UPDATE snapshots SET state = x'00' || substr(state, 2)");
  conn.close();
  const err = await t.throwsAsync(startApplication(kvTree(), { db, logger: false }), { instanceOf: RecoveryError });
  t.is(err?.machine, 'kv');
  t.regex(err!.message, /seq 3 was durable/);
});

test('with keepSnapshots 2 the log is kept whole until a second snapshot exists, so a corrupt first snapshot falls back to init + replay', async (t) => {
  const db = tmp('fallback.db');
  let app = await startApplication(kvTree(), { db, logger: false });
  for (let i = 0; i < 3; i++) await app.call('kv', { op: 'store', key: `k${i}`, value: i });
  await app.stop();
  const conn = new Database(db);
  conn.exec("UPDATE snapshots SET state = x'00' || substr(state, 2)");
  conn.close();
  const events: unknown[] = [];
  app = await startApplication(kvTree(), { db, logger: (e) => events.push(e) });
  t.like(events[0], { type: 'started', recovery: { path: 'init', replayed: 3, seq: 3 } });
  t.is(await app.call('kv', { op: 'size' }), 3);
  await app.stop();
});

test('a failed open releases the writer lock: the next open in this process succeeds', (t) => {
  const db = tmp('lock.db');
  t.throws(() => Store.open(db, { faults: { onOpen: () => { throw new Error('injected'); } } }), { message: 'injected' });
  const store = Store.open(db);
  store.close();
  t.pass();
});

test('a failed start leaves no timer behind', async (t) => {
  const db = tmp('timer.db');
  const app = await startApplication(kvTree(), { db, logger: false });
  await app.call('kv', { op: 'store', key: 'a', value: 1 });
  await app.stop();
  const conn = new Database(db);
  conn.exec('DELETE FROM snapshots'); // recovery must replay the log, which the broken step cannot
  conn.close();
  const broken = defineMachine({ ...kvMachine({ deliberateCrash: true }), step: () => { throw new Error('changed code'); } });
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = timers();
  for (let i = 0; i < 5; i++) {
    await t.throwsAsync(startApplication(supervisor('one_for_one', [worker('kv', broken)]), { db, logger: false, snapshot: { everyMs: 1000 } }), { instanceOf: RecoveryError });
  }
  t.is(timers(), before);
});

test('timeouts beyond what a Node.js timer holds mean no timeout (no 1 ms clamp, no warning); Infinity grace waits for the hook', async (t) => {
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.name);
  process.on('warning', onWarning);
  let finished = false;
  const slowStart = defineMachine({ ...kvMachine({ deliberateCrash: true }), onStart: () => new Promise<void>((r) => setTimeout(() => { finished = true; r(); }, 50)) });
  const app = await startApplication(supervisor('one_for_one', [worker('kv', slowStart, { shutdownMs: Number.POSITIVE_INFINITY })]), { db: ':memory:', logger: false });
  t.true(finished, 'the hook ran to its end');
  try {
    await app.call('kv', { op: 'store', key: 'a', value: 1 }, { timeoutMs: 30 * 24 * 3600 * 1000 });
    t.is(await app.call('kv', { op: 'lookup', key: 'a' }, { timeoutMs: Number.POSITIVE_INFINITY }), 1);
    await new Promise((r) => setTimeout(r, 20));
    t.deepEqual(warnings.filter((w) => w === 'TimeoutOverflowWarning'), []);
    await t.throwsAsync(app.call('kv', { op: 'size' }, { timeoutMs: -1 }), { code: 'CONFIG_ERROR' });
  } finally {
    process.off('warning', onWarning);
    await app.stop();
  }
});

test('a logger that throws does not break batches, restarts or replies', async (t) => {
  const app = await startApplication(kvTree(), { db: ':memory:', snapshot: { every: 1, maxTimeShare: 1 }, logger: () => { throw new Error('logger down'); } });
  await app.call('kv', { op: 'store', key: 'a', value: 1 });
  await t.throwsAsync(app.call('kv', { op: 'lookup', key: 'crash' }), { code: 'MACHINE_CRASHED' });
  t.is(await app.call('kv', { op: 'lookup', key: 'a' }), 1);
  await app.stop();
});

test('a step sees the CBOR round trip of its input, as replay will: mutating the caller’s object afterwards cannot reach the state', async (t) => {
  const db = tmp('alias.db');
  let app = await startApplication(kvTree(), { db, logger: false });
  const value: { n: number; tags?: string[] } = { n: 1 };
  await app.call('kv', { op: 'store', key: 'v', value });
  value.n = 3;
  t.deepEqual(await app.call('kv', { op: 'lookup', key: 'v' }), { n: 1 });
  // Values that CBOR cannot carry exactly are stored as replay will see them, not as passed.
  await app.call('kv', { op: 'store', key: 'neg0', value: -0 });
  const live = await app.call('kv', { op: 'entries' });
  await app.stop();
  app = await startApplication(kvTree(), { db, logger: false });
  t.deepEqual(await app.call('kv', { op: 'entries' }), live);
  await app.stop();
});
