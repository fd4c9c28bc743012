/**
 * Idempotency keys (issue 16.1): a keyed call is applied once, however often it is retried, and
 * the retry gets the first call's reply. A counter machine makes a double application visible.
 */
import test from 'ava';
import Database from 'better-sqlite3';
import { startApplication, type App } from '../src/engine/application.js';
import type { ApplicationOptions } from '../src/engine/options.js';
import { cbor } from '../src/encoding/cbor.js';
import { ConfigError, IdempotencyKeyReusedError, MachineCrashedError, StorageError } from '../src/errors.js';
import { defineMachine } from '../src/model/machine.js';
import { supervisor, worker } from '../src/model/tree.js';
import { tempDb } from './helpers/persistence-kv.js';

type In = { add: number } | { crash: true } | { get: true };
/** Adds to a counter; the reply says what the counter became, so replies differ per application. */
const counter = defineMachine<number, In, { total: number; applied: number }>({
  init: () => 0,
  readOnly: (i) => 'get' in i,
  step: (i, n) => {
    if ('crash' in i) throw new Error('crashed on purpose');
    if ('get' in i) return [n, { total: n, applied: 0 }];
    return [n + i.add, { total: n + i.add, applied: i.add }];
  },
});
const tree = () => supervisor('one_for_one', [worker('a', counter), worker('b', counter)], { intensity: 1000, periodMs: 1000 });

async function start(t: Parameters<typeof tempDb>[0], db = tempDb(t), options: ApplicationOptions = {}): Promise<{ app: App; db: string }> {
  const app = await startApplication(tree(), { db, logger: false, ...options });
  t.teardown(() => app.stop());
  return { app, db };
}

const total = async (app: App, name = 'a'): Promise<number> => ((await app.call(name, { get: true })) as { total: number }).total;

test('a retried call with the same key is applied once and gets the first reply', async (t) => {
  const { app } = await start(t);
  const first = await app.call('a', { add: 5 }, { idempotencyKey: 'k1' });
  t.deepEqual(first, { total: 5, applied: 5 });
  t.deepEqual(await app.call('a', { add: 5 }, { idempotencyKey: 'k1' }), first);
  t.deepEqual(await app.call('a', { add: 5 }, { idempotencyKey: 'k1' }), first);
  t.is(await total(app), 5);
  t.is(app.metrics.idempotentReplays, 2);
  // Another key, and no key at all, are applied.
  await app.call('a', { add: 5 }, { idempotencyKey: 'k2' });
  await app.call('a', { add: 5 });
  t.is(await total(app), 15);
});

test('retries in flight together (one batch) are applied once and all get the same reply', async (t) => {
  const { app } = await start(t);
  const replies = await Promise.all(Array.from({ length: 20 }, () => app.call('a', { add: 1 }, { idempotencyKey: 'same' })));
  for (const r of replies) t.deepEqual(r, { total: 1, applied: 1 });
  t.is(await total(app), 1);
});

test('the same key with a different input is refused and applies nothing; keys are scoped to their machine', async (t) => {
  const { app } = await start(t);
  await app.call('a', { add: 1 }, { idempotencyKey: 'k' });
  const err = await t.throwsAsync(app.call('a', { add: 2 }, { idempotencyKey: 'k' }), { instanceOf: IdempotencyKeyReusedError });
  t.is(err?.code, 'IDEMPOTENCY_KEY_REUSED');
  t.is(await total(app), 1);
  // In the same batch too.
  const [ok, reused] = await Promise.allSettled([app.call('a', { add: 10 }, { idempotencyKey: 'j' }), app.call('a', { add: 20 }, { idempotencyKey: 'j' })]);
  t.is(ok.status, 'fulfilled');
  t.true(reused.status === 'rejected' && reused.reason instanceof IdempotencyKeyReusedError);
  t.is(await total(app), 11);
  // The same key on another machine is another key.
  t.deepEqual(await app.call('b', { add: 2 }, { idempotencyKey: 'k' }), { total: 2, applied: 2 });
});

test('a key survives stop and restart: the retry after a restart gets the stored reply, and the key is readable in SQL', async (t) => {
  const db = tempDb(t);
  const first = await startApplication(tree(), { db, logger: false });
  const reply = await first.call('a', { add: 7 }, { idempotencyKey: 'order-1' });
  await first.stop();
  const { app } = await start(t, db);
  t.deepEqual(await app.call('a', { add: 7 }, { idempotencyKey: 'order-1' }), reply);
  t.is(await total(app), 7);
  const raw = new Database(db, { readonly: true });
  t.teardown(() => raw.close());
  t.deepEqual(raw.prepare('SELECT machine, key, seq FROM idempotency_key_list').all(), [{ machine: 'a', key: 'order-1', seq: 1 }]);
  t.deepEqual((cbor.decode(raw.prepare('SELECT replies FROM idempotency_records').pluck().get() as Buffer) as unknown[])[0], reply);
});

test('the bytes path replays the same reply bytes', async (t) => {
  const { app } = await start(t);
  const input = cbor.encode({ add: 3 });
  const a = await app.callBytes('a', input, { idempotencyKey: 'bytes' });
  const b = await app.callBytes('a', input, { idempotencyKey: 'bytes' });
  t.deepEqual(Buffer.from(b), Buffer.from(a));
  t.is(await total(app), 3);
});

test('a call that crashed its machine records no key: its retry is applied (it never was)', async (t) => {
  const { app } = await start(t);
  await t.throwsAsync(app.call('a', { crash: true }, { idempotencyKey: 'c' }), { instanceOf: MachineCrashedError });
  await app.call('a', { add: 1 }, { idempotencyKey: 'c' });
  t.is(await total(app), 1);
});

test('a call whose commit failed records no key: its retry is applied once', async (t) => {
  const faults = { fail: false };
  const { app } = await start(t, undefined, {
    faults: {
      beforeCommit: () => {
        if (faults.fail) throw new Error('simulated disk I/O error');
      },
    },
  });
  faults.fail = true;
  await t.throwsAsync(app.call('a', { add: 4 }, { idempotencyKey: 'f' }), { instanceOf: StorageError });
  faults.fail = false;
  // Storage health backs off after a failed commit: retry until it takes writes again.
  let reply: unknown;
  for (let i = 0; i < 100 && reply === undefined; i++) {
    reply = await app.call('a', { add: 4 }, { idempotencyKey: 'f' }).catch(async () => void (await new Promise((r) => setTimeout(r, 50))));
  }
  t.deepEqual(reply, { total: 4, applied: 4 });
  t.deepEqual(await app.call('a', { add: 4 }, { idempotencyKey: 'f' }), reply);
  t.is(await total(app), 4);
});

test('a key on a read-only call is ignored (nothing recorded); malformed keys are refused with ConfigError', async (t) => {
  const { app, db } = await start(t);
  await app.call('a', { get: true }, { idempotencyKey: 'read' });
  for (const bad of ['', 'x'.repeat(1025), '\ud800', 42 as unknown as string]) {
    await t.throwsAsync(app.call('a', { add: 1 }, { idempotencyKey: bad }), { instanceOf: ConfigError }, JSON.stringify(bad));
  }
  await app.call('a', { add: 1 }, { idempotencyKey: 'é'.repeat(512) }); // 1024 bytes: the limit itself
  t.is(await total(app), 1);
  const raw = new Database(db, { readonly: true });
  t.teardown(() => raw.close());
  t.deepEqual(raw.prepare('SELECT key FROM idempotency_keys').pluck().all(), ['é'.repeat(512)]);
});

test('retention: a key older than retainMs is forgotten (its retry is applied again), and at most maxKeys are kept', async (t) => {
  const { app, db } = await start(t, undefined, { idempotency: { retainMs: 1500, maxKeys: 3 } });
  await app.call('a', { add: 1 }, { idempotencyKey: 'old' });
  t.deepEqual(await app.call('a', { add: 1 }, { idempotencyKey: 'old' }), { total: 1, applied: 1 });
  await new Promise((r) => setTimeout(r, 1700));
  t.deepEqual(await app.call('a', { add: 1 }, { idempotencyKey: 'old' }), { total: 2, applied: 1 }, 'expired: applied again');
  for (let i = 0; i < 10; i++) await app.call('b', { add: 1 }, { idempotencyKey: `n${i}` });
  const raw = new Database(db, { readonly: true });
  t.teardown(() => raw.close());
  t.deepEqual(raw.prepare('SELECT key FROM idempotency_keys ORDER BY record').pluck().all(), ['n7', 'n8', 'n9']);
  await t.throwsAsync(startApplication(tree(), { db: tempDb(t), logger: false, idempotency: { maxKeys: 0 } }), { instanceOf: ConfigError });
});

test('an output that is not encodable: applied once, its retry gets a clear EncodeError; the other keys of its batch keep their replies', async (t) => {
  const odd = defineMachine<number, { add: number; fn?: true }, unknown>({
    init: () => 0,
    step: (i, n) => [n + i.add, i.fn ? { total: n + i.add, f: () => 1 } : { total: n + i.add }],
  });
  const app = await startApplication(supervisor('one_for_one', [worker('o', odd)]), { db: tempDb(t), logger: false });
  t.teardown(() => app.stop());
  // One batch: a plain reply and one with a function in it (cbor-x refuses functions).
  const [plain] = await Promise.all([app.call('o', { add: 1 }, { idempotencyKey: 'p' }), app.call('o', { add: 2, fn: true }, { idempotencyKey: 'f' }).catch((e: unknown) => e)]);
  t.deepEqual(plain, { total: 1 });
  t.deepEqual(await app.call('o', { add: 1 }, { idempotencyKey: 'p' }), { total: 1 }, 'the encodable reply of the same row is kept');
  const err = await t.throwsAsync(app.call('o', { add: 2, fn: true }, { idempotencyKey: 'f' }));
  t.regex(err?.message ?? '', /applied once .*not encodable/);
});

test('thousands of keys across a restart: the index is rebuilt from the table, every retry is answered and nothing is applied twice', async (t) => {
  const db = tempDb(t);
  const first = await startApplication(tree(), { db, logger: false });
  const keys = Array.from({ length: 3000 }, (_, i) => `order-${i}-${'x'.repeat(i % 40)}`);
  for (let i = 0; i < keys.length; i += 500) await Promise.all(keys.slice(i, i + 500).map((k) => first.call('a', { add: 1 }, { idempotencyKey: k })));
  await first.stop();
  const { app } = await start(t, db);
  const again: unknown[] = [];
  for (let i = 0; i < keys.length; i += 500) again.push(...(await Promise.all(keys.slice(i, i + 500).map((k) => app.call('a', { add: 1 }, { idempotencyKey: k })))));
  t.is(new Set(again.map((r) => (r as { total: number }).total)).size, keys.length, 'each retry got its own first reply');
  t.is(await total(app), keys.length);
  t.is(app.metrics.idempotentReplays, keys.length);
  const raw = new Database(db, { readonly: true });
  t.teardown(() => raw.close());
  t.is(raw.prepare('SELECT count(*) FROM idempotency_keys').pluck().get(), keys.length);
  t.true((raw.prepare('SELECT count(*) FROM idempotency_records').pluck().get() as number) < keys.length / 10, 'one row per machine per batch');
});

test('keys written by schema version 7 (one row per key) are migrated: their retries are answered from the old reply', async (t) => {
  const db = tempDb(t);
  const { loadMigrations, migrate } = await import('../src/storage/migrations.js');
  const old = new Database(db);
  migrate(old, loadMigrations().filter((m) => m.version <= 7));
  const input = cbor.encode({ add: 9 });
  const { createHash } = await import('node:crypto');
  old.prepare('INSERT INTO idempotency_keys (machine, key, seq, input_sha256, reply, created_at) VALUES (?, ?, ?, ?, ?, ?)').run('a', 'legacy', 1, createHash('sha256').update(input).digest('hex'), cbor.encode({ total: 9, applied: 9 }), new Date().toISOString());
  old.close();
  const { app } = await start(t, db);
  t.deepEqual(await app.call('a', { add: 9 }, { idempotencyKey: 'legacy' }), { total: 9, applied: 9 });
  await t.throwsAsync(app.call('a', { add: 8 }, { idempotencyKey: 'legacy' }), { instanceOf: IdempotencyKeyReusedError });
  t.is(await total(app), 0, 'not applied again');
});
