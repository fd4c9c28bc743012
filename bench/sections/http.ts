/**
 * Section 2: the same kv writes over HTTP keep-alive against `ssm serve` (child process),
 * concurrent clients from this process with a bounded loop on node:http Agent keepAlive.
 */
import { join } from 'node:path';
import { Samples, fmt, fmtMs, latencySummary, log, now, printTable, removeDir, scratch, valueFor, writeResult, type Profile } from '../lib/common.js';
import { agent, callHttp, startServer, stopServer } from '../lib/server.js';
import { CONCURRENCY } from './writes.js';

interface HttpRow {
  durability: 'full' | 'normal';
  concurrency: number;
  ops: number;
  errors: number;
  seconds: number;
  opsPerSec: number;
  p50: number;
  p99: number;
  mean: number;
}

async function httpRun(durability: 'full' | 'normal', c: number, seconds: number): Promise<HttpRow> {
  const dir = scratch(`http-${durability}-${c}`);
  const server = await startServer(join(dir, 'ssm.db'), ['--durability', durability]);
  const ag = agent(c);
  try {
    let next = 0;
    let errors = 0;
    const one = async (): Promise<boolean> => {
      const i = next++;
      const r = await callHttp(server.url, ag, 'kv1', { op: 'store', key: `k${i}`, value: valueFor(i) });
      if (r.status !== 200) errors++;
      return r.status === 200;
    };
    const warmEnd = now() + 500;
    await Promise.all(Array.from({ length: c }, async () => { while (now() < warmEnd) await one(); }));
    errors = 0;
    const lat = new Samples();
    let ops = 0;
    const t0 = now();
    const end = t0 + seconds * 1000;
    await Promise.all(Array.from({ length: c }, async () => {
      while (now() < end) {
        const s = now();
        if (await one()) {
          lat.push(now() - s);
          ops++;
        }
      }
    }));
    const el = (now() - t0) / 1000;
    const l = latencySummary(lat.array());
    return { durability, concurrency: c, ops, errors, seconds: el, opsPerSec: ops / el, p50: l.p50, p99: l.p99, mean: l.mean };
  } finally {
    ag.destroy();
    await stopServer(server);
    removeDir(dir);
  }
}

export async function runHttp(profile: Profile): Promise<Record<string, unknown>> {
  const rows: HttpRow[] = [];
  for (const d of ['full', 'normal'] as const) {
    for (const c of CONCURRENCY) {
      log(`http: ${d} c=${c}`);
      rows.push(await httpRun(d, c, profile.seconds));
    }
  }
  printTable(
    `http: kv store over HTTP/1.1 keep-alive, POST /v1/machines/kv1/call (CBOR), ${profile.seconds}s per row`,
    [
      ['durability', 'clients', 'ok writes', 'non-200', 'writes/s', 'p50 ms', 'p99 ms', 'mean ms'],
      ...rows.map((r) => [r.durability, r.concurrency, fmt(r.ops), r.errors, fmt(r.opsPerSec), fmtMs(r.p50), fmtMs(r.p99), fmtMs(r.mean)]),
    ],
    [
      'Server: `ssm serve` (demo tree, default options) in a child process; client: this process, one node:http Agent (keepAlive, maxSockets = clients), closed loop.',
      'Client and server share the 2 cores; compare with the writes section (in-process app.call) for the cost of the endpoint.',
    ],
  );
  const data = { secondsPerRow: profile.seconds, rows };
  writeResult('http', profile, data);
  return data;
}
