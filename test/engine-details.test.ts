import test from 'ava';
import fc from 'fast-check';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApplication } from '../src/engine/application.js';
import { decodeCbor } from '../src/encoding/cbor.js';
import { Deadlines } from '../src/engine/deadlines.js';
import { CallTimeoutError, ConfigError } from '../src/errors.js';
import { kvMachine } from '../src/kv/kv-machine.js';
import { defineMachine } from '../src/model/machine.js';
import { SLICE_ENTRIES, encodeStateSlices } from '../src/encoding/snapshot-encoding.js';
import { Store } from '../src/storage/store.js';
import { supervisor, worker } from '../src/model/tree.js';

const tmp = (name: string): string => join(mkdtempSync(join(tmpdir(), 'ssm-details-')), name);

test('sliced snapshot encoding decodes to the same Map for any size and slice length', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 1, max: 12 }), (size, slice) => {
      const map = new Map<unknown, unknown>(Array.from({ length: size }, (_, i) => [i % 3 ? `k${i}` : i, { n: i, when: new Date(i), tags: new Set([i]) }]));
      const chunks = [...encodeStateSlices(map, slice)];
      if (size > slice) t.is(chunks.length, 2 + Math.ceil(size / slice), 'header, one chunk per slice, break');
      const back = decodeCbor(Buffer.concat(chunks));
      t.true(back instanceof Map);
      t.deepEqual(back, map);
    }),
    { numRuns: 200 },
  );
});

test('a state larger than one slice survives checkpoint and restart whole, last entry included', async (t) => {
  const db = tmp('slices.db');
  const n = SLICE_ENTRIES + 3;
  const big = defineMachine<Map<string, number>, { fill: number } | { size: true } | { get: string }, unknown>({
    init: () => new Map(),
    step: (input, state) => {
      if ('fill' in input) for (let i = 0; i < input.fill; i++) state.set(`k${i}`, i);
      if ('size' in input) return [state, state.size];
      if ('get' in input) return [state, state.get(input.get)];
      return [state, null];
    },
    readOnly: (input) => !('fill' in input),
  });
  const tree = supervisor('one_for_one', [worker('big', big)]);
  let app = await startApplication(tree, { db, logger: false });
  await app.call('big', { fill: n });
  await app.checkpoint();
  await app.stop();
  const events: unknown[] = [];
  app = await startApplication(tree, { db, logger: (e) => events.push(e) });
  t.like(events[0], { type: 'started', recovery: { path: 'snapshot', replayed: 0 } });
  t.is(await app.call('big', { size: true }), n);
  t.is(await app.call('big', { get: `k${n - 1}` }), n - 1);
  await app.stop();
});

test('a shorter call timeout added after a longer one still fires on time', async (t) => {
  const expired: string[] = [];
  const pending = new Set(['long', 'short']);
  const d = new Deadlines<string>((item) => expired.push(item), (item) => pending.has(item));
  d.add('long', 60_000);
  d.add('short', 30);
  await new Promise((r) => setTimeout(r, 300));
  t.deepEqual(expired, ['short']);
  d.clear();
});

test('a crashing request whose timeout passes while its supervisor restarts the machine gets CallTimeoutError', async (t) => {
  let restarts = 0;
  const slowRestart = defineMachine({
    ...kvMachine({ deliberateCrash: true }),
    onStart: () => (restarts++ > 0 ? new Promise<void>((r) => setTimeout(r, 600)) : undefined),
  });
  const app = await startApplication(supervisor('one_for_one', [worker('kv', slowRestart, { shutdownMs: 5000 })]), { db: ':memory:', logger: false });
  try {
    await t.throwsAsync(app.call('kv', { op: 'lookup', key: 'crash' }, { timeoutMs: 100 }), { instanceOf: CallTimeoutError });
    t.is(await app.call('kv', { op: 'size' }), 0, 'the machine was restarted and serves');
  } finally {
    await app.stop();
  }
});

test("durability 'full' and 'normal' set SQLite's synchronous mode, in WAL", (t) => {
  for (const [durability, expected] of [['full', 2], ['normal', 1]] as const) {
    const store = Store.open(tmp(`${durability}.db`), { durability });
    t.is(store.db.pragma('synchronous', { simple: true }), expected, durability);
    t.is(store.db.pragma('journal_mode', { simple: true }), 'wal', durability);
    store.close();
  }
});

test('an unknown durability is a ConfigError, refused before the file is created', (t) => {
  const db = tmp('bad-durability.db');
  t.throws(() => Store.open(db, { durability: 'sometimes' as never }), { instanceOf: ConfigError, message: /durability must be 'full' or 'normal'/ });
  t.false(existsSync(db));
});
