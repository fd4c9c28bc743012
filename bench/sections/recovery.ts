/**
 * Section 3: recovery time (startApplication until ready, in a fresh process) as the log grows and
 * as the state grows, split into snapshot load / migrate / replay from the 'started' event's
 * recovery report; and how snapshotEvery trades write throughput against recovery time.
 */
import { join } from 'node:path';
import type { RecoveryReport } from '../../src/storage/reports.js';
import { fmt, fmtMs, log, printTable, removeDir, scratch, writeResult, type Profile } from '../lib/common.js';
import { buildDb } from '../lib/kv.js';
import { runChild } from '../lib/spawn.js';

export interface RecoveryRow {
  series: 'log' | 'state' | 'target';
  stateKeys: number;
  logRequests: number;
  snapshotBytes: number;
  logBytes: number;
  runs: number;
  /** Median over runs, ms: startApplication() until resolved. */
  totalMs: number;
  loadMs: number;
  migrateMs: number;
  replayMs: number;
  replayed: number;
  replayPerSec: number | null;
  allTotalMs: number[];
}

async function measure(series: RecoveryRow['series'], stateKeys: number, logRequests: number, runs: number): Promise<RecoveryRow> {
  const dir = scratch(`recovery-${stateKeys}-${logRequests}`);
  try {
    const db = join(dir, 'ssm.db');
    const built = buildDb(db, stateKeys, logRequests);
    const res: { ms: number; report: RecoveryReport }[] = [];
    for (let r = 0; r < runs; r++) res.push(await runChild<{ ms: number; report: RecoveryReport }>(['recover', db]));
    // The median run by total time, so its split adds up.
    const sorted = [...res].sort((a, b) => a.ms - b.ms);
    const mid = sorted[Math.floor((sorted.length - 1) / 2)]!;
    if (mid.report.replayed !== logRequests) throw new Error(`expected ${logRequests} replayed, report says ${mid.report.replayed}`);
    return {
      series, stateKeys, logRequests, ...built, runs,
      totalMs: mid.ms, loadMs: mid.report.ms.load, migrateMs: mid.report.ms.migrate, replayMs: mid.report.ms.replay,
      replayed: mid.report.replayed, replayPerSec: mid.report.replayed > 0 ? mid.report.replayed / (mid.report.ms.replay / 1000) : null,
      allTotalMs: res.map((x) => x.ms),
    };
  } finally {
    removeDir(dir);
  }
}

interface TradeoffRow {
  every: number;
  /** The policy's maxTimeShare (0.1 is the default; 1 turns the throttle off). */
  maxTimeShare: number;
  opsPerSec: number;
  ops: number;
  snapshots: number;
  recoveryMs: number;
  replayed: number;
  loadMs: number;
  replayMs: number;
}

/** Write load at 256 callers over a fixed 100k-key space for `seconds`, abrupt exit, then recovery. */
async function tradeoff(every: number, maxTimeShare: number, seconds: number): Promise<TradeoffRow> {
  const dir = scratch(`tradeoff-${every}-${maxTimeShare}`);
  try {
    const db = join(dir, 'ssm.db');
    buildDb(db, 100_000, 0);
    const load = await runChild<{ ops: number; opsPerSec: number; snapshots: number }>(['load', db, String(seconds), '256', String(every), '100000', String(maxTimeShare)]);
    const rec = await runChild<{ ms: number; report: RecoveryReport }>(['recover', db]);
    return { every, maxTimeShare, opsPerSec: load.opsPerSec, ops: load.ops, snapshots: load.snapshots, recoveryMs: rec.ms, replayed: rec.report.replayed, loadMs: rec.report.ms.load, replayMs: rec.report.ms.replay };
  } finally {
    removeDir(dir);
  }
}

export async function runRecovery(profile: Profile): Promise<Record<string, unknown>> {
  const runs = profile.full ? 3 : 1;
  const rows: RecoveryRow[] = [];
  const logSizes = [10_000, 100_000, 1_000_000];
  const stateSizes = [10_000, 100_000, 1_000_000];
  for (const n of logSizes) {
    log(`recovery: log ${fmt(n)} requests, no snapshot`);
    rows.push(await measure('log', 0, n, runs));
  }
  for (const n of stateSizes) {
    log(`recovery: state ${fmt(n)} keys from snapshot, empty log`);
    rows.push(await measure('state', n, 0, runs));
  }
  log('recovery: target 1M keys + 100k logged requests');
  rows.push(await measure('target', 1_000_000, 100_000, 3));
  const target = rows.find((r) => r.series === 'target')!;
  // "Replay alone": the replay machinery by itself, on 100k logged requests with no snapshot to load.
  const alone = rows.find((r) => r.series === 'log' && r.logRequests === 100_000)!;
  const targets = {
    recovery1MKeysPlus100k: { valueMs: target.totalMs, target: '< 1500 ms', met: target.totalMs < 1500 },
    replayRate: { value: alone.replayPerSec, target: '>= 500,000 requests/s (replay alone: 100k logged requests, no snapshot)', met: (alone.replayPerSec ?? 0) >= 500_000 },
    replayRateInTargetRow: { value: target.replayPerSec, note: 'replay phase of the 1M-key recovery: includes the major GC the 1M-key load triggers and the growth of every shard past a power of two' },
  };

  const trade: TradeoffRow[] = [];
  for (const [e, share] of [[1_000, 0.1], [1_000, 1], [10_000, 0.1], [100_000, 0.1], [100_000, 1], [0, 0.1]] as const) {
    log(`recovery: snapshotEvery ${e || 'off'}, maxTimeShare ${share}`);
    trade.push(await tradeoff(e, share, profile.seconds));
  }

  printTable(
    'recovery: startApplication() until ready, fresh process, durability full',
    [
      ['series', 'state keys', 'logged requests', 'snapshot MB', 'log MB', 'runs', 'total ms', 'load ms', 'migrate ms', 'replay ms', 'replay req/s'],
      ...rows.map((r) => [r.series, fmt(r.stateKeys), fmt(r.logRequests), fmt(r.snapshotBytes / 1e6, 1), fmt(r.logBytes / 1e6, 1), r.runs, fmtMs(r.totalMs), fmtMs(r.loadMs), fmtMs(r.migrateMs), fmtMs(r.replayMs), fmt(r.replayPerSec)]),
    ],
    [
      'Databases built directly with the engine\'s Store.writeSnapshot/appendBatch (exact engine format: 512 requests per request_log row, one transaction), not by running the app.',
      'load = snapshot read + sha256 + CBOR decode; replay = reading log rows + decodeMultiple + step. total includes opening the db, migrations check, lock. Median of `runs` fresh processes (page cache warm).',
      `Targets: 1M keys + 100k logged < 1500 ms: ${fmtMs(target.totalMs)} ms (${targets.recovery1MKeysPlus100k.met ? 'met' : 'MISSED'}); replay alone >= 500k req/s: ${fmt(alone.replayPerSec)} req/s on 100k logged requests (${targets.replayRate.met ? 'met' : 'MISSED'}); within the 1M-key recovery the replay phase ran at ${fmt(target.replayPerSec)} req/s (it also pays the major GC the load triggers, and every shard growing past a power of two).`,
    ],
  );
  printTable(
    `recovery: snapshotEvery vs write throughput vs recovery (256 callers, ${profile.seconds}s, 100k-key state overwritten, everyBytes off, abrupt exit)`,
    [
      ['snapshotEvery', 'maxTimeShare', 'writes/s', 'writes', 'snapshots', 'recovery ms', 'replayed', 'load ms', 'replay ms'],
      ...trade.map((t) => [t.every ? fmt(t.every) : 'off', t.every ? String(t.maxTimeShare) : '-', fmt(t.opsPerSec), fmt(t.ops), t.snapshots, fmtMs(t.recoveryMs), fmt(t.replayed), fmtMs(t.loadMs), fmtMs(t.replayMs)]),
    ],
  );
  const data = { rows, tradeoff: trade, targets, medianOf: runs };
  writeResult('recovery', profile, data);
  return data;
}
