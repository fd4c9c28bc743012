import test from 'ava';
import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApplication } from '../src/engine/application.js';
import { RecoveryError } from '../src/errors.js';
import { kvMachine } from '../src/kv/kv-machine.js';
import { defineMachine } from '../src/model/machine.js';
import { supervisor, worker } from '../src/model/tree.js';

function dump(db: string): string {
  const conn = new Database(db, { readonly: true });
  const rows = [
    conn.prepare('SELECT machine, seq, checksum FROM snapshots ORDER BY id').all(),
    conn.prepare('SELECT machine, first_seq, last_seq, hex(requests) FROM request_log ORDER BY id').all(),
  ];
  conn.close();
  return JSON.stringify(rows);
}

test('a start that fails with RecoveryError leaves every machine’s snapshots and log exactly as found', async (t) => {
  const db = join(mkdtempSync(join(tmpdir(), 'ssm-abort-')), 'a.db');
  const kv = kvMachine({ deliberateCrash: true });
  const tree = (second: typeof kv) => supervisor('one_for_one', [worker('first', kv), worker('second', second)]);
  let app = await startApplication(tree(kv), { db, logger: false });
  for (let i = 0; i < 5; i++) {
    await app.call('first', { op: 'store', key: `a${i}`, value: i });
    await app.call('second', { op: 'store', key: `b${i}`, value: i });
  }
  // Leave unsnapshotted log behind for both machines, as a crash would.
  await app.checkpoint();
  await app.call('first', { op: 'store', key: 'late', value: 1 });
  await app.call('second', { op: 'store', key: 'late', value: 1 });
  await app.stop();
  const conn = new Database(db);
  conn.exec("DELETE FROM snapshots WHERE reason = 'terminate'");
  conn.close();
  const before = dump(db);

  // 'second' now has a step that cannot replay its log: the start must fail and write nothing.
  const broken = defineMachine({ ...kv, step: () => { throw new Error('changed code'); } });
  const err = await t.throwsAsync(startApplication(tree(broken), { db, logger: false }), { instanceOf: RecoveryError });
  t.is(err?.machine, 'second');
  t.is(dump(db), before);

  app = await startApplication(tree(kv), { db, logger: false });
  t.is(await app.call('first', { op: 'lookup', key: 'late' }), 1);
  t.is(await app.call('second', { op: 'size' }), 6);
  await app.stop();
});
