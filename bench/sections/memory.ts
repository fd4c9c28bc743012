/**
 * Section 6: memory. RSS of a fresh process holding a recovered kv state against the state's own
 * size (its CBOR snapshot bytes); and RSS while a burst far above queue capacity is refused with
 * QueueFullError (the queue must keep memory bounded).
 */
import { join } from 'node:path';
import { fmt, log, printTable, removeDir, scratch, writeResult, type Profile } from '../lib/common.js';
import { buildDb } from '../lib/kv.js';
import { runChild } from '../lib/spawn.js';

const MB = 1024 * 1024;
type Mem = { rss: number; heapUsed: number; external: number; arrayBuffers: number };

export async function runMemory(profile: Profile): Promise<Record<string, unknown>> {
  const state: { keys: number; cborBytes: number; rss: number; heapUsed: number; rssBeforeStart: number; rssOverStateBytes: number; addedRssOverStateBytes: number }[] = [];
  let emptyRss = 0;
  for (const n of [0, 100_000, 1_000_000]) {
    log(`memory: state ${fmt(n)} keys`);
    const dir = scratch(`memory-${n}`);
    try {
      const db = join(dir, 'ssm.db');
      const { snapshotBytes } = buildDb(db, n, 0);
      const r = await runChild<{ before: Mem; after: Mem; keys: number }>(['memory', db, String(n)], ['--expose-gc']);
      if (n === 0) emptyRss = r.after.rss;
      state.push({ keys: r.keys, cborBytes: snapshotBytes, rss: r.after.rss, heapUsed: r.after.heapUsed, rssBeforeStart: r.before.rss, rssOverStateBytes: n ? r.after.rss / snapshotBytes : 0, addedRssOverStateBytes: n ? (r.after.rss - emptyRss) / snapshotBytes : 0 });
    } finally {
      removeDir(dir);
    }
  }

  const overload: { perTick: number; submitted: number; accepted: number; rejected: number; otherErrors: number; maxDepth: number; capacity: number; baseRss: number; maxRss: number; growth: number; maxHeap: number; seconds: number; turns: number }[] = [];
  for (const perTick of [1_000, 4_000, 16_000]) {
    log(`memory: overload ${fmt(perTick)} calls per tick`);
    const dir = scratch(`overload-${perTick}`);
    try {
      const db = join(dir, 'ssm.db');
      const r = await runChild<{ base: Mem; maxRss: number; maxHeap: number; accepted: number; rejected: number; otherErrors: number; maxDepth: number; capacity: number; submitted: number; seconds: number; turns: number }>(['overload', db, String(profile.seconds), String(perTick)], ['--expose-gc']);
      overload.push({ perTick, submitted: r.submitted, accepted: r.accepted, rejected: r.rejected, otherErrors: r.otherErrors, maxDepth: r.maxDepth, capacity: r.capacity, baseRss: r.base.rss, maxRss: r.maxRss, growth: r.maxRss - r.base.rss, maxHeap: r.maxHeap, seconds: r.seconds, turns: r.turns });
    } finally {
      removeDir(dir);
    }
  }
  const bounded = overload.every((o) => o.maxDepth <= o.capacity);
  printTable(
    'memory: RSS of a fresh process after recovering the kv state (after GC), durability full',
    [
      ['state keys', 'state CBOR MB', 'RSS MB', 'heap used MB', 'RSS / state bytes', '(RSS - empty RSS) / state bytes'],
      ...state.map((s) => [fmt(s.keys), fmt(s.cborBytes / MB, 1), fmt(s.rss / MB, 0), fmt(s.heapUsed / MB, 0), s.keys ? fmt(s.rssOverStateBytes, 1) : '-', s.keys ? fmt(s.addedRssOverStateBytes, 1) : '-']),
    ],
    ['state CBOR = the snapshot blob the engine writes for that state (1 key ~ 48 bytes: key k<i>, value {n, tag} ~40 bytes).'],
  );
  printTable(
    `memory: open-loop burst far above queue capacity (1024), ${profile.seconds}s, calls submitted per event-loop turn`,
    [
      ['calls/turn', 'turns', 'submitted', 'accepted', 'QueueFullError', 'other errors', 'max queue depth', 'base RSS MB', 'max RSS MB', 'growth MB'],
      ...overload.map((o) => [fmt(o.perTick), fmt(o.turns), fmt(o.submitted), fmt(o.accepted), fmt(o.rejected), o.otherErrors, fmt(o.maxDepth), fmt(o.baseRss / MB, 0), fmt(o.maxRss / MB, 0), fmt(o.growth / MB, 0)]),
    ],
    [
      `Queue depth stayed <= capacity in every row: ${bounded ? 'yes' : 'NO'}. RSS growth includes the caller's own garbage (a promise and a rejected QueueFullError per refused call). turns = event-loop turns in the run (each also serves one batch).`,
    ],
  );
  const data = { state, overload, queueBounded: bounded };
  writeResult('memory', profile, data);
  return data;
}
