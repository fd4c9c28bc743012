import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { decodeCbor, cbor } from '../src/encoding/cbor.js';
import { postJson, request, tempDir } from './fixtures/serve-helpers.js';
import { spawnServe } from './helpers/serve-process.js';

const ROOT = new URL('..', import.meta.url).pathname;

interface Served {
  child: ChildProcess;
  url: string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns `ssm serve --port 0 ARGS` and resolves once it prints its address. */
async function startServe(t: { teardown(fn: () => void): void }, args: string[], env: Record<string, string> = {}): Promise<Served> {
  const s = await spawnServe(t, ['--port', '0', ...args], /listening on (http:\/\/127\.0\.0\.1:(\d+))\n/, env);
  return { child: s.child, url: s.ready[1]!, stderr: s.stderr, exited: s.exited };
}

test('ssm serve: data survives SIGTERM; shutdown checkpoints every machine and exits 0', async (t) => {
  const db = join(tempDir(t), 'serve.db');
  const first = await startServe(t, ['--db', db]);
  t.not(Number(new URL(first.url).port), 7411);
  t.deepEqual((await request(first.url, '/v1/machines')).json().machines.map((m: { name: string }) => m.name), ['kv1', 'kv2', 'kv3']);
  const writes = [];
  for (let i = 0; i < 30; i++) writes.push(postJson(first.url, `/v1/machines/kv${(i % 3) + 1}/call`, { op: 'store', key: `k${i}`, value: { i } }));
  writes.push(request(first.url, '/v1/machines/kv2/call', { method: 'POST', headers: { 'content-type': 'application/cbor' }, body: cbor.encode({ op: 'store', key: 'big', value: 2n ** 90n }) }));
  t.true((await Promise.all(writes)).every((r) => r.status === 200));
  // The demo's deliberate crash is not in the served tree: a client cannot crash kv2 with it.
  for (let i = 0; i < 3; i++) {
    const crash = await postJson(first.url, '/v1/machines/kv2/call', { op: 'lookup', key: 'crash' });
    t.is(crash.status, 200);
    t.is(crash.json(), null);
  }
  t.is((await request(first.url, '/v1/machines')).json().machines.find((m: { name: string }) => m.name === 'kv2').restarts, 0);

  first.child.kill('SIGTERM');
  t.deepEqual(await first.exited, { code: 0, signal: null });
  t.regex(first.stderr(), /SIGTERM: closing the server/);
  t.regex(first.stderr(), /kv1 terminated \(stop\)/);
  t.regex(first.stderr(), /application stopped: normal/);

  const second = await startServe(t, ['--db', db]);
  // Every machine was snapshotted at shutdown: the restart replays nothing.
  t.regex(second.stderr(), /kv1 started \(recovered from snapshot @10 \+ 0 replayed, seq 10, [\d.]+ ms\)/);
  t.regex(second.stderr(), /kv2 started \(recovered from snapshot @11 \+ 0 replayed, seq 11, [\d.]+ ms\)/);
  const machines = (await request(second.url, '/v1/machines')).json().machines;
  for (const m of machines) t.is(m.snapshotSeq, m.seq, m.name);
  t.deepEqual(machines.map((m: { seq: number }) => m.seq), [10, 11, 10]);
  for (let i = 0; i < 30; i++) {
    const r = await postJson(second.url, `/v1/machines/kv${(i % 3) + 1}/call`, { op: 'lookup', key: `k${i}` });
    t.deepEqual(r.json(), { i });
  }
  const big = await request(second.url, '/v1/machines/kv2/call', { method: 'POST', headers: { 'content-type': 'application/cbor' }, body: cbor.encode({ op: 'lookup', key: 'big' }) });
  t.is(decodeCbor(big.body), 2n ** 90n);
  second.child.kill('SIGINT');
  t.deepEqual(await second.exited, { code: 0, signal: null });
});

test('ssm serve: token from SSM_TOKEN or --token; SIGINT exits 0', async (t) => {
  const db = join(tempDir(t), 'serve.db');
  const s = await startServe(t, ['--db', db, '--durability', 'normal'], { SSM_TOKEN: 'from-env' });
  t.is((await request(s.url, '/healthz')).status, 200);
  t.is((await request(s.url, '/v1/machines')).status, 401);
  t.is((await request(s.url, '/v1/machines', { headers: { authorization: 'Bearer from-env' } })).status, 200);
  s.child.kill('SIGINT');
  t.deepEqual(await s.exited, { code: 0, signal: null });

  const flag = await startServe(t, ['--db', db, '--token', 'from-flag'], { SSM_TOKEN: 'from-env' });
  t.is((await request(flag.url, '/v1/machines', { headers: { authorization: 'Bearer from-env' } })).status, 401);
  t.is((await request(flag.url, '/v1/machines', { headers: { authorization: 'Bearer from-flag' } })).status, 200);
  flag.child.kill('SIGTERM');
  t.deepEqual(await flag.exited, { code: 0, signal: null });
});

test('ssm serve: bad flags are one clear line and a non-zero exit; --help exits 0', async (t) => {
  const run = (args: string[]): Promise<{ code: number | null; out: string; err: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      child.on('exit', (code) => resolve({ code, out, err }));
    });
  const help = await run(['--help']);
  t.is(help.code, 0);
  t.regex(help.out, /^Usage: ssm serve/);
  const bad = await run(['--durability', 'sometimes']);
  t.not(bad.code, 0);
  t.regex(bad.err, /^ssm serve: --durability must be full or normal/);
  t.is(bad.err.trim().split('\n').length, 1);
  const port = await run(['--port', 'x']);
  t.not(port.code, 0);
  t.regex(port.err, /--port must be a non-negative integer/);
});
