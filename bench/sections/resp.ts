/**
 * Section: the Redis protocol. `redis-benchmark` (the real client, 50 connections, 40-byte
 * values, random keys over 1M) against `ssm serve --resp-port` (durability full) and against
 * redis-server (`appendonly yes`, `appendfsync always`) started here in the same run, so both
 * share the machine's state; the ratio is ssm / Redis (issue 15's targets: SET ≥ 2x, SET -P 16
 * ≥ 1x, GET ≥ 0.5x).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fmt, log, printTable, removeDir, scratch, sleep, writeResult, type Profile } from '../lib/common.js';
import { ROOT_DIR } from '../lib/common.js';

interface Case {
  readonly name: string;
  readonly args: readonly string[];
}

const CASES: readonly Case[] = [
  { name: 'SET', args: ['-t', 'set'] },
  { name: 'SET -P 16', args: ['-t', 'set', '-P', '16'] },
  { name: 'GET', args: ['-t', 'get'] },
];

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

/** Requests per second of one redis-benchmark run (its --csv line). */
function benchmark(port: number, args: readonly string[], requests: number): number {
  const r = spawnSync('redis-benchmark', ['-p', String(port), '-c', '50', '-d', '40', '-r', '1000000', '-n', String(requests), '--csv', ...args], { encoding: 'utf8', timeout: 300_000 });
  const line = r.stdout.split('\n').find((l) => /^"(SET|GET)"/.test(l));
  if (!line) throw new Error(`redis-benchmark gave no result: ${r.stderr || r.stdout}`);
  return Number(JSON.parse(`[${line}]`)[1]);
}

function startSsm(db: string): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(process.execPath, [join(ROOT_DIR, 'bin/ssm.js'), 'serve', '--db', db, '--port', '0', '--resp-port', '0'], { cwd: ROOT_DIR, stdio: ['ignore', 'pipe', 'ignore'] });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /resp listening on redis:\/\/[^:]+:(\d+)/.exec(out);
      if (m) resolve({ proc, port: Number(m[1]) });
    });
    proc.once('exit', (code) => reject(new Error(`ssm serve exited (${code}) before listening`)));
  });
}

async function startRedis(dir: string): Promise<{ proc: ChildProcess; port: number }> {
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--dir', dir], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    if (spawnSync('redis-cli', ['-p', String(port), 'PING'], { encoding: 'utf8' }).stdout.trim() === 'PONG') return { proc, port };
    await sleep(50);
  }
  proc.kill('SIGKILL');
  throw new Error('redis-server did not start');
}

/** Back-to-back pairs per case; the table shows medians, the JSON every pair. */
const REPEATS = 3;

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export async function runResp(profile: Profile): Promise<Record<string, unknown>> {
  if (spawnSync('redis-server', ['--version']).status !== 0 || spawnSync('redis-benchmark', ['--version']).status !== 0) {
    log('resp: skipped (needs redis-server and redis-benchmark: apt-get install -y redis-server redis-tools)');
    return { skipped: true };
  }
  // About `seconds` per run at ssm's SET rate; pipelined and GET runs get more requests.
  const base = Math.max(5_000, profile.seconds * 20_000);
  const dir = scratch('resp');
  const ssm = await startSsm(join(dir, 'ssm.db'));
  const redis = await startRedis(dir);
  const rows: { case: string; ssm: number; redis: number; ratio: number; pairs: { ssm: number; redis: number; ratio: number }[] }[] = [];
  try {
    // Warm-up: the JIT and the page cache, so the first row is not the cold start.
    benchmark(ssm.port, ['-t', 'set'], base / 2);
    benchmark(redis.port, ['-t', 'set'], base / 2);
    const pairs = new Map<string, { ssm: number; redis: number; ratio: number }[]>(CASES.map((c) => [c.name, []]));
    // Round-robin over the cases, so a noisy stretch of the disk hits every case, not one.
    for (let rep = 0; rep < REPEATS; rep++) {
      for (const c of CASES) {
        const n = c.name === 'SET' ? base : base * 4;
        log(`resp: ${c.name} (pair ${rep + 1}/${REPEATS})`);
        // Alternate which system goes first within a pair.
        let s: number;
        let r: number;
        if (rep % 2 === 0) {
          s = benchmark(ssm.port, c.args, n);
          r = benchmark(redis.port, c.args, n);
        } else {
          r = benchmark(redis.port, c.args, n);
          s = benchmark(ssm.port, c.args, n);
        }
        pairs.get(c.name)!.push({ ssm: s, redis: r, ratio: s / r });
      }
    }
    for (const c of CASES) {
      const ps = pairs.get(c.name)!;
      rows.push({ case: c.name, ssm: median(ps.map((p) => p.ssm)), redis: median(ps.map((p) => p.redis)), ratio: median(ps.map((p) => p.ratio)), pairs: ps });
    }
  } finally {
    ssm.proc.kill('SIGTERM');
    redis.proc.kill('SIGTERM');
    await sleep(500);
    removeDir(dir);
  }
  const TARGET: Record<string, number> = { SET: 2, 'SET -P 16': 1, GET: 0.5 };
  printTable(
    `resp: redis-benchmark -c 50 -d 40 -r 1000000, ssm serve --resp-port (durability full) vs redis-server (appendfsync always); median of ${REPEATS} back-to-back pairs`,
    [
      ['command', 'ssm req/s', 'redis req/s', 'ssm / redis', 'pairs (ratio)', 'target'],
      ...rows.map((r) => [r.case, fmt(r.ssm), fmt(r.redis), fmt(r.ratio, 2), r.pairs.map((p) => fmt(p.ratio, 2)).join(' '), `>= ${TARGET[r.case]}x`]),
    ],
    ['Both servers and the client share the machine\'s cores; Redis is started by this section, in the same run.', 'Targets (issue 15): SET >= 2x, SET -P 16 >= 1x, GET >= 0.5x.'],
  );
  const data = { requestsPerSetRow: base, repeats: REPEATS, rows };
  writeResult('resp', profile, data);
  return data;
}
