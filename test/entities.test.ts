/**
 * Entities (issue 13): a machine per key, woken on its first request from its own snapshot and
 * log, put to sleep when idle or least recently used, crashing alone, in one group commit.
 */
import test from 'ava';
import Database from 'better-sqlite3';
import { startApplication, type App } from '../src/engine/application.js';
import { ApplicationStoppedError, ConfigError, MachineCrashedError, RecoveryError, UnknownMachineError } from '../src/errors.js';
import { entities, type EntitiesOptions } from '../src/model/entities.js';
import { supervisor, worker } from '../src/model/tree.js';
import type { StatusNode } from '../src/engine/runtime-tree.js';
import type { LogGroup } from '../src/storage/rows.js';
import { counterMachine, type CounterInput } from './fixtures/entity-machines.js';
import { tempDb } from './helpers/persistence-kv.js';

type FamilyStatus = Extract<StatusNode, { kind: 'entities' }>;

function familyStatus(app: App, name = 'account'): FamilyStatus {
  const visit = (n: StatusNode): FamilyStatus | undefined => (n.kind === 'entities' ? (n.name === name ? n : undefined) : n.kind === 'supervisor' ? n.children.map(visit).find((x) => x) : undefined);
  const hit = visit(app.status());
  if (!hit) throw new Error(`no family ${name}`);
  return hit;
}

const tree = (options: EntitiesOptions = {}, machine = counterMachine()) => supervisor('one_for_one', [worker('fixed', machine), entities('account', machine, options)], { intensity: 10, periodMs: 1000 });
const add = (app: App, key: string, by = 1) => app.call<number>(`account/${key}`, { op: 'add', by } satisfies CounterInput);
const get = (app: App, key: string) => app.call<number>(`account/${key}`, { op: 'get' } satisfies CounterInput);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rows(db: string, sql: string, ...params: unknown[]): unknown[] {
  const conn = new Database(db, { readonly: true });
  try {
    return conn.prepare(sql).all(...params);
  } finally {
    conn.close();
  }
}

test('keys: any non-empty key up to 1 KiB of UTF-8, / allowed; others and unknown families are UnknownMachineError', async (t) => {
  const app = await startApplication(tree(), { db: ':memory:', logger: false });
  t.teardown(() => app.stop());
  t.is(await add(app, 'a/b/c', 2), 2);
  t.is(await add(app, 'é'.repeat(512), 3), 3, '1024 bytes of UTF-8');
  t.is(await add(app, ' spaced key?&=%'), 1);
  await t.throwsAsync(add(app, 'é'.repeat(512) + 'x'), { instanceOf: UnknownMachineError });
  await t.throwsAsync(add(app, ''), { instanceOf: UnknownMachineError });
  await t.throwsAsync(add(app, '\ud800'), { instanceOf: UnknownMachineError });
  await t.throwsAsync(app.call('nofamily/1', { op: 'get' }), { instanceOf: UnknownMachineError });
  await t.throwsAsync(app.call('account', { op: 'get' }), { instanceOf: UnknownMachineError });
  t.is(await app.call('fixed', { op: 'add', by: 5 }), 5, 'the fixed machine next to the family is served as before');
  t.throws(() => entities('a/b', counterMachine()), { instanceOf: ConfigError });
  t.throws(() => entities('x', counterMachine(), { maxActive: 0 }), { instanceOf: ConfigError });
  await t.throwsAsync(startApplication(supervisor('one_for_one', [worker('account', counterMachine()), entities('account', counterMachine())]), { db: ':memory:', logger: false }), { instanceOf: ConfigError, message: /duplicate/ });
});

test('a key never written starts from init() and writes nothing until its first state-changing request', async (t) => {
  const db = tempDb(t, 'ssm-ent-');
  const app = await startApplication(tree(), { db, logger: false });
  t.is(await get(app, 'ghost'), 0);
  t.is(await get(app, 'ghost'), 0);
  t.is(familyStatus(app).known, 0);
  await app.stop();
  t.deepEqual(rows(db, `SELECT name FROM machines WHERE name = 'account/ghost' UNION ALL SELECT machine FROM request_log WHERE machine = 'account/ghost' UNION ALL SELECT machine FROM snapshots WHERE machine = 'account/ghost'`), []);
  const again = await startApplication(tree(), { db, logger: false });
  t.is(await add(again, 'ghost', 4), 4);
  t.is(familyStatus(again).known, 1);
  await again.stop();
  t.deepEqual(rows(db, `SELECT family, key FROM entity_list`), [{ family: 'account', key: 'ghost' }]);
});

test('waking restores each entity from its own snapshot plus its log after it, across restarts', async (t) => {
  const db = tempDb(t, 'ssm-ent-');
  let app = await startApplication(tree(), { db, logger: false });
  for (let i = 0; i < 5; i++) await add(app, 'x', 1);
  await add(app, 'y', 10);
  await app.stop(); // each goes to sleep with a snapshot
  t.deepEqual(rows(db, `SELECT machine, seq, reason FROM snapshots ORDER BY machine`), [
    { machine: 'account/x', seq: 5, reason: 'terminate' },
    { machine: 'account/y', seq: 1, reason: 'terminate' },
  ]);
  app = await startApplication(tree(), { db, logger: false });
  t.is(await get(app, 'x'), 5);
  await add(app, 'x', 1);
  await add(app, 'x', 1);
  t.is(await get(app, 'y'), 10);
  t.is(app.metrics.wakes, 2);
  await app.stop();
  app = await startApplication(tree(), { db, logger: false });
  t.teardown(() => app.stop());
  t.is(await get(app, 'x'), 7);
  t.deepEqual(await app.entities('account'), [
    { key: 'x', seq: 7, snapshotSeq: 7, awake: true },
    { key: 'y', seq: 1, snapshotSeq: 1, awake: false },
  ]);
});

test('idle entities go to sleep after idleMs: snapshotted if changed, onTerminate run, out of memory; the next request wakes them', async (t) => {
  const db = tempDb(t, 'ssm-ent-');
  const terminated: string[] = [];
  const started: string[] = [];
  const machine = counterMachine({ onTerminate: (name, s) => void terminated.push(`${name}=${s.n}`), onStart: (name, s) => void started.push(`${name}=${s.n}`) });
  const app = await startApplication(tree({ idleMs: 200 }, machine), { db, logger: false });
  t.teardown(() => app.stop());
  await Promise.all([add(app, 'a', 3), get(app, 'b')]);
  t.is(familyStatus(app).awake, 2);
  await sleep(700);
  const s = familyStatus(app);
  t.is(s.awake, 0);
  t.is(s.sleeping, 1, 'b was never written: not known, so not sleeping either');
  t.is(app.metrics.sleeps, 2);
  t.deepEqual(terminated.sort(), ['account/a=3', 'account/b=0']);
  t.deepEqual(rows(db, `SELECT machine, seq FROM snapshots`), [{ machine: 'account/a', seq: 1 }], 'only the changed one was snapshotted');
  t.is(await add(app, 'a', 1), 4);
  t.true(started.includes('account/a=3'), 'woken from its snapshot, onStart sees the state');
  await sleep(700);
  t.deepEqual(rows(db, `SELECT machine, seq FROM snapshots ORDER BY seq`), [{ machine: 'account/a', seq: 1 }, { machine: 'account/a', seq: 2 }]);
});

test('past maxActive the least recently used entities sleep first; memory is bounded by maxActive', async (t) => {
  const app = await startApplication(tree({ maxActive: 8 }), { db: tempDb(t, 'ssm-ent-'), logger: false });
  t.teardown(() => app.stop());
  for (let i = 0; i < 100; i++) {
    await add(app, `k${i}`, i);
    await add(app, 'hot', 1);
  }
  await sleep(20);
  const s = familyStatus(app);
  t.true(s.awake <= 8, `awake ${s.awake}`);
  t.is(s.known, 101);
  t.is(s.sleeping, 101 - s.awake);
  const awake = (await app.entities('account', { limit: 1000 })).filter((e) => e.awake).map((e) => e.key);
  t.true(awake.includes('hot'), 'the entity used all along stays awake');
  t.true(awake.includes('k99'));
  for (let i = 0; i < 100; i++) t.is(await get(app, `k${i}`), i, `k${i} woke with its state`);
  t.is(await get(app, 'hot'), 100);
});

test('group commit: one transaction per batch whatever the number of entities in it', async (t) => {
  const commits: number[] = [];
  const app = await startApplication(tree(), { db: tempDb(t, 'ssm-ent-'), logger: false, faults: { beforeCommit: (g: readonly LogGroup[]) => void commits.push(g.length) } });
  t.teardown(() => app.stop());
  const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => add(app, `e${i}`, i)));
  t.deepEqual(replies, Array.from({ length: 200 }, (_, i) => i));
  t.true(commits.length <= 3, `200 entities in ${commits.length} commits (${commits.join(', ')})`);
  t.is(commits.reduce((a, b) => a + b, 0), 200, 'one log row per entity per batch');
});

test('a crashing step restarts only that entity, rebuilt from disk; the failure row names it; others and the fixed machine go on', async (t) => {
  const db = tempDb(t, 'ssm-ent-');
  const app = await startApplication(tree(), { db, logger: false });
  t.teardown(() => app.stop());
  await add(app, 'good', 1);
  await add(app, 'bad', 7);
  await app.call('fixed', { op: 'add', by: 2 });
  const pending = add(app, 'good', 1);
  const err = await t.throwsAsync(app.call('account/bad', { op: 'boom' }), { instanceOf: MachineCrashedError });
  t.is(err.machine, 'account/bad');
  t.is(await pending, 2);
  t.is(await get(app, 'bad'), 7, 'the half-mutated memory was thrown away');
  t.is(await add(app, 'bad', 1), 8);
  t.is(await app.call('fixed', { op: 'get' }), 2);
  const s = familyStatus(app);
  t.is(s.crashed, 1);
  t.is(s.restarts, 1);
  t.deepEqual(rows(db, `SELECT machine, after_seq AS afterSeq, error_message AS msg FROM failed_requests`), [{ machine: 'account/bad', afterSeq: 1, msg: 'boom' }]);
  t.deepEqual(rows(db, `SELECT restarts, last_error AS e FROM machines WHERE name = 'account/bad'`), [{ restarts: 1, e: 'boom' }]);
});

test("past the family's intensity the family fails and its parent decides: restarted by one_for_one, then the root gives up", async (t) => {
  const machine = counterMachine();
  const app = await startApplication(supervisor('one_for_one', [worker('fixed', machine), entities('account', machine, { intensity: 2, periodMs: 60_000 })], { intensity: 1, periodMs: 60_000 }), { db: tempDb(t, 'ssm-ent-'), logger: false });
  await add(app, 'k', 5);
  for (let i = 0; i < 2; i++) await t.throwsAsync(app.call(`account/c${i}`, { op: 'boom' }), { instanceOf: MachineCrashedError });
  t.is(familyStatus(app).status, 'running', '2 crashes within the intensity');
  await t.throwsAsync(app.call('account/c2', { op: 'boom' }), { instanceOf: MachineCrashedError });
  t.is(familyStatus(app).status, 'running', 'the family failed and its parent restarted it');
  t.is(await get(app, 'k'), 5, 'the restarted family wakes its entities from disk');
  for (let i = 0; i < 3; i++) await app.call(`account/d${i}`, { op: 'boom' }).catch(() => {});
  const stopped = await app.stopped;
  t.is(stopped.reason, 'failure', 'the second failure of the family is past the root intensity');
});

test('a temporary entity leaves memory after a crash; its next request wakes it from disk', async (t) => {
  const app = await startApplication(tree({ restart: 'temporary' }), { db: ':memory:', logger: false });
  t.teardown(() => app.stop());
  await add(app, 't', 3);
  await t.throwsAsync(app.call('account/t', { op: 'boom' }), { instanceOf: MachineCrashedError });
  t.is(familyStatus(app).awake, 0);
  t.is(await get(app, 't'), 3);
});

test('requests for an entity going to sleep wait for it and are served from what it wrote; others are not held up', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let sleeping = false;
  const machine = counterMachine({
    onTerminate: async (name) => {
      if (name === 'account/slow') {
        sleeping = true;
        await gate;
      }
    },
  });
  const app = await startApplication(tree({ idleMs: 30, shutdownMs: 5000 }, machine), { db: tempDb(t, 'ssm-ent-'), logger: false });
  t.teardown(() => app.stop());
  await add(app, 'slow', 2);
  while (!sleeping) await sleep(5);
  const waiting = add(app, 'slow', 1);
  let done = false;
  void waiting.then(() => (done = true));
  await sleep(30);
  t.false(done, 'it waits for the sleep to end');
  release();
  t.is(await waiting, 3);
  t.is(await get(app, 'slow'), 3);
});

test('onStart runs before the first request of a woken entity is stepped', async (t) => {
  const seen: number[] = [];
  const machine = counterMachine({
    onStart: async (_n, s) => {
      await sleep(30);
      seen.push(s.n);
    },
  });
  const app = await startApplication(tree({}, machine), { db: ':memory:', logger: false });
  t.teardown(() => app.stop());
  const [a, b] = await Promise.all([add(app, 'h', 1), add(app, 'h', 1)]);
  t.deepEqual([a, b], [1, 2]);
  t.deepEqual(seen, [0, 0], 'the fixed machine and the entity each started once');
  t.true(app.metrics.wakeSeconds.sum >= 0.02, 'the wake latency includes onStart');
});

test('a durable timer of an entity wakes it when due, after it went to sleep', async (t) => {
  const app = await startApplication(tree({ idleMs: 20 }), { db: tempDb(t, 'ssm-ent-'), logger: false });
  t.teardown(() => app.stop());
  await app.call('account/tm', { op: 'later', by: 9, afterMs: 200 });
  await sleep(120);
  t.is(familyStatus(app).awake, 0, 'asleep before its timer is due');
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && app.metrics.timersFired === 0) await sleep(20);
  t.is(await get(app, 'tm'), 9);
});

test('idempotency keys work per entity', async (t) => {
  const app = await startApplication(tree(), { db: tempDb(t, 'ssm-ent-'), logger: false });
  t.teardown(() => app.stop());
  t.is(await app.call('account/i', { op: 'add', by: 1 }, { idempotencyKey: 'k1' }), 1);
  t.is(await app.call('account/i', { op: 'add', by: 1 }, { idempotencyKey: 'k1' }), 1);
  t.is(await app.call('account/j', { op: 'add', by: 1 }, { idempotencyKey: 'k1' }), 1, 'keys are scoped to the entity');
  t.is(await get(app, 'i'), 1);
});

test('app.entities pages by key with prefix and after; bad options are ConfigError; callBytes, callValue and cast address entities too', async (t) => {
  const app = await startApplication(tree(), { db: tempDb(t, 'ssm-ent-'), logger: false });
  t.teardown(() => app.stop());
  for (const k of ['a1', 'a2', 'a3', 'b1', 'a/x']) await add(app, k, 1);
  app.cast('account/c', { op: 'add', by: 2 });
  t.is(await app.callValue('account/c', { op: 'get' }), 2);
  const { cbor } = await import('../src/encoding/cbor.js');
  t.is(cbor.decode(await app.callBytes('account/c', cbor.encode({ op: 'get' }))), 2);
  const keys = async (o: object) => (await app.entities('account', o)).map((e) => e.key);
  t.deepEqual(await keys({}), ['a/x', 'a1', 'a2', 'a3', 'b1', 'c']);
  t.deepEqual(await keys({ prefix: 'a' }), ['a/x', 'a1', 'a2', 'a3']);
  t.deepEqual(await keys({ prefix: 'a', after: 'a1', limit: 1 }), ['a2']);
  t.deepEqual(await keys({ prefix: 'zz' }), []);
  await t.throwsAsync(app.entities('account', { limit: 0 }), { instanceOf: ConfigError });
  await t.throwsAsync(app.entities('account', { limit: 1001 }), { instanceOf: ConfigError });
  await t.throwsAsync(app.entities('nope'), { instanceOf: UnknownMachineError });
  t.true(app.prometheus().includes('ssm_entities_awake{family="account"} 6'));
});

test('a stopped application refuses entity calls with a typed error', async (t) => {
  const app = await startApplication(tree(), { db: ':memory:', logger: false });
  await add(app, 'z');
  await app.stop();
  await t.throwsAsync(add(app, 'z'), { instanceOf: ApplicationStoppedError });
  await t.throwsAsync(add(app, 'new-one'), { instanceOf: ApplicationStoppedError });
});

test('a step may delete its entity: state, snapshots, log, failures, keys, timers and registry row go in the commit of that request', async (t) => {
  const db = tempDb(t, 'ssm-ent-');
  let app = await startApplication(tree({ idleMs: 60_000 }), { db, logger: false, snapshot: { every: 2 } });
  for (let i = 0; i < 5; i++) await add(app, 'gone', 1);
  await app.call('account/gone', { op: 'add', by: 1 }, { idempotencyKey: 'once' });
  await app.call('account/gone', { op: 'boom' }).catch(() => undefined);
  await app.call('account/gone', { op: 'later', by: 1, afterMs: 3_600_000 });
  await add(app, 'kept', 2);
  const count = (table: string) => (rows(db, `SELECT count(*) AS n FROM ${table} WHERE machine = 'account/gone'`)[0] as { n: number }).n;
  t.true(count('snapshots') > 0 && count('request_log') > 0 && count('failed_requests') > 0 && count('timers') > 0 && count('idempotency_keys') > 0);
  t.is(familyStatus(app).known, 2);
  // In one batch: writes before the delete, the delete, and a write after it.
  const [before, deleted, after] = await Promise.all([add(app, 'gone', 10), app.call('account/gone', { op: 'delete' }), add(app, 'gone', 3)]);
  t.deepEqual([before, deleted, after], [16, 16, 3], 'the delete answers with the state it saw; the next request meets a fresh entity');
  for (const table of ['snapshots', 'failed_requests', 'timers', 'idempotency_keys']) t.is(count(table), 0, `${table} rows of the deleted entity`);
  t.deepEqual(rows(db, `SELECT first_seq AS f, last_seq AS l FROM request_log WHERE machine = 'account/gone'`), [{ f: 1, l: 1 }], 'only the write after the delete');
  t.is(familyStatus(app).known, 2, 'deleted and registered again by the write after it');
  t.is(await app.call('account/gone', { op: 'add', by: 1 }, { idempotencyKey: 'once' }), 4, 'its idempotency keys went with it');
  await app.call('account/gone', { op: 'delete' });
  t.is(familyStatus(app).known, 1);
  t.deepEqual((await app.entities('account')).map((e) => e.key), ['kept']);
  await t.throwsAsync(app.call('fixed', { op: 'delete' }), { instanceOf: MachineCrashedError }, 'a machine of the tree cannot delete itself');
  await app.stop();
  app = await startApplication(tree(), { db, logger: false });
  t.teardown(() => app.stop());
  t.is(await get(app, 'gone'), 0);
  t.is(await get(app, 'kept'), 2);
  t.deepEqual(rows(db, `SELECT name FROM machines WHERE name = 'account/gone'`), []);
});

test('a step that stops its entity normally puts it to sleep; its next request wakes it', async (t) => {
  const app = await startApplication(tree(), { db: tempDb(t, 'ssm-ent-'), logger: false });
  t.teardown(() => app.stop());
  await add(app, 's', 4);
  t.is(await app.call('account/s', { op: 'stop' }), 4);
  await sleep(20);
  t.is(familyStatus(app).awake, 0);
  t.is(await add(app, 's', 1), 5);
});

test('an entity whose log is corrupt refuses its requests with RecoveryError, each time; the others go on', async (t) => {
  const db = tempDb(t, 'ssm-ent-');
  let app = await startApplication(tree(), { db, logger: false });
  await add(app, 'bad', 1);
  await add(app, 'ok', 1);
  await app.call('account/bad', { op: 'delete' }).then(() => add(app, 'bad', 1));
  await app.stop();
  const conn = new Database(db);
  // Drop its snapshots and flip a byte of its log: only a checksum can tell.
  conn.prepare(`DELETE FROM snapshots WHERE machine = 'account/bad'`).run();
  conn.prepare(`INSERT INTO request_log (machine, first_seq, last_seq, count, logged_at, size, requests, checksum) VALUES ('account/bad', 2, 2, 1, 'x', 1, x'a0', 'not-the-checksum')`).run();
  conn.close();
  app = await startApplication(tree(), { db, logger: false });
  t.teardown(() => app.stop());
  await t.throwsAsync(get(app, 'bad'), { instanceOf: RecoveryError });
  await t.throwsAsync(get(app, 'bad'), { instanceOf: RecoveryError }, 'tried again on the next request');
  t.is(await get(app, 'ok'), 1);
  t.is(familyStatus(app).awake, 1);
});
