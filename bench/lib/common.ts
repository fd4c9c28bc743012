/**
 * Shared helpers for the benchmark suite: profile, timing, statistics, tables, JSON results.
 * Everything here is measurement plumbing; nothing touches the engine's internals.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
export const ROOT_DIR = dirname(BENCH_DIR);
export const RESULTS_DIR = join(BENCH_DIR, 'results');
export const TMP_DIR = join(RESULTS_DIR, 'tmp');

export interface Profile {
  readonly full: boolean;
  /** Seconds each throughput measurement runs. */
  readonly seconds: number;
  readonly rounds: number;
}

/** A fresh scratch directory under bench/results/tmp (git-ignored). */
export function scratch(name: string): string {
  const dir = join(TMP_DIR, `${name}-${process.pid}-${Date.now().toString(36)}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export const now = (): number => performance.now();

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Percentile of an ascending-sorted array (nearest rank). */
export function pct(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function median(xs: readonly number[]): number {
  return pct(Float64Array.from(xs).sort(), 50);
}

/** Latency samples (ms) -> summary; the array is sorted in place. */
export function latencySummary(samples: Float64Array | number[]): { p50: number; p99: number; mean: number; n: number } {
  const a = samples instanceof Float64Array ? samples.sort() : Float64Array.from(samples).sort();
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]!;
  return { p50: pct(a, 50), p99: pct(a, 99), mean: a.length ? sum / a.length : Number.NaN, n: a.length };
}

/** A growable Float64 sample buffer (latencies in ms) without per-sample allocation. */
export class Samples {
  private buf = new Float64Array(1 << 14);
  length = 0;
  push(x: number): void {
    if (this.length === this.buf.length) {
      const b = new Float64Array(this.buf.length * 2);
      b.set(this.buf);
      this.buf = b;
    }
    this.buf[this.length++] = x;
  }
  array(): Float64Array {
    return this.buf.subarray(0, this.length);
  }
}

export function fmt(x: number | null | undefined, digits = 0): string {
  if (x === null || x === undefined || Number.isNaN(x)) return '-';
  if (!Number.isFinite(x)) return String(x);
  return x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export const fmtMs = (x: number | null | undefined): string => fmt(x, x !== null && x !== undefined && Math.abs(x) < 10 ? 2 : 1);

/** Prints an aligned text table (first row = header). */
export function printTable(title: string, rows: (string | number)[][], notes: string[] = []): void {
  const cells = rows.map((r) => r.map((c) => String(c)));
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const out = [`\n== ${title}`, line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line), ...notes.map((n) => `   ${n}`)];
  process.stdout.write(out.join('\n') + '\n');
}

export function machineInfo(): Record<string, unknown> {
  const c = cpus();
  return { node: process.version, cpus: c.length, cpuModel: c[0]?.model ?? '?', memGB: Math.round(totalmem() / 2 ** 30), platform: process.platform, loadavg1m: Number(loadavg()[0]!.toFixed(2)) };
}

/** Writes bench/results/<section>.json. */
export function writeResult(section: string, profile: Profile, data: Record<string, unknown>): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${section}.json`);
  const doc = { section, date: new Date().toISOString(), profile: profile.full ? 'full' : 'quick', machine: machineInfo(), ...data };
  writeFileSync(file, JSON.stringify(doc, null, 2) + '\n');
  return file;
}

/** A ~40-byte CBOR value, different per i. */
export function valueFor(i: number): { n: number; tag: string } {
  return { n: i, tag: `value-${String(i).padStart(9, '0')}-abcdefgh` };
}

export function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}
