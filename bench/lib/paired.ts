/**
 * Paired measurement: two variants of one load, run alternately in one process so that drift in
 * the machine (disk, page cache, thermal) does not favour either; the ratio is the median of the
 * per-pair ratios.
 */
import { join } from 'node:path';
import type { ApplicationOptions, CallOptions } from '../../src/index.js';
import { fmt, log, median, now, removeDir, scratch } from './common.js';
import { MACHINE, startKv, storeInput } from './kv.js';

export interface PairedResult {
  readonly pairs: readonly { readonly a: number; readonly b: number }[];
  readonly a: number;
  readonly b: number;
  /** Median of a/b over the pairs. */
  readonly ratio: number;
}

/** Runs `a` and `b` `pairs` times each, alternating which goes first. */
export async function alternatingPairs(label: string, pairs: number, a: () => Promise<number>, b: () => Promise<number>): Promise<PairedResult> {
  const got: { a: number; b: number }[] = [];
  for (let p = 0; p < pairs; p++) {
    const r: { a?: number; b?: number } = {};
    if (p % 2 === 0) {
      r.a = await a();
      r.b = await b();
    } else {
      r.b = await b();
      r.a = await a();
    }
    got.push({ a: r.a, b: r.b });
    log(`${label} pair ${p + 1}: ${fmt(r.a)}/s vs ${fmt(r.b)}/s`);
  }
  return { pairs: got, a: median(got.map((p) => p.a)), b: median(got.map((p) => p.b)), ratio: median(got.map((p) => p.a / p.b)) };
}

/**
 * Durable KV writes (a new key each) from `callers` concurrent callers on a fresh database for
 * `seconds` after a 300 ms warm-up; `callOptions(i)` gives the options of write i. Writes/s.
 */
export async function kvWriteLoad(name: string, appOptions: ApplicationOptions, callers: number, seconds: number, callOptions: (i: number) => CallOptions = () => ({})): Promise<number> {
  const dir = scratch(name);
  const { app } = await startKv(join(dir, 'ssm.db'), appOptions);
  let next = 0;
  let ops = 0;
  const warmEnd = now() + 300;
  await Promise.all(Array.from({ length: callers }, async () => {
    while (now() < warmEnd) {
      const i = next++;
      await app.call(MACHINE, storeInput(i), callOptions(i));
    }
  }));
  const t0 = now();
  const end = t0 + seconds * 1000;
  await Promise.all(Array.from({ length: callers }, async () => {
    while (now() < end) {
      const i = next++;
      await app.call(MACHINE, storeInput(i), callOptions(i));
      ops++;
    }
  }));
  const opsPerSec = ops / ((now() - t0) / 1000);
  await app.stop();
  removeDir(dir);
  return opsPerSec;
}
