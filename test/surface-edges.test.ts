import test from 'ava';
import Database from 'better-sqlite3';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startApplication } from '../src/engine/application.js';
import { kvMachine } from '../src/kv/kv-machine.js';
import { serve } from '../src/http/server.js';
import { supervisor, worker } from '../src/model/tree.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const tmp = (name: string): string => join(mkdtempSync(join(tmpdir(), 'ssm-surface-')), name);
const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });

for (const [flags, pattern] of [
  // Anchored: the CLI's prefix once, not followed by a second `serve:` from the options check.
  [['--host', ''], /^ssm serve: host must not be empty/],
  [['--host', '  '], /^ssm serve: host must not be empty/],
  [['--port', '99999'], /^ssm serve: port must be 0\.\.65535, got 99999/],
  [['--token', 'two words'], /^ssm serve: token must not contain white space/],
  [['--max-body-bytes', '0'], /^ssm serve: maxBodyBytes must be a positive integer, got 0/],
  [['--bogus'], /Unknown option '--bogus'/],
] as const) {
  test(`ssm serve ${JSON.stringify(flags)} is refused in one line, exit 2, before any database is created`, (t) => {
    const db = tmp('never.db');
    const r = cli(['serve', '--db', db, ...flags]);
    t.is(r.status, 2, r.stderr);
    t.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    t.regex(r.stderr, pattern);
    t.false(existsSync(db), 'no database was created or migrated');
  });
}

test('SIGTERM while ssm serve is still starting stops it gracefully once up (exit 0, database closed)', async (t) => {
  const db = tmp('early.db');
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--db', db, '--port', '0'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ? -1 : code)));
  await new Promise<void>((resolve) =>
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      // The first lifecycle line comes from inside startApplication: the handlers are already set.
      if (err.includes('kv1 started')) resolve();
    }),
  );
  child.kill('SIGTERM');
  t.is(await exited, 0, err);
  const conn = new Database(db, { readonly: true });
  t.is(conn.prepare('SELECT count(*) FROM app_lock').pluck().get(), 0, 'the writer lock was released');
  conn.close();
});

test('closing the endpoint does not wait for connections that never sent a byte', async (t) => {
  const app = await startApplication(supervisor('one_for_one', [worker('kv', kvMachine({ deliberateCrash: true }))]), { db: ':memory:', logger: false });
  const endpoint = await serve({ app, port: 0 });
  const silent = connect(endpoint.port, '127.0.0.1');
  await new Promise<void>((resolve) => silent.once('connect', () => resolve()));
  silent.on('error', () => {});
  const t0 = Date.now();
  await endpoint.close({ graceMs: 10_000 });
  t.true(Date.now() - t0 < 2000, `close took ${Date.now() - t0} ms`);
  silent.destroy();
  await app.stop();
});

test('bin/ssm.js exits 0 when its reader closes the pipe early (ssm log | head)', async (t) => {
  const db = tmp('pipe.db');
  const app = await startApplication(supervisor('one_for_one', [worker('kv', kvMachine({ deliberateCrash: true }))]), { db, logger: false, snapshot: { retainLog: true } });
  for (let b = 0; b < 8; b++) await Promise.all(Array.from({ length: 500 }, (_, i) => app.call('kv', { op: 'store', key: `key-${b}-${i}`, value: 'x'.repeat(40) })));
  await app.stop();
  const r = spawnSync('bash', ['-c', `set -o pipefail; ./bin/ssm.js log kv --db '${db}' | head -c 10 > /dev/null`], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  t.is(r.status, 0, r.stderr);
  t.notRegex(r.stderr, /EPIPE/);
});

test('ssm compact keeps the whole log while fewer than --keep snapshots exist, so a corrupt only snapshot still recovers', async (t) => {
  const db = tmp('compact.db');
  const tree = supervisor('one_for_one', [worker('kv', kvMachine({ deliberateCrash: true }))]);
  let app = await startApplication(tree, { db, logger: false });
  for (let i = 0; i < 5; i++) await app.call('kv', { op: 'store', key: `k${i}`, value: i });
  await app.stop();
  const r = cli(['compact', '--db', db]);
  t.is(r.status, 0, r.stderr);
  const conn = new Database(db);
  t.is(conn.prepare('SELECT count(*) FROM snapshots').pluck().get(), 1);
  conn.exec("UPDATE snapshots SET state = x'00' || substr(state, 2)");
  conn.close();
  app = await startApplication(tree, { db, logger: false });
  t.is(await app.call('kv', { op: 'size' }), 5);
  await app.stop();
});

test('HTTP-layer refusals are counted in /metrics by code; unexpected errors are logged, not swallowed', async (t) => {
  const app = await startApplication(supervisor('one_for_one', [worker('kv', kvMachine({ deliberateCrash: true }))]), { db: ':memory:', logger: false });
  const internal: unknown[] = [];
  const endpoint = await serve({ app, port: 0, token: 'secret', onInternalError: (e) => internal.push(e) });
  try {
    const auth = { authorization: 'Bearer secret' };
    t.is((await fetch(`${endpoint.url}/v1/machines`)).status, 401);
    t.is((await fetch(`${endpoint.url}/nowhere`, { headers: auth })).status, 404);
    t.is((await fetch(`${endpoint.url}/v1/machines`, { method: 'DELETE', headers: auth })).status, 405);
    t.is((await fetch(`${endpoint.url}/v1/machines/kv/call`, { method: 'POST', headers: { ...auth, 'content-type': 'text/plain' }, body: 'x' })).status, 415);
    const metrics = await (await fetch(`${endpoint.url}/metrics`, { headers: auth })).text();
    for (const code of ['UNAUTHORIZED', 'NOT_FOUND', 'METHOD_NOT_ALLOWED', 'UNSUPPORTED_MEDIA_TYPE']) t.regex(metrics, new RegExp(`ssm_errors_total\\{code="${code}"\\} 1`));
    t.deepEqual(internal, []);
    // A bug (a non-SsmError) answers 500 INTERNAL without details, and reaches the server's log.
    app.prometheus = () => {
      throw new Error('boom');
    };
    const r = await fetch(`${endpoint.url}/metrics`, { headers: auth });
    t.is(r.status, 500);
    t.like(await r.json(), { error: { code: 'INTERNAL', message: 'internal server error' } });
    t.is(internal.length, 1);
    t.is((internal[0] as Error).message, 'boom');
  } finally {
    await endpoint.close();
    await app.stop();
  }
});
