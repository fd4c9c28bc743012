/** The CLI addresses one entity as FAMILY/KEY (inspect, inspect --at, log, failed, verify) and lists a family a page at a time. */
import test from 'ava';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startApplication } from '../src/engine/application.js';
import { entities } from '../src/model/entities.js';
import { supervisor, worker } from '../src/model/tree.js';
import { counterMachine } from './fixtures/entity-machines.js';
import { runCli, tempDir } from './helpers/cli.js';

const MODULE = fileURLToPath(new URL('./fixtures/entity-cli-module.ts', import.meta.url));

async function database(): Promise<string> {
  const db = join(tempDir(), 'e.db');
  const m = counterMachine();
  const app = await startApplication(supervisor('one_for_one', [worker('fixed', m), entities('account', m)]), { db, logger: false });
  for (let i = 0; i < 5; i++) await app.call('account/42', { op: 'add', by: 1 });
  await app.call('account/42', { op: 'boom' }).catch(() => undefined);
  await app.call('account/42', { op: 'add', by: 1 });
  for (let i = 0; i < 25; i++) await app.call(`account/k${String(i).padStart(2, '0')}`, { op: 'add', by: i });
  await app.call('account/a/b', { op: 'add', by: 2 });
  await app.stop();
  return db;
}

test('inspect, inspect --at, log, failed and verify address an entity as FAMILY/KEY', async (t) => {
  const db = await database();
  const inspect = await runCli(['inspect', 'account/42', '--db', db, '--module', MODULE, '--json']);
  t.is(inspect.code, 0, inspect.stderr);
  t.regex(inspect.stdout, /"n":\s*6/);
  const at = await runCli(['inspect', 'account/42', '--at', '3', '--db', db, '--module', MODULE]);
  t.is(at.code, 0, at.stderr);
  t.regex(at.stdout, /as of seq 3[\s\S]*"n": 3/);
  const log = await runCli(['log', 'account/a/b', '--db', db]);
  t.is(log.code, 0, log.stderr);
  t.regex(log.stdout, /1 .*\{"op":"add","by":2\}/);
  const failed = await runCli(['failed', 'account/42', '--db', db]);
  t.is(failed.code, 0, failed.stderr);
  t.regex(failed.stdout, /account\/42 .* after seq 5\n\s+Error: boom/);
  const verify = await runCli(['verify', '--db', db, '--module', MODULE]);
  t.is(verify.code, 0, verify.stdout + verify.stderr);
  t.regex(verify.stdout, /replay\s+account\/a\/b\s+ok/);
  const unknown = await runCli(['log', 'account/none', '--db', db]);
  t.not(unknown.code, 0);
  t.regex(unknown.stderr, /unknown machine/);
});

test('ssm entities FAMILY lists keys in order, a page at a time, with prefix, text or JSON', async (t) => {
  const db = await database();
  const first = await runCli(['entities', 'account', '--db', db, '--limit', '10', '--json']);
  t.is(first.code, 0, first.stderr);
  const page = JSON.parse(first.stdout) as { count: number; entities: { key: string; seq: number }[]; next: string | null };
  t.is(page.count, 27);
  t.deepEqual(page.entities.map((e) => e.key), ['42', 'a/b', 'k00', 'k01', 'k02', 'k03', 'k04', 'k05', 'k06', 'k07']);
  t.deepEqual(page.entities[0], { key: '42', seq: 6, snapshotSeq: 6 });
  t.is(page.next, 'k07');
  const keys: string[] = [...page.entities.map((e) => e.key)];
  let after = page.next;
  while (after !== null) {
    const r = JSON.parse((await runCli(['entities', 'account', '--db', db, '--limit', '10', '--after', after, '--json'])).stdout) as typeof page;
    keys.push(...r.entities.map((e) => e.key));
    after = r.next;
  }
  t.is(keys.length, 27);
  t.is(new Set(keys).size, 27);
  const text = await runCli(['entities', 'account', '--db', db, '--prefix', 'k1']);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /^KEY\s+SEQ\s+SNAPSHOT\nk10\s+1\s+1\n/);
  t.regex(text.stdout, /10 shown of 27 entities in account/);
  const none = await runCli(['entities', 'nope', '--db', db]);
  t.is(none.code, 1);
  t.regex(none.stderr, /UNKNOWN_MACHINE/);
});

test('ssm checkpoint and ssm compact (offline, the writer role) take a database with entities: the changed ones are snapshotted, the others are not', async (t) => {
  const db = join(tempDir(), 'c.db');
  const m = counterMachine();
  const app = await startApplication(supervisor('one_for_one', [worker('fixed', m), entities('account', m)]), { db, logger: false });
  for (let i = 0; i < 3; i++) await app.call('account/slept', { op: 'add', by: 1 });
  await app.stop(); // account/slept is snapshotted at seq 3 as it goes to sleep
  const again = await startApplication(supervisor('one_for_one', [worker('fixed', m), entities('account', m)]), { db, logger: false });
  await again.call('account/a/b', { op: 'add', by: 2 });
  await again.call('fixed', { op: 'add', by: 1 });
  // As if killed: account/a/b's log goes past its (missing) snapshot.
  t.deepEqual((await again.checkpoint('account/a/b')).map((s) => [s.machine, s.seq]), [['account/a/b', 1]]);
  await again.call('account/a/b', { op: 'add', by: 2 });
  t.deepEqual((await again.checkpoint()).map((s) => [s.machine, s.seq]), [['fixed', 1], ['account/a/b', 2]]);
  t.deepEqual(await again.checkpoint(), [], 'nothing changed since: nothing written, sleeping account/slept not read');
  await again.call('account/a/b', { op: 'add', by: 2 });
  (again as unknown as { persistence: { close(): void } }).persistence.close(); // no clean stop
  const checkpoint = await runCli(['checkpoint', '--db', db, '--module', MODULE]);
  t.is(checkpoint.code, 0, checkpoint.stdout + checkpoint.stderr);
  t.regex(checkpoint.stdout, /account\/a\/b: snapshot at seq 3/);
  t.regex(checkpoint.stdout, /^1 entity unchanged since its last snapshot$/m, 'unchanged entities are counted, not listed');
  t.notRegex(checkpoint.stdout, /account\/slept/);
  const compact = await runCli(['compact', '--db', db, '--module', MODULE, '--keep', '1']);
  t.is(compact.code, 0, compact.stdout + compact.stderr);
  const inspect = await runCli(['inspect', 'account/a/b', '--db', db, '--module', MODULE, '--json']);
  t.is(inspect.code, 0, inspect.stderr);
  t.regex(inspect.stdout, /"n":\s*6/);
});
