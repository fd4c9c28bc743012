/**
 * Child process for measurements that need a fresh process or an abrupt end (no graceful stop,
 * so the database is left as a SIGKILL would leave it after the last commit):
 *   recover <db>                                   start, report recovery, exit without stop
 *   load <db> <seconds> <concurrency> <every> <keyspace> [maxTimeShare]  write load, report, exit without stop
 *   memory <db> <keys>                             recover a state, report RSS/heap after GC
 *   overload <db> <seconds> <perTick>              open-loop burst far above queue capacity
 *   serve-ipc <db>                                 chaos server: writes arrive over IPC
 *   kv-open <db> <partitions>                      openKV until its first reply and until fully loaded, then one write and close
 *   kv-stall <db> <partitions> <seconds>           256 writers on random keys with policy snapshots every 1,000 writes: longest event-loop stall
 * Prints one JSON line on stdout (except serve-ipc, which talks over IPC).
 */
import { QueueFullError } from '../src/errors.js';
import { startKv, storeInput, MACHINE } from './lib/kv.js';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { openKV } from '../src/kv/open-kv.js';

const [mode, db, ...rest] = process.argv.slice(2);
const out = (o: unknown): void => {
  process.stdout.write(JSON.stringify(o) + '\n');
};
const gc = (): void => {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) { g(); g(); }
};
const mem = () => {
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers };
};

async function main(): Promise<void> {
  if (!db) throw new Error('usage: child.ts <mode> <db> ...');
  switch (mode) {
    case 'recover': {
      const { ms, report } = await startKv(db, { durability: 'full' });
      out({ ms, report });
      process.exit(0);
    }
    case 'load': {
      const [seconds, conc, every, keyspace, maxTimeShare] = rest.map(Number) as [number, number, number, number, number | undefined];
      const { app } = await startKv(db, { durability: 'full', snapshot: { every, everyBytes: 0, ...(maxTimeShare ? { maxTimeShare } : {}) } });
      let ops = 0;
      let next = 0;
      const t0 = performance.now();
      const end = t0 + seconds * 1000;
      await Promise.all(Array.from({ length: conc }, async () => {
        while (performance.now() < end) {
          const i = next++ % keyspace;
          await app.call(MACHINE, storeInput(i));
          ops++;
        }
      }));
      const el = (performance.now() - t0) / 1000;
      out({ ops, seconds: el, opsPerSec: ops / el, snapshots: app.metrics.snapshots });
      process.exit(0);
    }
    case 'memory': {
      gc();
      const before = mem();
      const { app, ms } = await startKv(db, { durability: 'full' });
      gc();
      const after = mem();
      const size = await app.call<number>(MACHINE, { op: 'size' });
      out({ before, after, keys: size, recoverMs: ms });
      process.exit(0);
    }
    case 'overload': {
      const [seconds, perTick] = rest.map(Number) as [number, number];
      const { app } = await startKv(db, { durability: 'full' });
      gc();
      const base = mem();
      let accepted = 0;
      let rejected = 0;
      let otherErrors = 0;
      let maxDepth = 0;
      let maxRss = base.rss;
      let maxHeap = base.heapUsed;
      let i = 0;
      const t0 = performance.now();
      const end = t0 + seconds * 1000;
      const samples: { t: number; rss: number; heapUsed: number; depth: number }[] = [];
      let lastSample = 0;
      let turns = 0;
      await new Promise<void>((resolve) => {
        const tick = (): void => {
          turns++;
          for (let j = 0; j < perTick; j++) {
            app.call(MACHINE, storeInput(i++ % 100_000)).then(
              () => { accepted++; },
              (e: unknown) => { if (e instanceof QueueFullError) rejected++; else otherErrors++; },
            );
          }
          maxDepth = Math.max(maxDepth, app.queueDepth);
          const t = performance.now();
          if (t - lastSample > 50) {
            lastSample = t;
            const m = process.memoryUsage();
            maxRss = Math.max(maxRss, m.rss);
            maxHeap = Math.max(maxHeap, m.heapUsed);
            samples.push({ t: Math.round(t - t0), rss: m.rss, heapUsed: m.heapUsed, depth: app.queueDepth });
          }
          if (t < end) setImmediate(tick);
          else resolve();
        };
        setImmediate(tick);
      });
      await app.stop();
      gc();
      out({ base, maxRss, maxHeap, endRss: process.memoryUsage().rss, accepted, rejected, otherErrors, maxDepth, capacity: 1024, submitted: i, turns, seconds: (performance.now() - t0) / 1000, samples });
      process.exit(0);
    }
    case 'serve-ipc': {
      const t0 = performance.now();
      const { app, report } = await startKv(db, { durability: 'full' });
      process.send!({ type: 'ready', ms: performance.now() - t0, report });
      process.on('message', (m: { type: string; id: number; key?: string; value?: number; keys?: [string, number][] }) => {
        if (m.type === 'store') {
          app.call(MACHINE, { op: 'store', key: m.key, value: m.value }).then(
            () => process.send!({ type: 'ack', id: m.id }),
            (e: unknown) => process.send!({ type: 'nack', id: m.id, error: String(e) }),
          );
        } else if (m.type === 'verify') {
          // Lookups go through the queue like any call: what a client would read back.
          void Promise.all(m.keys!.map(async ([k, v]) => ((await app.call(MACHINE, { op: 'lookup', key: k })) === v ? null : k))).then((bad) => {
            process.send!({ type: 'verified', id: m.id, missing: bad.filter((x) => x !== null) });
          });
        }
      });
      return;
    }
    case 'kv-open': {
      // The partitions section: time to the first reply (a get of one key) and to a store fully
      // in memory (the single machine loads everything before openKV resolves; a partitioned one
      // once background warming is done), then the close after one write (its snapshot cost).
      const partitions = Number(rest[0]);
      const t0 = performance.now();
      const kv = await openKV(db, { partitions, durability: 'full' });
      const openMs = performance.now() - t0;
      const first = await kv.get('k12345');
      const firstReplyMs = performance.now() - t0;
      await kv.whenWarm();
      const fullMs = performance.now() - t0;
      const keys = await kv.size();
      await kv.set('k12345', first);
      const c0 = performance.now();
      await kv.close();
      out({ openMs, firstReplyMs, fullMs, keys, closeAfterOneWriteMs: performance.now() - c0 });
      process.exit(0);
    }
    case 'kv-stall': {
      // The longest pause of the Node.js event loop while 256 writers go on and policy snapshots
      // are taken (every 1,000 writes of a machine: the single machine snapshots all its keys,
      // a partition only its own). Exits without closing (the close would snapshot everything).
      const [partitions, seconds] = rest.map(Number) as [number, number];
      const kv = await openKV(db, { partitions, durability: 'full', snapshot: { every: 1000 } });
      await kv.whenWarm();
      const n = await kv.size();
      const h = monitorEventLoopDelay({ resolution: 1 });
      h.enable();
      let writes = 0;
      const end = performance.now() + seconds * 1000;
      await Promise.all(Array.from({ length: 256 }, async () => {
        while (performance.now() < end) {
          await kv.set(`k${Math.floor(Math.random() * n)}`, { n: writes });
          writes++;
        }
      }));
      h.disable();
      out({ writesPerSec: writes / seconds, maxStallMs: h.max / 1e6, p99StallMs: h.percentile(99) / 1e6 });
      process.exit(0);
    }
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`child failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(2);
});
