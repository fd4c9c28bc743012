import test from 'ava';
import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApplication, type App } from '../src/engine/application.js';
import { kvMachine } from '../src/kv/kv-machine.js';
import type { LifecycleEvent } from '../src/engine/logger.js';
import { supervisor, worker } from '../src/model/tree.js';

const tree = supervisor('one_for_one', [worker('kv', kvMachine({ deliberateCrash: true }))]);

async function open(db: string, events: LifecycleEvent[] = []): Promise<App> {
  return startApplication(tree, { db, logger: (e) => events.push(e), snapshot: { every: 0, keepSnapshots: 2 } });
}

async function write(app: App, from: number, to: number): Promise<void> {
  for (let i = from; i <= to; i++) await app.call('kv', { op: 'store', key: `k${i}`, value: i });
}

function corruptNewest(db: string): number {
  const conn = new Database(db);
  const row = conn.prepare("SELECT id FROM snapshots WHERE machine = 'kv' ORDER BY seq DESC, id DESC LIMIT 1").get() as { id: number };
  conn.prepare("UPDATE snapshots SET state = x'ffffffff' || substr(state, 5) WHERE id = ?").run(row.id);
  conn.close();
  return row.id;
}

function snapshotRows(db: string): { id: number; seq: number; rejected: string | null }[] {
  const conn = new Database(db, { readonly: true });
  const rows = conn.prepare("SELECT id, seq, rejected FROM snapshots WHERE machine = 'kv' ORDER BY seq, id").all() as { id: number; seq: number; rejected: string | null }[];
  conn.close();
  return rows;
}

test('a snapshot found corrupt is quarantined: it no longer counts among the kept ones, so the good older snapshot and its log survive', async (t) => {
  const db = join(mkdtempSync(join(tmpdir(), 'ssm-quarantine-')), 'q.db');
  let app = await open(db);
  await write(app, 1, 3);
  await app.checkpoint();
  await write(app, 4, 6);
  await app.checkpoint();
  await write(app, 7, 8);
  await app.stop(); // terminate snapshot @8; keeps @8 and @6, log from 7 on
  t.deepEqual(snapshotRows(db).map((r) => r.seq), [6, 8]);

  const bad = corruptNewest(db);
  const events: LifecycleEvent[] = [];
  app = await open(db, events);
  const started = events.find((e) => e.type === 'started');
  t.like(started, { recovery: { path: 'older-snapshot', snapshotSeq: 6, replayed: 2 } });
  t.is(await app.call('kv', { op: 'size' }), 8);
  await write(app, 9, 10);
  await app.checkpoint(); // @10: the kept good ones are @10 and @6, the quarantined @8 stays aside
  const rows = snapshotRows(db);
  t.deepEqual(rows.map((r) => [r.seq, r.rejected === null]), [[6, true], [8, false], [10, true]]);
  t.is(rows.find((r) => r.id === bad)!.rejected, 'checksum mismatch');
  await app.stop();

  // The newest good snapshot goes bad too: the older good one plus the log still rebuild everything.
  corruptNewest(db);
  const again: LifecycleEvent[] = [];
  app = await open(db, again);
  t.like(again.find((e) => e.type === 'started'), { recovery: { path: 'older-snapshot', snapshotSeq: 6, replayed: 4 } });
  t.deepEqual(await app.call('kv', { op: 'entries' }), Array.from({ length: 10 }, (_, i) => [`k${i + 1}`, i + 1]).sort());
  await app.stop();
});
