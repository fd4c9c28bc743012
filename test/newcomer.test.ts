/**
 * A newcomer's first hour, on a fresh clone, following only the README: the set-up command, the
 * HTTP quick start with its curl lines as written, SIGTERM to `npm start`, the TypeScript quick
 * starts saved as files and run with `npx tsx`, and the CLI quick start. The one liberty taken:
 * `npm ci` runs with --ignore-scripts and is given the better-sqlite3 binary this checkout
 * already compiled, then `npm run prepare` (which `npm ci` would have run), instead of compiling
 * SQLite again for minutes.
 */
import test from 'ava';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT } from './helpers/cli.js';
import { eachLine } from './helpers/lines.js';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}`);
  const end = readme.indexOf('\n## ', start + 4);
  return readme.slice(start, end < 0 ? undefined : end);
}

/** Shell lines of a section's `n`th sh block (the first by default), comments kept (the shell ignores them). */
function shLines(title: string, n = 0): string[] {
  const block = [...section(title).matchAll(/```sh\n([\s\S]*?)```/g)][n]![1]!;
  // Join continuation lines, as the shell does.
  return block.replace(/\\\n\s*/g, ' ').split('\n').filter((l) => l.trim() !== '');
}

const sh = (cwd: string, line: string) => spawnSync('bash', ['-c', line], { cwd, encoding: 'utf8', timeout: 120_000 });

test.serial("a fresh clone, the README's set-up and quick starts, exactly as written", async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'ssm-newcomer-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const clone = join(work, 'supervised-state-machines');
  execFileSync('git', ['clone', '--quiet', ROOT, clone]);

  // The first lines of the README: the two set-up commands.
  const setup = /```sh\n([\s\S]*?)```/.exec(readme.slice(0, 600))![1]!;
  t.regex(setup, /^npm ci && npm start /m);
  t.regex(setup, /^npm test /m);
  execFileSync('npm', ['ci', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: clone, stdio: ['ignore', 'ignore', 'inherit'] });
  const binary = join(clone, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node');
  mkdirSync(dirname(binary), { recursive: true });
  copyFileSync(join(ROOT, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node'), binary);
  execFileSync('npm', ['run', '--silent', 'prepare'], { cwd: clone, stdio: ['ignore', 'ignore', 'inherit'] });

  // npm start: the durable server on storage/ssm.db, http://127.0.0.1:7411.
  // Its own process group, so that a failed run's teardown also kills the server npm started.
  const server = spawn('npm', ['start'], { cwd: clone, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stderr = '';
  server.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => server.once('exit', (code) => r(code)));
  t.teardown(() => {
    try {
      process.kill(-server.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  });
  await new Promise<void>((resolve, reject) => {
    eachLine(server.stdout!, (line) => {
      if (line.includes('listening on http://127.0.0.1:7411')) resolve();
    });
    void exited.then((code) => reject(new Error(`npm start exited ${code} (is port 7411 taken?): ${stderr}`)));
  });
  t.regex(stderr, /created new database at .*storage\/ssm\.db|kv1 started \(fresh state\)/);
  const http = shLines('Quick start: HTTP').filter((l) => !l.startsWith('npm start'));
  const outputs = http.map((line) => {
    const r = sh(clone, line);
    t.is(r.status, 0, `${line}\n${r.stderr}`);
    return r.stdout;
  });
  t.is(JSON.parse(outputs[0]!).status, 'ok');
  t.is(outputs[1], 'null', 'a store answers null, as the README says');
  t.is(outputs[2], '1', 'the lookup answers 1, as the README says');
  t.regex(outputs[3]!, /"kv1"/);
  t.regex(outputs[4]!, /ssm_/);
  // The idempotency example: the same write twice with its key, applied once.
  // Block 1 holds the KV ops (run by kv-http-ops.test.ts); block 2 the idempotency example.
  const retried = shLines('Quick start: HTTP', 2).map((line) => {
    const r = sh(clone, line);
    t.is(r.status, 0, `${line}\n${r.stderr}`);
    return r.stdout;
  });
  t.deepEqual(retried, ['{"value":"100"}', '{"value":"100"}'], 'a retry with the same Idempotency-Key is not applied again');
  // Block 3: the accounts family of the default tree, an entity per key.
  const accounts = shLines('Quick start: HTTP', 3).map((line) => {
    const r = sh(clone, line);
    t.is(r.status, 0, `${line}\n${r.stderr}`);
    return r.stdout;
  });
  t.is(accounts[0], 'null');
  t.is(accounts[1], '"alice@example.com"');
  const listed = JSON.parse(accounts[2]!) as { entities: { key: string; seq: number }[]; next: string | null };
  t.like(listed, { entities: [{ key: 'alice', seq: 1 }], next: null });
  server.kill('SIGTERM');
  t.is(await exited, 0, stderr);

  // The TypeScript quick starts, saved in the clone and run as the README says.
  for (const m of readme.matchAll(/```ts\n(\/\/ example: (\S+)[\s\S]*?)```/g)) {
    const [name, code] = [m[2]!, m[1]!];
    writeFileSync(join(clone, `${name}.mts`), code);
    const r = sh(clone, `npx tsx ${name}.mts`);
    t.is(r.status, 0, `${name}.mts: ${r.stderr}`);
  }

  // The CLI quick start, line by line, on the database npm start and the examples left.
  for (const line of shLines('Quick start: CLI')) {
    const r = sh(clone, line);
    t.is(r.status, 0, `${line}\n${r.stdout}\n${r.stderr}`);
  }
});
