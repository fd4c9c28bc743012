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

export async function runResp(profile: Profile): Promise<Record<string, unknown>> {
  if (spawnSync('redis-server', ['--version']).status !== 0 || spawnSync('redis-benchmark', ['--version']).status !== 0) {
    log('resp: skipped (needs redis-server and redis-benchmark: apt-get install -y redis-server redis-tools)');
    return { skipped: true };
  }
  // About `seconds` per run at ssm's SET rate; pipelined and GET runs get more requests.
  const base = Math.max(5_000, profile.seconds * 8_000);
  const dir = scratch('resp');
  const ssm = await startSsm(join(dir, 'ssm.db'));
  const redis = await startRedis(dir);
  const rows: { case: string; ssm: number; redis: number; ratio: number }[] = [];
  try {
    // Warm-up: the JIT and the page cache, so the first row is not the cold start.
    benchmark(ssm.port, ['-t', 'set'], base / 2);
    for (const c of CASES) {
      const n = c.name === 'SET' ? base : base * 4;
      log(`resp: ${c.name}`);
      const s = benchmark(ssm.port, c.args, n);
      const r = benchmark(redis.port, c.args, n);
      rows.push({ case: c.name, ssm: s, redis: r, ratio: s / r });
    }
  } finally {
    ssm.proc.kill('SIGTERM');
    redis.proc.kill('SIGTERM');
    await sleep(500);
    removeDir(dir);
  }
  printTable(
    'resp: redis-benchmark -c 50 -d 40 -r 1000000, ssm serve --resp-port (durability full) vs redis-server (appendfsync always)',
    [['command', 'ssm req/s', 'redis req/s', 'ssm / redis'], ...rows.map((r) => [r.case, fmt(r.ssm), fmt(r.redis), fmt(r.ratio, 2)])],
    ['Both servers and the client share the machine\'s cores; Redis is started by this section, in the same run.', 'Targets (issue 15): SET ≥ 2x, SET -P 16 ≥ 1x, GET ≥ 0.5x.'],
  );
  const data = { requestsPerSetRow: base, rows };
  writeResult('resp', profile, data);
  return data;
}
