/**
 * The package as a consumer gets it: `npm pack`, installed into a fresh CommonJS project (the
 * `npm init -y` default) with nothing else, its types checked strictly, and the README's
 * examples run against it. Installed with --ignore-scripts and the better-sqlite3 binary this
 * checkout already built, so the test does not compile SQLite again (2-4 minutes).
 */
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT } from './helpers/cli.js';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const examples = (lang: string): [string, string][] =>
  [...readme.matchAll(new RegExp('```' + lang + '\\n(// example: (\\S+)[\\s\\S]*?)```', 'g'))].map((m) => [m[2]!, m[1]!]);

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

test.serial('packed and installed alone: strict types check with skipLibCheck false, README examples run, require() is refused as documented', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'ssm-package-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  const tarball = join(work, readdirSync(work).find((f) => f.endsWith('.tgz'))!);
  const app = join(work, 'consumer');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
  execFileSync('npm', ['install', tarball, '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app, stdio: ['ignore', 'ignore', 'inherit'] });
  const binary = join(app, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node');
  mkdirSync(dirname(binary), { recursive: true });
  copyFileSync(join(ROOT, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node'), binary);

  const ts = examples('ts');
  t.true(ts.length >= 3, 'the README has its TypeScript examples');
  for (const [name, code] of ts) writeFileSync(join(app, `${name}.mts`), code);
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { strict: true, skipLibCheck: false, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', noEmit: true }, include: ['*.mts'] }),
  );
  const check = spawnSync(process.execPath, [tsc, '-p', app], { cwd: app, encoding: 'utf8' });
  t.is(check.status, 0, `tsc in the consumer project:\n${check.stdout}${check.stderr}`);

  for (const [name] of ts) {
    const run = spawnSync(process.execPath, ['--import', 'tsx', `${name}.mts`], { cwd: app, encoding: 'utf8', timeout: 60_000 });
    t.is(run.status, 0, `${name}.mts: ${run.stderr}`);
  }
  const [cjs] = examples('js').filter(([name]) => name === 'commonjs');
  t.truthy(cjs, 'the README shows how CommonJS code loads the package');
  writeFileSync(join(app, 'main.js'), cjs![1]);
  const run = spawnSync(process.execPath, ['main.js'], { cwd: app, encoding: 'utf8', timeout: 60_000 });
  t.is(run.status, 0, run.stderr);
  t.is(run.stdout, '1\n');
  const required = spawnSync(process.execPath, ['-e', "require('supervised-state-machines')"], { cwd: app, encoding: 'utf8' });
  t.not(required.status, 0);
  t.regex(required.stderr, /ERR_PACKAGE_PATH_NOT_EXPORTED/, 'README: Node.js 20 cannot require() the package');
});
