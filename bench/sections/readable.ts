/**
 * Section: what the readable tables cost (issue 14.1). Durable KV writes at 256 callers with the
 * readable tables (kv_entries rows and request JSON, in every commit) against the same load
 * without them, in alternating pairs in one run; then recovery of the same store with and
 * without them (recovery never reads them, so it must not change).
 */
import { join } from 'node:path';
import { fmt, fmtMs, log, median, now, printTable, removeDir, scratch, writeResult, type Profile } from '../lib/common.js';
import { MACHINE, startKv, storeInput } from '../lib/kv.js';

const CALLERS = 256;
const PAIRS = 3;
const RECOVERY_KEYS = 200_000;

async function writes(readable: boolean, seconds: number): Promise<{ opsPerSec: number; dir: string; db: string }> {
  const dir = scratch(`readable-${readable}`);
  const db = join(dir, 'ssm.db');
  const { app } = await startKv(db, { readable });
  let next = 0;
  let ops = 0;
  const warmEnd = now() + 300;
  await Promise.all(Array.from({ length: CALLERS }, async () => {
    while (now() < warmEnd) await app.call(MACHINE, storeInput(next++));
  }));
  const t0 = now();
  const end = t0 + seconds * 1000;
  await Promise.all(Array.from({ length: CALLERS }, async () => {
    while (now() < end) {
      await app.call(MACHINE, storeInput(next++));
      ops++;
    }
  }));
  const opsPerSec = ops / ((now() - t0) / 1000);
  await app.stop();
  return { opsPerSec, dir, db };
}

async function recovery(readable: boolean): Promise<number> {
  const dir = scratch(`readable-recovery-${readable}`);
  const db = join(dir, 'ssm.db');
  const { app } = await startKv(db, { readable, snapshot: { every: 0, everyBytes: 0, maxTimeShare: 1 } });
  const batch = 1000;
  for (let i = 0; i < RECOVERY_KEYS; i += batch) await Promise.all(Array.from({ length: batch }, (_, j) => app.call(MACHINE, storeInput(i + j))));
  await app.checkpoint();
  for (let i = 0; i < 20_000; i += batch) await Promise.all(Array.from({ length: batch }, (_, j) => app.call(MACHINE, storeInput(i + j, 'r'))));
  await app.stop();
  const { app: again, ms } = await startKv(db, { readable });
  await again.stop();
  removeDir(dir);
  return ms;
}

export async function runReadable(profile: Profile): Promise<Record<string, unknown>> {
  const pairs: { on: number; off: number }[] = [];
  for (let p = 0; p < PAIRS; p++) {
    // Alternate which goes first, so drift in the machine's state does not favour one.
    const order = p % 2 === 0 ? [true, false] : [false, true];
    const got: Record<string, number> = {};
    for (const readable of order) {
      const r = await writes(readable, profile.seconds);
      removeDir(r.dir);
      got[String(readable)] = r.opsPerSec;
    }
    pairs.push({ on: got['true']!, off: got['false']! });
    log(`readable pair ${p + 1}: on ${fmt(got['true']!)}/s, off ${fmt(got['false']!)}/s`);
  }
  const on = median(pairs.map((p) => p.on));
  const off = median(pairs.map((p) => p.off));
  const ratio = median(pairs.map((p) => p.on / p.off));
  const recOn = await recovery(true);
  const recOff = await recovery(false);
  printTable(
    `readable tables: durable writes at ${CALLERS} callers (median of ${PAIRS} alternating pairs) and recovery`,
    [
      ['case', 'readable on', 'readable off', 'ratio on/off', 'target'],
      ['writes/s', fmt(on), fmt(off), ratio.toFixed(2), '>= 0.85'],
      [`recovery (${fmt(RECOVERY_KEYS)} keys + 20k logged)`, fmtMs(recOn), fmtMs(recOff), (recOn / recOff).toFixed(2), '~1 (within noise)'],
    ],
    ['on: every commit also writes kv_entries rows and the request JSON; recovery reads neither'],
  );
  writeResult('readable', profile, { callers: CALLERS, pairs, writes: { on, off, ratio }, recoveryMs: { on: recOn, off: recOff } });
  return { ratio, recoveryRatio: recOn / recOff };
}
