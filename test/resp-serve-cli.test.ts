import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { tempDir } from './fixtures/serve-helpers.js';
import { cli, redisCli } from './fixtures/resp-helpers.js';
import { ROOT } from './helpers/cli.js';
import { spawnServe } from './helpers/serve-process.js';


/** Spawns `ssm serve --port 0 --resp-port 0` and resolves with the RESP port once printed. */
async function startServe(t: { teardown(fn: () => void): void }, db: string): Promise<{ child: ChildProcess; port: number; exited: Promise<NodeJS.Signals | null> }> {
  const s = await spawnServe(t, ['--db', db, '--port', '0', '--resp-port', '0'], /listening on http:\/\/127\.0\.0\.1:\d+\nresp listening on redis:\/\/127\.0\.0\.1:(\d+)\n/);
  return { child: s.child, port: Number(s.ready[1]), exited: s.exited.then((e) => e.signal) };
}

test('ssm serve --resp-port: every acknowledged write survives SIGKILL', async (t) => {
  const db = join(tempDir(t), 'resp-kill.db');
  const first = await startServe(t, db);
  const n = 500;
  const commands = Array.from({ length: n }, (_, i) => `SET key:${i} value-${i}\r\n`).join('') + 'SELECT 2\r\nMSET a 1 b 2\r\nINCRBY a 41\r\n';
  const piped = await redisCli(first.port, ['--pipe'], commands);
  t.regex(piped.stdout, new RegExp(`errors: 0, replies: ${n + 3}`));
  // --pipe ends only once every reply is in: every write above was acknowledged, so durable.
  first.child.kill('SIGKILL');
  t.is(await first.exited, 'SIGKILL');

  const second = await startServe(t, db);
  t.is(await cli(second.port, 'DBSIZE'), String(n));
  const keys = Array.from({ length: n }, (_, i) => `key:${i}`);
  const values = (await cli(second.port, 'MGET', ...keys)).split('\n');
  t.deepEqual(values, keys.map((_, i) => `value-${i}`));
  t.is(await cli(second.port, '-n', '2', 'MGET', 'a', 'b'), '42\n2');
  second.child.kill('SIGTERM');
  t.is(await second.exited, null);
});

test('ssm serve: a bad --resp-port is refused before the database is opened', async (t) => {
  const db = join(tempDir(t), 'never.db');
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--db', db, '--port', '0', '--resp-port', '99999'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  t.not(code, 0);
  t.regex(err, /port must be 0\.\.65535|resp-port/);
  const { existsSync } = await import('node:fs');
  t.false(existsSync(db));
});
