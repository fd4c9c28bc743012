import test from 'ava';
import { join } from 'node:path';
import { runCli, tempDir } from './helpers/cli.js';

// Issue 11.9: `ssm compact` with defaults saved 0 B on a young database and did not say why.
test('compact that removes nothing says why, and what would free space', async (t) => {
  const db = join(tempDir(), 'demo.db');
  t.is((await runCli(['demo', '--db', db])).code, 0);
  const r = await runCli(['compact', '--db', db]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^pruned 0 log rows and 0 old snapshots$/m);
  t.regex(r.stdout, /^nothing could be removed \(--keep 2: the newest 2 snapshots of each machine and the log back to the oldest of them are kept\):$/m);
  t.regex(r.stdout, /^ {2}kv2: 1 snapshot, fewer than --keep 2, so its whole log \(\d+ B\) is kept: recovery can still start from init/m);
  t.regex(r.stdout, /^the file \(.+\) holds \d+ B of log and .+ of snapshots; the rest is SQLite's own pages/m);
  t.regex(r.stdout, /^to free more: ssm compact --keep 1 keeps only the newest snapshot of each machine and drops the log before it/m);
  // --keep 1 does prune that log; after it, compact says there is nothing more to gain.
  const one = await runCli(['compact', '--db', db, '--keep', '1']);
  t.regex(one.stdout, /^pruned 1 log row and 0 old snapshots$/m);
  t.notRegex(one.stdout, /nothing could be removed/);
  const again = await runCli(['compact', '--db', db, '--keep', '1']);
  t.regex(again.stdout, /^ {2}kv2: 1 snapshot, no log left to prune$/m);
  t.regex(again.stdout, /^this is as small as ssm compact makes it/m);
});
