/**
 * Corruption SQLite cannot see (issue 18.4): a changed byte in a logged value that is still valid
 * CBOR, a broken b-tree page, and committed writes gone missing (a lost -wal). Each is refused at
 * start or reported by `ssm verify`, never served silently.
 */
import { closeSync, existsSync, openSync, statSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import test from 'ava';
import { startApplication } from '../src/engine/application.js';
import type { LifecycleEvent } from '../src/engine/logger.js';
import { RecoveryError } from '../src/errors.js';
import { StoreReader } from '../src/storage/store-reader.js';
import { runCli } from './helpers/cli.js';
import { kvTree, rawDb, tempDb } from './helpers/persistence-kv.js';

interface VerifyJson {
  ok: boolean;
  checks: { check: string; subject: string; ok: boolean; detail: string }[];
}

async function verify(db: string): Promise<VerifyJson> {
  const r = await runCli(['verify', '--db', db, '--json']);
  return JSON.parse(r.stdout) as VerifyJson;
}

/** kv1 gets hello/k1..k3 in its log, with no snapshot to start from (so recovery replays the log). */
async function logOnly(db: string): Promise<void> {
  const app = await startApplication(kvTree(), { db, logger: false, snapshot: { every: 0 } });
  for (let i = 1; i <= 3; i++) await app.call('kv1', { op: 'store', key: `k${i}`, value: `hello${i}` });
  await app.call('kv2', { op: 'store', key: 'x', value: 1 });
  await app.stop();
  const raw = rawDb(db, false);
  raw.prepare("DELETE FROM snapshots WHERE machine = 'kv1'").run();
  raw.close();
}

test('a changed byte in a logged value (still valid CBOR) is a RecoveryError naming machine, seqs and database; ssm verify reports it', async (t) => {
  const db = tempDb(t);
  await logOnly(db);
  const raw = rawDb(db, false);
  const row = raw.prepare("SELECT id, first_seq, last_seq, requests FROM request_log WHERE machine = 'kv1' AND instr(requests, CAST('hello2' AS BLOB)) > 0").get() as { id: number; first_seq: number; last_seq: number; requests: Buffer };
  t.truthy(row, 'the value is in the log');
  const bytes = Buffer.from(row.requests);
  bytes[bytes.indexOf('hello2')] = 'j'.charCodeAt(0);
  raw.prepare('UPDATE request_log SET requests = ? WHERE id = ?').run(bytes, row.id);
  raw.close();

  const err = await t.throwsAsync(startApplication(kvTree(), { db, logger: false }), { instanceOf: RecoveryError });
  t.is(err?.machine, 'kv1');
  t.true(err?.message.includes(`${row.first_seq}..${row.last_seq}`) && err.message.includes(db) && /checksum/.test(err.message), err?.message);

  const report = await verify(db);
  t.false(report.ok);
  const log = report.checks.find((c) => c.check === 'log' && c.subject === 'kv1');
  t.false(log?.ok);
  t.regex(log?.detail ?? '', /checksum mismatch/);
  t.true(report.checks.find((c) => c.check === 'log' && c.subject === 'kv2')?.ok, 'the other machine is reported separately, and fine');
});

test('one hash per machine group per batch: every log row carries a checksum', async (t) => {
  const db = tempDb(t);
  await logOnly(db);
  const raw = rawDb(db, false);
  t.is(raw.prepare('SELECT count(*) FROM request_log WHERE checksum IS NULL').pluck().get(), 0);
  const rows = raw.prepare('SELECT requests, checksum FROM request_log').all() as { requests: Buffer; checksum: string }[];
  for (const r of rows) t.is(r.checksum, createHash('sha256').update(r.requests).digest('hex'));
  raw.close();
});

/** Overwrites the page header of `table`'s root page with an invalid page type (the database must be closed). */
function smashRootPage(db: string, table: string): void {
  const raw = rawDb(db, false);
  const root = raw.prepare('SELECT rootpage FROM sqlite_schema WHERE name = ?').pluck().get(table) as number;
  const pageSize = raw.pragma('page_size', { simple: true }) as number;
  raw.close();
  const fd = openSync(db, 'r+');
  writeSync(fd, Buffer.from([0x07, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 0, 8, (root - 1) * pageSize);
  closeSync(fd);
}

test('a broken page in a table recovery does not read: the application serves, and the background quick_check reports it loudly', async (t) => {
  const db = tempDb(t);
  await logOnly(db);
  smashRootPage(db, 'failed_requests');
  const events: LifecycleEvent[] = [];
  const app = await startApplication(kvTree(), { db, logger: (e) => events.push(e) });
  t.is(await app.call('kv1', { op: 'lookup', key: 'k1' }), 'hello1', 'serving meanwhile');
  while (app.integrity.state === 'checking') await new Promise((r) => setTimeout(r, 20));
  t.is(app.integrity.state, 'failed');
  const failed = events.find((e) => e.type === 'integrity_failed');
  t.true(failed?.type === 'integrity_failed' && failed.problems.some((p) => p.table === 'failed_requests'), JSON.stringify(failed));
  // Health says so too (what /healthz serves).
  const health = app.health();
  t.is(health.status, 'degraded');
  t.true(health.integrity.state === 'failed' && health.integrity.problems.some((p) => p.table === 'failed_requests'));
  await app.stop();
});

test('a broken b-tree page: ssm verify reports it against its table and still runs the other checks', async (t) => {
  const db = tempDb(t);
  await logOnly(db);
  t.false(existsSync(`${db}-wal`) && statSync(`${db}-wal`).size > 0, 'clean: everything is in the .db');
  smashRootPage(db, 'request_log');

  const report = await verify(db);
  t.false(report.ok);
  const integrity = report.checks.filter((c) => c.check === 'integrity');
  t.true(integrity.some((c) => c.subject === 'request_log' && !c.ok), JSON.stringify(integrity));
  t.true(report.checks.some((c) => c.check === 'snapshots'), 'the other checks still ran');
  t.true(report.checks.some((c) => c.check === 'replay' && c.subject === 'kv1'));
});

test('a clean stop leaves nothing in the -wal, even with a reader connection open', async (t) => {
  const db = tempDb(t);
  const app = await startApplication(kvTree(), { db, logger: false });
  const reader = StoreReader.open(db);
  t.teardown(() => reader.close());
  for (let i = 0; i < 50; i++) await app.call('kv1', { op: 'store', key: `k${i}`, value: 'x'.repeat(500) });
  t.true(reader.lastSeq('kv1') >= 50);
  t.not(app.integrity.state, 'failed');
  await app.stop();
  t.true(!existsSync(`${db}-wal`) || statSync(`${db}-wal`).size === 0, `-wal is ${existsSync(`${db}-wal`) ? statSync(`${db}-wal`).size : 0} bytes`);
});

test('a machine below the seq recorded durable (a torn or lost -wal) is refused at start and reported by ssm verify', async (t) => {
  const db = tempDb(t);
  await logOnly(db);
  const raw = rawDb(db, false);
  t.is(raw.prepare("SELECT durable_seq FROM machines WHERE name = 'kv1'").pluck().get(), 3, 'the clean close recorded the mark');
  // What a checkpoint torn by a crash, then a deleted -wal, leave: the machines page newer than the log's.
  raw.prepare("DELETE FROM request_log WHERE machine = 'kv1' AND last_seq = 3").run();
  raw.close();
  const err = await t.throwsAsync(startApplication(kvTree(), { db, logger: false }), { instanceOf: RecoveryError });
  t.regex(err?.message ?? '', /recorded seq 3 as durable/);
  const report = await verify(db);
  t.regex(report.checks.find((c) => c.check === 'log' && c.subject === 'kv1')?.detail ?? '', /seq 3 was recorded durable/);
});
