/**
 * SVG charts drawn from bench/results/*.json with hand-written SVG (no browser, no dependency).
 * Run alone with `node --import tsx bench/charts.ts`.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RESULTS_DIR } from './lib/common.js';

interface Series {
  name: string;
  points: [number, number][];
  dashed?: boolean;
}

interface ChartSpec {
  title: string;
  subtitle: string;
  xLabel: string;
  yLabel: string;
  logX: boolean;
  logY: boolean;
  series: Series[];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#17becf', '#bcbd22'];
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceNum(x: number): string {
  if (x >= 1e6) return `${+(x / 1e6).toFixed(1)}M`;
  if (x >= 1e3) return `${+(x / 1e3).toFixed(1)}k`;
  return `${+x.toFixed(x < 10 ? 2 : 0)}`;
}

function ticks(min: number, max: number, log: boolean): number[] {
  if (log) {
    const out: number[] = [];
    for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) out.push(10 ** e);
    return out;
  }
  const step = 10 ** Math.floor(Math.log10((max - min) / 5 || 1));
  const n = Math.ceil((max - min) / step);
  const s = n > 10 ? step * (n > 25 ? 5 : 2) : step;
  const out: number[] = [];
  for (let v = Math.floor(min / s) * s; v <= max + s * 0.01; v += s) out.push(v);
  return out;
}

/** A line chart with optional log axes; constant series (baselines) are drawn across the plot. */
export function lineChart(spec: ChartSpec): string {
  const W = 760;
  const H = 460;
  const m = { l: 80, r: 230, t: 56, b: 56 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const all = spec.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!spec.logY || y > 0));
  if (all.length === 0) return '';
  // A baseline (one dashed point, drawn across) says nothing about where the data lies on x.
  const data = spec.series.filter((s) => !(s.dashed && s.points.length === 1)).flatMap((s) => s.points).filter(([x]) => Number.isFinite(x) && (!spec.logX || x > 0));
  const xs = (data.length > 0 ? data : all).map((p) => p[0]);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (spec.logY) {
    y0 = 10 ** Math.floor(Math.log10(y0));
    y1 = 10 ** Math.ceil(Math.log10(y1));
  } else {
    y0 = 0;
    y1 = y1 * 1.1;
  }
  if (spec.logX) {
    x0 = x0 / 1.5;
    x1 = x1 * 1.5;
  }
  const fx = (x: number): number => m.l + (spec.logX ? (Math.log10(x) - Math.log10(x0)) / (Math.log10(x1) - Math.log10(x0)) : (x - x0) / (x1 - x0 || 1)) * pw;
  const fy = (y: number): number => m.t + ph - (spec.logY ? (Math.log10(y) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0)) : (y - y0) / (y1 - y0 || 1)) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${m.l}" y="22" font-size="16" font-weight="bold">${esc(spec.title)}</text>`);
  out.push(`<text x="${m.l}" y="40" fill="#555">${esc(spec.subtitle)}</text>`);
  for (const t of ticks(y0, y1, spec.logY)) {
    if (t < y0 || t > y1) continue;
    out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${fy(t).toFixed(1)}" y2="${fy(t).toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.l - 6}" y="${(fy(t) + 4).toFixed(1)}" text-anchor="end">${niceNum(t)}</text>`);
  }
  const xt = spec.logX ? [...new Set(xs.filter((x) => x > 0))].sort((a, b) => a - b) : ticks(x0, x1, false);
  for (const t of xt) {
    out.push(`<line x1="${fx(t).toFixed(1)}" x2="${fx(t).toFixed(1)}" y1="${m.t}" y2="${m.t + ph}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${fx(t).toFixed(1)}" y="${m.t + ph + 18}" text-anchor="middle">${niceNum(t)}</text>`);
  }
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${m.l + pw / 2}" y="${H - 14}" text-anchor="middle">${esc(spec.xLabel)}</text>`);
  out.push(`<text transform="translate(18 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(spec.yLabel)}</text>`);
  let ly = m.t + 10;
  spec.series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length]!;
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!spec.logY || y > 0));
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    if (pts.length === 1 && s.dashed) {
      const y = fy(pts[0]![1]).toFixed(1);
      out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y}" y2="${y}" stroke="${c}" stroke-width="1.5"${dash}/>`);
    } else if (pts.length > 0) {
      out.push(`<polyline fill="none" stroke="${c}" stroke-width="2"${dash} points="${pts.map(([x, y]) => `${fx(x).toFixed(1)},${fy(y).toFixed(1)}`).join(' ')}"/>`);
      for (const [x, y] of pts) out.push(`<circle cx="${fx(x).toFixed(1)}" cy="${fy(y).toFixed(1)}" r="3.5" fill="${c}"/>`);
    }
    const lines = wrap(s.name, LEGEND_CHARS);
    out.push(`<line x1="${m.l + pw + 14}" x2="${m.l + pw + 40}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${m.l + pw + 46}" y="${ly + 4}">${lines.map((l, k) => `<tspan x="${m.l + pw + 46}" dy="${k === 0 ? 0 : 14}">${esc(l)}</tspan>`).join('')}</text>`);
    ly += 6 + 14 * lines.length;
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Characters of a legend line that fit beside the plot (12 px sans-serif in m.r). */
const LEGEND_CHARS = 26;

/** Splits a legend label into lines of at most `width` characters, at spaces. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return line ? [...lines, line] : lines;
}

/** Grouped bars: one group per category, one bar per series (linear y from 0), values labelled. */
export function barChart(spec: { title: string; subtitle: string; yLabel: string; categories: string[]; series: { name: string; values: number[] }[]; notes?: string[] }): string {
  const W = 760;
  const H = 460;
  const m = { l: 80, r: 180, t: 56, b: 72 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const max = Math.max(...spec.series.flatMap((s) => s.values).filter(Number.isFinite), 0);
  if (!(max > 0)) return '';
  const yt = ticks(0, max * 1.1, false);
  const top = yt[yt.length - 1]!;
  const y = (v: number): number => m.t + ph - (v / top) * ph;
  const group = pw / spec.categories.length;
  const bw = (group * 0.7) / spec.series.length;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.l}" y="22" font-size="15" font-weight="bold">${esc(spec.title)}</text>`,
    `<text x="${m.l}" y="40" fill="#555">${esc(spec.subtitle)}</text>`,
  ];
  for (const t of yt) out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/>`, `<text x="${m.l - 6}" y="${y(t) + 4}" text-anchor="end">${niceNum(t)}</text>`);
  spec.categories.forEach((c, i) => {
    const x0 = m.l + i * group + group * 0.15;
    spec.series.forEach((s, k) => {
      const v = s.values[i]!;
      if (!Number.isFinite(v)) return;
      const x = x0 + k * bw;
      out.push(`<rect x="${x}" y="${y(v)}" width="${bw - 2}" height="${m.t + ph - y(v)}" fill="${COLORS[k % COLORS.length]}"/>`, `<text x="${x + bw / 2}" y="${y(v) - 4}" text-anchor="middle" font-size="10">${niceNum(v)}</text>`);
    });
    out.push(`<text x="${m.l + i * group + group / 2}" y="${m.t + ph + 18}" text-anchor="middle">${esc(c)}</text>`);
    if (spec.notes?.[i]) out.push(`<text x="${m.l + i * group + group / 2}" y="${m.t + ph + 34}" text-anchor="middle" fill="#555">${esc(spec.notes[i]!)}</text>`);
  });
  out.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${m.t + ph}" stroke="#333"/>`, `<line x1="${m.l}" x2="${m.l + pw}" y1="${m.t + ph}" y2="${m.t + ph}" stroke="#333"/>`);
  out.push(`<text transform="translate(18 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(spec.yLabel)}</text>`);
  spec.series.forEach((s, k) => out.push(`<rect x="${m.l + pw + 16}" y="${m.t + k * 20}" width="12" height="12" fill="${COLORS[k % COLORS.length]}"/>`, `<text x="${m.l + pw + 34}" y="${m.t + k * 20 + 10}">${esc(s.name)}</text>`));
  out.push('</svg>');
  return out.join('\n');
}

function readJson(name: string): Record<string, any> | null {
  const f = join(RESULTS_DIR, `${name}.json`);
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as Record<string, any>) : null;
}

/** Redraws every chart whose JSON exists; returns the files written. */
export function renderCharts(): string[] {
  const written: string[] = [];
  const put = (file: string, svg: string): void => {
    if (!svg) return;
    const p = join(RESULTS_DIR, file);
    writeFileSync(p, svg);
    written.push(p);
  };
  const writes = readJson('writes');
  const http = readJson('http');
  if (writes) {
    const rows = writes['rows'] as any[];
    const series: Series[] = [];
    for (const d of ['full', 'normal']) {
      series.push({ name: `ssm app.call (${d})`, points: rows.filter((r) => r.system === 'ssm (app.call)' && r.durability === d).map((r) => [r.concurrency, r.opsPerSec]) });
    }
    if (http) {
      for (const d of ['full', 'normal']) series.push({ name: `ssm over HTTP (${d})`, points: (http['rows'] as any[]).filter((r) => r.durability === d).map((r) => [r.concurrency, r.opsPerSec]) });
    }
    const base = (label: string, pred: (r: any) => boolean): void => {
      const rs = rows.filter(pred);
      if (rs.length) series.push({ name: label, dashed: true, points: [[1, rs.reduce((s, r) => s + r.opsPerSec, 0) / rs.length]] });
    };
    base('sqlite FULL 1/commit', (r) => r.system === 'better-sqlite3 raw' && r.durability === 'full' && r.variant === '1 insert/commit');
    base('sqlite FULL 256/commit', (r) => r.system === 'better-sqlite3 raw' && r.durability === 'full' && r.variant === '256 inserts/commit');
    base('sqlite NORMAL 256/commit', (r) => r.system === 'better-sqlite3 raw' && r.durability === 'normal' && r.variant === '256 inserts/commit');
    base('lmdb concurrent+flushed', (r) => r.system === 'lmdb' && r.latencyOf === 'none');
    base('classic-level batch 256', (r) => r.system === 'classic-level' && r.latencyOf === 'batch');
    base('classic-level put sync', (r) => r.system === 'classic-level' && r.latencyOf === 'request');
    put('throughput.svg', lineChart({
      title: 'Durable kv writes: throughput vs concurrency',
      subtitle: `${writes['date']?.slice(0, 10)}, ${writes['machine']?.cpus} cores, ${writes['machine']?.node}; dashed = peers (no concurrency axis)`,
      xLabel: 'concurrent callers / HTTP clients', yLabel: 'writes per second (log)', logX: true, logY: true, series,
    }));
  }
  const rec = readJson('recovery');
  if (rec) {
    const rows = rec['rows'] as any[];
    const logRows = rows.filter((r) => r.series === 'log');
    const stateRows = rows.filter((r) => r.series === 'state');
    put('recovery-log.svg', lineChart({
      title: 'Recovery time vs log length (no snapshot)',
      subtitle: `${rec['date']?.slice(0, 10)}; startApplication() until ready, fresh process`,
      xLabel: 'logged requests after the last snapshot', yLabel: 'ms (log)', logX: true, logY: true,
      series: [
        { name: 'total', points: logRows.map((r) => [r.logRequests, r.totalMs]) },
        { name: 'replay', points: logRows.map((r) => [r.logRequests, r.replayMs]) },
      ],
    }));
    put('recovery-state.svg', lineChart({
      title: 'Recovery time vs state size (snapshot, empty log)',
      subtitle: `${rec['date']?.slice(0, 10)}; startApplication() until ready, fresh process`,
      xLabel: 'keys in the snapshot', yLabel: 'ms (log)', logX: true, logY: true,
      series: [
        { name: 'total', points: stateRows.map((r) => [r.stateKeys, r.totalMs]) },
        { name: 'snapshot load', points: stateRows.map((r) => [r.stateKeys, r.loadMs]) },
        { name: 'target 1.5 s (1M keys + 100k log)', dashed: true, points: [[1, 1500]] },
      ],
    }));
  }
  const resp = readJson('resp');
  if (resp && Array.isArray(resp['rows'])) {
    const rows = resp['rows'] as any[];
    put('resp.svg', barChart({
      title: 'Redis protocol: redis-benchmark -c 50 -d 40 -r 1000000',
      subtitle: `${resp['date']?.slice(0, 10)}; ssm serve --resp-port (durability full) vs redis-server (appendfsync always), same run`,
      yLabel: 'requests per second', categories: rows.map((r) => r.case),
      series: [{ name: 'ssm', values: rows.map((r) => r.ssm) }, { name: 'redis (always)', values: rows.map((r) => r.redis) }],
      notes: rows.map((r) => `ssm/redis ${(r.ratio as number).toFixed(2)}x`),
    }));
  }
  return written;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) for (const f of renderCharts()) console.log(f);
