import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { run as serveRun } from '../src/cli/commands/serve.js';
import { ROOT, runCli, tempDir } from './helpers/cli.js';

function occupyPort(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port })));
}

// Issue 11.7: a busy port used to be found only after the database was opened (or created)
// and every machine started and stopped.
test('serve on a port in use fails at once, naming the port, without creating the database', async (t) => {
  const { server, port } = await occupyPort();
  t.teardown(() => server.close());
  const db = join(tempDir(), 'sub', 'new.db');
  const t0 = performance.now();
  const r = await runCli(['serve', '--port', String(port), '--db', db]);
  t.log(`spawn to exit: ${Math.round(performance.now() - t0)} ms (node and tsx start-up included)`);
  t.is(r.code, 1, r.stderr);
  t.is(r.stderr, `ssm serve: port ${port} on 127.0.0.1 is already in use: stop what holds it, or pass --port N (0 for any free port); the database was not opened [PORT_UNAVAILABLE]\n`);
  t.is(r.stdout, '');
  t.false(existsSync(join(db, '..')), 'neither the database nor its folder was created');
  // In-process, start-up cost excluded: the refusal itself.
  const t1 = performance.now();
  const err = await t.throwsAsync(serveRun(['--port', String(port), '--db', db]));
  const ms = performance.now() - t1;
  t.log(`in-process refusal: ${ms.toFixed(1)} ms`);
  t.is((err as { code?: string }).code, 'PORT_UNAVAILABLE');
  t.true(ms < 1000, `${ms} ms`);
  t.false(existsSync(db));
});

// Issue 11.8: a mistyped --db silently created folders and an empty database.
test('serve --no-create refuses a missing database and creates nothing', async (t) => {
  const dir = tempDir();
  const db = join(dir, 'typo', 'ssm.db');
  const r = await runCli(['serve', '--port', '0', '--db', db, '--no-create']);
  t.is(r.code, 1);
  t.is(r.stderr, `ssm serve: no database at ${db}, and create is false: nothing was created [STORAGE_ERROR]\n`);
  t.false(existsSync(join(dir, 'typo')));
});

/** Runs `ssm serve --port 0 ARGS` until it listens, then Ctrl-C; resolves with its exit code and stderr. */
async function serveOnce(args: readonly string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--port', '0', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('listening on') && resolve());
    void exited.then((code) => reject(new Error(`serve exited ${code} before listening: ${stderr}`)));
  });
  child.kill('SIGINT');
  return { code: await exited, stderr };
}

test('serve says on stderr when it creates a new database, and only then', async (t) => {
  const db = join(tempDir(), 'fresh', 'ssm.db');
  const { code, stderr: first } = await serveOnce(['--db', db]);
  t.is(code, 0, first);
  t.regex(first, new RegExp(`^\\[ssm\\] created new database at ${realpathSync(db).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'));
  // Once the database exists, --no-create is no obstacle, and nothing is announced.
  const again = await serveOnce(['--db', db, '--no-create']);
  t.is(again.code, 0, again.stderr);
  t.notRegex(again.stderr, /created new database/);
});

test('demo says on stderr when it creates a new database', async (t) => {
  const db = join(tempDir(), 'demo.db');
  const r = await runCli(['demo', '--db', db]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /^\[ssm\] created new database at \/.*demo\.db$/m);
  t.notRegex((await runCli(['demo', '--db', db])).stderr, /created new database/);
});

test('read-only commands refuse a missing database with its absolute path, creating nothing', async (t) => {
  const dir = tempDir();
  for (const cmd of ['inspect', 'log', 'failed', 'verify', 'checkpoint', 'compact']) {
    const r = await runCli([cmd, '--db', join(dir, 'nope', 'absent.db'), ...(cmd === 'log' ? ['kv1'] : [])]);
    t.is(r.code, 1, cmd);
    t.is(r.stderr, `ssm ${cmd}: no database at ${join(dir, 'nope', 'absent.db')} (nothing was created; check the path) [STORAGE_ERROR]\n`, cmd);
  }
  t.false(existsSync(join(dir, 'nope')));
});
