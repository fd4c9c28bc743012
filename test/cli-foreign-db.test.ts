import test from 'ava';
import { join } from 'node:path';
import { startApplication } from '../src/engine/application.js';
import { defineMachine } from '../src/model/machine.js';
import { supervisor, worker } from '../src/model/tree.js';
import { buildDb, runCli, tempDir } from './helpers/cli.js';

// Issue 11.6: the README's counter example, read with the CLI's default (KV) machines, printed
// "migrate() from version 1 threw: unrecognised KV state" and exit 1, which reads like corruption.
type Input = { add: number } | { get: true };
const counter = defineMachine<number, Input, number>({
  init: () => 0,
  step: (input, total) => ('get' in input ? [total, total] : [total + input.add, total + input.add]),
  readOnly: (input) => 'get' in input,
});

async function readmeCounterDb(): Promise<string> {
  const db = join(tempDir(), 'quickstart.db');
  const app = await startApplication(supervisor('one_for_one', [worker('apples', counter), worker('pears', counter)]), { db, logger: false, snapshot: { every: 0, everyBytes: 0 } });
  await app.call('apples', { add: 3 });
  await app.call('pears', { add: 2 });
  await app.stop();
  return db;
}

const FOREIGN = /the database .* was written by another application \(ssm reads machines as the KV store unless told otherwise\): pass --module PATH with its machine definitions \[FOREIGN_DATABASE\]\n$/;

test('inspect, checkpoint, compact and verify on the README counter database: not KV, pass --module, exit 3', async (t) => {
  const db = await readmeCounterDb();
  for (const cmd of ['inspect', 'checkpoint', 'compact']) {
    const r = await runCli([cmd, '--db', db]);
    t.is(r.code, 3, `${cmd}: ${r.stderr}`);
    t.regex(r.stderr, new RegExp(`^ssm ${cmd}: apples: not a KV store state; pears: not a KV store state; `), cmd);
    t.regex(r.stderr, FOREIGN, cmd);
    t.notRegex(r.stderr, /unrecognised KV state|FAILED/, cmd);
  }
  // verify still checks the storage, then says why it cannot replay.
  const v = await runCli(['verify', '--db', db]);
  t.is(v.code, 3, v.stderr);
  t.regex(v.stdout, /integrity\s+database\s+ok/);
  t.notRegex(v.stdout, /FAILED|unrecognised KV state/);
  t.regex(v.stderr, /^ssm verify: replay skipped: apples: not a KV store state; pears: not a KV store state; /);
  t.regex(v.stderr, FOREIGN);
  const withModule = await runCli(['verify', '--db', db, '--module', 'test/fixtures/readme-counter-machines.ts']);
  t.is(withModule.code, 0, withModule.stderr + withModule.stdout);
  const help = await runCli(['--help']);
  t.regex(help.stdout, /3 the database was\s+written by another application \(pass --module PATH\)/);
});

test('a foreign log with no snapshot is recognised by its requests; --module still reads it', async (t) => {
  const db = join(tempDir(), 'counter.db');
  await buildDb(db, 'counter', 'abandon');
  const r = await runCli(['inspect', '--db', db]);
  t.is(r.code, 3, r.stderr);
  t.regex(r.stderr, /^ssm inspect: counter1: its logged requests are not KV store requests; /);
  const ok = await runCli(['inspect', '--db', db, '--module', 'test/fixtures/cli-counter-machines.ts']);
  t.is(ok.code, 0, ok.stderr);
});
