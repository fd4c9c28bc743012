import test from 'ava';
import { join } from 'node:path';
import { table } from '../src/cli/format.js';
import { writeBigKvDb } from './helpers/big-state.js';
import { runCli, tempDir } from './helpers/cli.js';

// Issue 11.2: a 400k-key state crashed `ssm inspect` (Maximum call stack size exceeded).
const ENTRIES = 400_000;
let db: string;
test.before(() => {
  db = join(tempDir(), 'big.db');
  writeBigKvDb(db, ENTRIES);
});

test('inspect shows a 400k-key state a page at a time, saying how to see the rest', async (t) => {
  const r = await runCli(['inspect', '--db', db]);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  t.is(lines[0], `big  seq 1  [new, 0 restarts; snapshot @1 + 0 replayed, ${ENTRIES} entries]`);
  t.is(lines[1], '  key000000 => 0');
  t.is(lines[100], '  key000099 => 99');
  t.is(lines.length, 102, 'header, 100 entries, the "more" line');
  t.regex(lines[101]!, /^ {2}\.\.\. 399900 more \(entries 1-100 of 400000 shown\); see the next with --offset 100/);
});

test('inspect --offset, --limit and --prefix page through the keys in order', async (t) => {
  const r = await runCli(['inspect', '--db', db, '--prefix', 'key39999', '--offset', '3', '--limit', '2']);
  t.is(r.code, 0, r.stderr);
  t.is(
    r.stdout,
    [
      'big  seq 1  [new, 0 restarts; snapshot @1 + 0 replayed, 10 of 400000 entries match prefix "key39999"]',
      '  key399993 => 399993',
      '  key399994 => 399994',
      '  ... 5 more (entries 4-5 of 10 shown); see the next with --offset 5, more at once with --limit N, or narrow with --prefix P',
      '',
    ].join('\n'),
  );
  const last = await runCli(['inspect', '--db', db, '--offset', String(ENTRIES - 1)]);
  t.regex(last.stdout, /^ {2}key399999 => 399999\n {2}\(entries 400000-400000 of 400000, the last\)\n$/m);
  const none = await runCli(['inspect', '--db', db, '--prefix', 'nope']);
  t.regex(none.stdout, /0 of 400000 entries match prefix "nope"\]\n {2}\(no key starts with "nope"\)\n$/);
  const bad = await runCli(['inspect', '--db', db, '--limit', '0']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--limit must be at least 1/);
});

test('inspect --json gives the whole state by default, and pages with the same flags', async (t) => {
  const all = JSON.parse((await runCli(['inspect', '--db', db, '--json'])).stdout);
  t.is(Object.keys(all.machines[0].state).length, ENTRIES);
  t.deepEqual(all.machines[0].page, { total: ENTRIES, matched: ENTRIES, offset: 0, limit: null, prefix: null, shown: ENTRIES });
  const r = await runCli(['inspect', '--db', db, 'big', '--json', '--prefix', 'key1', '--offset', '1', '--limit', '2']);
  t.is(r.code, 0, r.stderr);
  const m = JSON.parse(r.stdout).machines[0];
  t.deepEqual(m.state, { key100001: 100001, key100002: 100002 });
  t.deepEqual(m.page, { total: ENTRIES, matched: 100_000, offset: 1, limit: 2, prefix: 'key1', shown: 2 });
});

test('table() sizes columns over any number of rows', (t) => {
  const rows = Array.from({ length: 300_000 }, (_, i) => [String(i), 'x']);
  t.is(table(['N', 'V'], rows).split('\n')[1], '0       x');
});
