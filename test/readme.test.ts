import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApplication } from '../src/engine/application.js';
import { demoTree } from '../src/kv/demo.js';
import { openKV } from '../src/kv/open-kv.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const root = new URL('../', import.meta.url);

function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}`);
  if (start < 0) throw new Error(`README has no section ${title}`);
  const end = readme.indexOf('\n## ', start + 4);
  return readme.slice(start, end < 0 ? undefined : end);
}

function blocks(text: string, lang: string): string[] {
  return [...text.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
}

test('the first lines of the README give the two set-up commands', (t) => {
  const first = blocks(readme.slice(0, 400), 'sh')[0]!;
  t.regex(first, /npm ci && npm start/);
  t.regex(first, /npm test/);
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
  t.regex(pkg.scripts['start']!, /src\/cli\/main\.ts serve/);
  t.truthy(pkg.scripts['test']);
});

test('every sqlite3 query of the cookbook runs with the real sqlite3 CLI against a live database', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ssm-cookbook-'));
  const db = join(dir, 'ssm.db');
  // A partitioned KV store's partitions first (for the query of keys per partition), then the demo tree on the same file.
  const kv = await openKV(db, { partitions: 4, readable: true });
  for (let i = 0; i < 8; i++) await kv.set(`p${i}`, i);
  await kv.close();
  const app = await startApplication(demoTree(), { db, logger: false, readable: true, snapshot: { every: 3, maxTimeShare: 1 } });
  try {
    for (let i = 0; i < 7; i++) await app.call('kv2', { op: 'store', key: `k${i}`, value: i });
    await app.call('kv2', { op: 'lookup', key: 'crash' }).catch(() => undefined);
    await app.call('kv1', { op: 'store', key: 'a', value: 'b' });
    await app.call('kv1', { op: 'store', key: 'paid', value: true }, { idempotencyKey: 'order-1' });
    await app.call('kv1', { op: 'store', key: 'user:1', value: { name: 'Ada' } });
    const queries = blocks(section('Inspecting a database with sqlite3'), 'sql');
    t.true(queries.length >= 6, 'the cookbook has its queries');
    for (const q of queries) {
      const r = spawnSync('sqlite3', ['-readonly', '-header', db, q], { encoding: 'utf8' });
      t.is(r.status, 0, `${q}\n${r.stderr}`);
      t.is(r.stderr, '', q);
      t.not(r.stdout.trim(), '', `no rows for: ${q}`);
    }
    const overview = execFileSync('sqlite3', ['-readonly', '-json', db, 'SELECT machine, last_seq, restarts FROM machine_overview'], { encoding: 'utf8' });
    const rows = JSON.parse(overview) as { machine: string; last_seq: number; restarts: number }[];
    const kv2 = rows.find((r) => r.machine === 'kv2')!;
    const status = app.status();
    const seqOf = (name: string): number => {
      const find = (n: typeof status): number | undefined => (n.kind === 'worker' ? (n.name === name ? n.seq : undefined) : n.kind === 'entities' ? undefined : n.children.map(find).find((x) => x !== undefined));
      return find(status)!;
    };
    t.is(kv2.last_seq, seqOf('kv2'));
    t.is(kv2.last_seq, 7);
    t.is(kv2.restarts, 1);
    const failed = execFileSync('sqlite3', ['-readonly', db, "SELECT error_message FROM failed_requests WHERE machine = 'kv2'"], { encoding: 'utf8' });
    t.is(failed.trim(), 'divide by zero');
  } finally {
    await app.stop();
  }
});

test('the README TypeScript examples run as written', async (t) => {
  const examples = blocks(readme, 'ts').filter((b) => b.startsWith('// example:'));
  t.true(examples.length >= 2);
  const tsx = import.meta.resolve('tsx');
  const index = new URL('src/index.ts', root).href;
  const expected: Record<string, RegExp> = {
    counter: /^true\n3\n$/,
    kv: /Ada[\s\S]*math[\s\S]*ada/,
    sharded: /^5\n$/,
    backoff: /^2\n$/,
    entities: /^10\n\[ 'eu\/7' \]\n2\n$/,
    'kv-partitions': /^11 30\n2\n\[ \[ 'user:1', 1 \], \[ 'user:2', 2 \] \]\nINVALID_OPERATION\n$/,
    'kv-ops': /^(60000|59\d{3})\ntrue\nfalse\ntrue\n42\n\[ \[ 'b', 2 \], \[ 'a', 42 \] \]\n$/,
  };
  for (const ex of examples) {
    const name = /^\/\/ example: (\S+)/.exec(ex)![1]!;
    const dir = mkdtempSync(join(tmpdir(), `ssm-readme-${name}-`));
    const file = join(dir, `${name}.mts`);
    writeFileSync(file, ex.replaceAll("'supervised-state-machines'", `'${index}'`));
    const r = spawnSync(process.execPath, ['--import', tsx, file], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    t.is(r.status, 0, `${name}: ${r.stderr}`);
    t.regex(r.stdout, expected[name] ?? /./, `${name} printed: ${r.stdout}`);
  }
});
