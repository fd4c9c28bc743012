/**
 * Section: KV partitions (`openKV(path, { partitions })`). The same N keys (1M; ~40-byte values)
 * in a store of 64 partitions and in a single-machine store, both built through the public API
 * (batches of 1000 keys of one partition) and closed (snapshotted). Then, in fresh processes
 * (page cache warm): time from openKV to the first reply (a get), time until the whole store is
 * in memory (single machine: openKV itself; partitions: background warming done), and the close
 * after one write (the single machine snapshots every key, the partitioned store one partition).
 */
import { join } from 'node:path';
import { openKV } from '../../src/kv/open-kv.js';
import { fmt, fmtMs, log, median, now, printTable, removeDir, scratch, valueFor, writeResult, type Profile } from '../lib/common.js';
import { runChild } from '../lib/spawn.js';

const PARTITIONS = 64;

interface StallRun {
  writesPerSec: number;
  maxStallMs: number;
  p99StallMs: number;
}

interface OpenRun {
  openMs: number;
  firstReplyMs: number;
  fullMs: number;
  keys: number;
  closeAfterOneWriteMs: number;
}

/** Writes keys k0..k<n-1> through openKV in batches of one partition each; build time in ms. */
async function build(db: string, n: number, partitions: number): Promise<number> {
  const t0 = now();
  const kv = await openKV(db, { partitions, warm: false });
  const groups = new Map<number, { op: 'set'; key: string; value: unknown }[]>();
  const pending: Promise<void>[] = [];
  const flush = async (ops: { op: 'set'; key: string; value: unknown }[]): Promise<void> => {
    pending.push(kv.batch(ops));
    if (pending.length >= 16) await Promise.all(pending.splice(0));
  };
  for (let i = 0; i < n; i++) {
    const key = `k${i}`;
    const p = kv.partitionOf(key);
    const g = groups.get(p) ?? [];
    g.push({ op: 'set', key, value: valueFor(i) });
    groups.set(p, g);
    if (g.length === 1000) {
      groups.delete(p);
      await flush(g);
    }
  }
  for (const g of groups.values()) await flush(g);
  await Promise.all(pending);
  await kv.close();
  return now() - t0;
}

function medianRun(runs: OpenRun[]): OpenRun & { all: OpenRun[] } {
  const pick = (f: keyof OpenRun): number => median(runs.map((r) => r[f]));
  return { openMs: pick('openMs'), firstReplyMs: pick('firstReplyMs'), fullMs: pick('fullMs'), keys: runs[0]!.keys, closeAfterOneWriteMs: pick('closeAfterOneWriteMs'), all: runs };
}

export async function runKvPartitions(profile: Profile): Promise<Record<string, unknown>> {
  const n = 1_000_000;
  const runs = profile.full ? 5 : 2;
  const dir = scratch('kv-partitions');
  try {
    const results: Record<string, OpenRun & { all: OpenRun[]; buildMs: number; stall: StallRun }> = {};
    for (const partitions of [1, PARTITIONS]) {
      const db = join(dir, `kv-${partitions}.db`);
      log(`kv-partitions: building ${fmt(n)} keys, partitions ${partitions}`);
      const buildMs = await build(db, n, partitions);
      const all: OpenRun[] = [];
      for (let r = 0; r < runs; r++) all.push(await runChild<OpenRun>(['kv-open', db, String(partitions)]));
      if (all.some((x) => x.keys !== n)) throw new Error(`expected ${n} keys, got ${all.map((x) => x.keys).join(', ')}`);
      // Last: the load writes into the store (a fresh process, so the figures above are unaffected).
      const stall = await runChild<StallRun>(['kv-stall', db, String(partitions), String(Math.min(profile.seconds, 4))]);
      results[partitions] = { ...medianRun(all), buildMs, stall };
    }
    const single = results[1]!;
    const parted = results[PARTITIONS]!;
    const ratios = {
      firstReply: single.firstReplyMs / parted.firstReplyMs,
      fullRecovery: parted.fullMs / single.fullMs,
      closeAfterOneWrite: single.closeAfterOneWriteMs / parted.closeAfterOneWriteMs,
    };
    const row = (name: string, r: typeof single) => [name, fmtMs(r.openMs), fmtMs(r.firstReplyMs), fmtMs(r.fullMs), fmtMs(r.closeAfterOneWriteMs), fmt(r.stall.maxStallMs, 1), fmt(r.stall.writesPerSec), fmt(r.buildMs / 1000, 1)];
    printTable(
      `kv-partitions: ${fmt(n)} keys, one machine vs ${PARTITIONS} partitions (fresh process, durability full, median of ${runs})`,
      [['store', 'openKV ms', 'first reply ms', 'all loaded ms', 'close after 1 write ms', 'max stall ms (target < 50)', 'writes/s under snapshots', 'build s'], row('one machine', single), row(`${PARTITIONS} partitions`, parted)],
      [
        `first reply: ${fmt(ratios.firstReply, 1)}x sooner with partitions (it waits for its own partition, warming goes on behind it); all loaded: ${fmt(ratios.fullRecovery, 2)}x the single machine's time; close after one write: ${fmt(ratios.closeAfterOneWrite, 1)}x cheaper (one partition's snapshot instead of every key).`,
        'Both stores built through openKV (batches of 1000 keys of one partition), then closed (snapshotted): recovery loads snapshots, no log.',
        'max stall: the longest event-loop pause (monitorEventLoopDelay, 1 ms resolution) while 256 writers set random keys and a policy snapshot is taken every 1,000 writes of a machine (one process per store, after the runs above).',
      ],
    );
    const data = { keys: n, partitions: PARTITIONS, runs, single, partitioned: parted, ratios };
    writeResult('kv-partitions', profile, data);
    return data;
  } finally {
    removeDir(dir);
  }
}
