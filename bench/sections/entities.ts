/**
 * Section: entities (issue 13). N entities on disk (1M in the full profile, 100k in the quick
 * one; a small counter state each), `maxActive` 10k, 256 callers adding 1 to random keys,
 * against the same load on one fixed machine of the same application, in alternating pairs
 * (ratio: median of the per-pair ratios). Also: reads of sleeping entities (each one a wake)
 * against reads of awake ones, one caller, p50/p99; `startApplication` to first reply with N
 * sleeping entities; RSS after touching 10k entities and after touching all N.
 */
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { cbor } from '../../src/encoding/cbor.js';
import { startApplication, type App } from '../../src/engine/application.js';
import { defineMachine } from '../../src/model/machine.js';
import { entities } from '../../src/model/entities.js';
import { supervisor, worker } from '../../src/model/tree.js';
import { Samples, fmt, fmtMs, latencySummary, log, now, printTable, removeDir, scratch, writeResult, type Profile } from '../lib/common.js';
import { alternatingPairs } from '../lib/paired.js';

type Input = { add: number } | { get: true };
const counter = defineMachine<{ n: number }, Input, number>({
  init: () => ({ n: 0 }),
  readOnly: (i) => 'get' in i,
  step: (i, s) => {
    if ('get' in i) return [s, s.n];
    s.n += i.add;
    return [s, s.n];
  },
});

const MAX_ACTIVE = 10_000;
const CALLERS = 256;
const tree = () => supervisor('one_for_one', [worker('fixed', counter), entities('account', counter, { maxActive: MAX_ACTIVE })]);
const open = (db: string) => startApplication(tree(), { db, logger: false });

/** Writes `n` sleeping entities straight into the schema: a registry row and one snapshot each (state { n: 1 }, seq 1). */
function populate(db: string, n: number): void {
  const conn = new BetterSqlite3(db);
  conn.pragma('journal_mode = WAL');
  conn.pragma('synchronous = OFF');
  const state = cbor.encode({ n: 1 });
  const checksum = createHash('sha256').update(state).digest('hex');
  const at = new Date().toISOString();
  const reg = conn.prepare(`INSERT INTO machines (name, status, state_version, created_at, updated_at, family, entity_key, durable_seq) VALUES (?, 'entity', 1, ?, ?, 'account', ?, 1)`);
  const snap = conn.prepare(`INSERT INTO snapshots (machine, seq, state_version, taken_at, reason, size, checksum, state) VALUES (?, 1, 1, ?, 'terminate', ?, ?, ?)`);
  const chunk = conn.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const key = `k${i}`;
      reg.run(`account/${key}`, at, at, key);
      snap.run(`account/${key}`, at, state.byteLength, checksum, state);
    }
  });
  for (let i = 0; i < n; i += 50_000) chunk(i, Math.min(n, i + 50_000));
  conn.close();
}

/** `CALLERS` closed-loop callers for `seconds`, each on `name(i)`; durable writes/s. */
async function load(app: App, name: () => string, seconds: number): Promise<number> {
  let ops = 0;
  const end = now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: CALLERS }, async () => {
      while (now() < end) {
        await app.call(name(), { add: 1 });
        ops++;
      }
    }),
  );
  return ops / seconds;
}

/** One caller reading `count` keys from `key(i)`, sequentially; per-call latency in ms. */
async function reads(app: App, key: (i: number) => string, count: number): Promise<{ p50: number; p99: number }> {
  const s = new Samples();
  for (let i = 0; i < count; i++) {
    const t0 = now();
    await app.call(key(i), { get: true });
    s.push(now() - t0);
  }
  return latencySummary(s.array());
}

/** The bucket bound below which fraction `q` of a histogram's observations fall (ms). */
function histogramQuantile(h: { bounds: readonly number[]; counts: readonly number[]; count: number }, q: number): number {
  let seen = 0;
  for (let i = 0; i < h.bounds.length; i++) {
    seen += h.counts[i]!;
    if (seen >= q * h.count) return h.bounds[i]! * 1000;
  }
  return Number.POSITIVE_INFINITY;
}

const rss = (): number => process.memoryUsage().rss / 2 ** 20;

export async function runEntities(p: Profile): Promise<Record<string, unknown>> {
  const n = p.full ? 1_000_000 : 100_000;
  const dir = scratch('entities');
  const db = join(dir, 'ssm.db');
  try {
    await (await open(db)).stop();
    const b0 = now();
    populate(db, n);
    log(`entities: ${n} entities written in ${fmt((now() - b0) / 1000, 1)} s`);

    // Start-up with N sleeping entities: nothing is loaded eagerly.
    const s0 = now();
    let app = await open(db);
    await app.call('account/k1', { get: true });
    const startMs = now() - s0;
    await app.stop();

    app = await open(db);
    const random = (): string => `account/k${Math.floor(Math.random() * n)}`;
    // Warm-up of both loads (JIT, page cache).
    await load(app, random, 0.5);
    await load(app, () => 'fixed', 0.3);
    const wakesBefore = { count: app.metrics.wakeSeconds.count, counts: [...app.metrics.wakeSeconds.counts] };
    const pairs = p.full ? 5 : 3;
    const paired = await alternatingPairs('entities vs fixed', pairs, () => load(app, random, p.seconds), () => load(app, () => 'fixed', p.seconds));
    const wakeHist = { bounds: app.metrics.wakeSeconds.bounds, counts: app.metrics.wakeSeconds.counts.map((c, i) => c - wakesBefore.counts[i]!), count: app.metrics.wakeSeconds.count - wakesBefore.count };

    // Reads: sleeping entities (each a wake) against awake ones, one caller.
    const sleepingBase = Math.floor(n / 2);
    const sleeping = await reads(app, (i) => `account/k${(sleepingBase + i * 7919) % n}`, 2000);
    for (let i = 0; i < 100; i++) await app.call(`account/k${i}`, { get: true });
    const awake = await reads(app, (i) => `account/k${i % 100}`, 2000);

    // Memory: RSS after touching 10k entities, then after touching all N (reads: wake and sleep).
    await app.stop();
    app = await open(db);
    for (let i = 0; i < 10_000; i++) await app.call(`account/k${i}`, { get: true });
    (globalThis as { gc?: () => void }).gc?.();
    const rss10k = rss();
    const t0 = now();
    const batch = 64;
    for (let i = 0; i < n; i += batch) await Promise.all(Array.from({ length: Math.min(batch, n - i) }, (_, j) => app.call(`account/k${i + j}`, { get: true })));
    const touchSeconds = (now() - t0) / 1000;
    (globalThis as { gc?: () => void }).gc?.();
    const rssAll = rss();
    await app.stop();

    const rows = [
      ['measure', 'value', 'target'],
      [`durable writes/s, ${CALLERS} callers on random entities of ${n}`, fmt(paired.a), ''],
      [`durable writes/s, ${CALLERS} callers on one fixed machine`, fmt(paired.b), ''],
      ['ratio entities / fixed (median of pairs)', fmt(paired.ratio, 2), '>= 0.5'],
      ['wake during the load, p50 (histogram bucket, ms)', fmtMs(histogramQuantile(wakeHist, 0.5)), '< 0.5'],
      ['wake during the load, p99 (histogram bucket, ms)', fmtMs(histogramQuantile(wakeHist, 0.99)), '< 5'],
      ['read of a sleeping entity (a wake), p50 / p99 ms', `${fmtMs(sleeping.p50)} / ${fmtMs(sleeping.p99)}`, ''],
      ['read of an awake entity, p50 / p99 ms', `${fmtMs(awake.p50)} / ${fmtMs(awake.p99)}`, ''],
      [`startApplication to first reply, ${n} sleeping (ms)`, fmt(startMs, 1), '< 200'],
      ['RSS after touching 10k (MiB)', fmt(rss10k), ''],
      [`RSS after touching all ${n} (MiB)`, fmt(rssAll), `<= ${fmt(rss10k + 64)}`],
      [`touching all ${n} by reads (s)`, fmt(touchSeconds, 1), ''],
    ];
    printTable(`entities (${p.full ? 'full' : 'quick'}: ${n} entities, maxActive ${MAX_ACTIVE})`, rows, [
      'entities and fixed loads alternate in one application on one database (pairs), 2 cores shared: compare the ratio, not the absolute figures',
    ]);
    const data = { entities: n, maxActive: MAX_ACTIVE, callers: CALLERS, paired, wakeHistogram: wakeHist, sleepingReadMs: sleeping, awakeReadMs: awake, startMs, rss10kMiB: rss10k, rssAllMiB: rssAll, touchSeconds };
    log(`wrote ${writeResult('entities', p, data)}`);
    return data;
  } finally {
    removeDir(dir);
  }
}
