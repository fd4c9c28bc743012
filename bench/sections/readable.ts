/**
 * Section: what the readable tables cost (issue 14.1). Durable KV writes at 256 callers with the
 * readable tables (kv_entries rows and request JSON, in every commit) against the same load
 * without them, in alternating pairs in one run; then recovery of the same store with and
 * without them (recovery never reads them, so it must not change).
 */
import { join } from 'node:path';
import { fmt, fmtMs, printTable, removeDir, scratch, writeResult, type Profile } from '../lib/common.js';
import { alternatingPairs, kvWriteLoad } from '../lib/paired.js';
import { MACHINE, startKv, storeInput } from '../lib/kv.js';

const CALLERS = 256;
const PAIRS = 3;
const RECOVERY_KEYS = 200_000;

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
  const w = await alternatingPairs('readable on vs off', PAIRS, () => kvWriteLoad('readable-on', { readable: true }, CALLERS, profile.seconds), () => kvWriteLoad('readable-off', { readable: false }, CALLERS, profile.seconds));
  const { a: on, b: off, ratio } = w;
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
  writeResult('readable', profile, { callers: CALLERS, pairs: w.pairs.map((p) => ({ on: p.a, off: p.b })), writes: { on, off, ratio }, recoveryMs: { on: recOn, off: recOff } });
  return { ratio, recoveryRatio: recOn / recOff };
}
