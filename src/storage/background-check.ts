import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { groupByTable, type SchemaEntry } from './integrity.js';
import type { TableIntegrity } from './reports.js';

/** The start-up integrity check's outcome so far. */
export type IntegrityStatus =
  | { readonly state: 'checking' }
  | { readonly state: 'ok'; readonly ms: number }
  | { readonly state: 'failed'; readonly ms: number; readonly problems: readonly TableIntegrity[] }
  /** The check itself could not run (the worker failed, or the application stopped first). */
  | { readonly state: 'not-checked'; readonly reason: string };

/** A running background check. */
export interface BackgroundCheck {
  readonly status: IntegrityStatus;
  /** Stops the check (it holds a read transaction, which would keep the WAL from being emptied at close). */
  cancel(): Promise<void>;
}

// Plain CommonJS evaluated in the worker: no loader or build step needed, under tsx or from dist.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const t0 = performance.now();
const db = new Database(workerData.path, { readonly: true, fileMustExist: true });
const messages = [];
try {
  for (const [m] of db.prepare('PRAGMA quick_check').raw().iterate()) messages.push(m);
} catch (err) {
  messages.push('the check stopped early: ' + (err && err.message || String(err)));
}
if (workerData.checksums && messages.length === 1 && messages[0] === 'ok') {
  // What SQLite cannot see: blobs whose bytes changed under a valid page (see checksum.ts).
  const { createHash } = require('node:crypto');
  const sha = (b) => createHash('sha256').update(b).digest('hex');
  try {
    for (const r of db.prepare('SELECT id, machine, seq, checksum, state FROM snapshots').iterate()) {
      if (sha(r.state) !== r.checksum) messages.push('snapshot ' + r.id + ' of ' + r.machine + ' (seq ' + r.seq + '): checksum mismatch');
    }
    for (const r of db.prepare('SELECT machine, first_seq, last_seq, checksum, requests FROM request_log WHERE checksum IS NOT NULL').iterate()) {
      if (sha(r.requests) !== r.checksum) messages.push('log row ' + r.first_seq + '..' + r.last_seq + ' of ' + r.machine + ': checksum mismatch');
    }
  } catch (err) {
    messages.push('the checksum check stopped early: ' + (err && err.message || String(err)));
  }
}
let schema = [];
try { schema = db.prepare('SELECT name, tbl_name, rootpage FROM sqlite_schema').all(); } catch {}
db.close();
parentPort.postMessage({ messages, schema, ms: performance.now() - t0 });
`;

/**
 * Runs `PRAGMA quick_check` on a separate read-only connection in a worker thread, so that a
 * large database is checked without blocking the event loop (the application serves meanwhile).
 * quick_check reads every page (O(size)) but skips index-content cross-checks; a broken b-tree
 * page, which SQLite otherwise only notices when a query reaches it, is found here.
 * With `checksums`, every snapshot and log row is also checked against its sha256 (a backup's
 * verification). `onDone` gets the final status once.
 */
export function checkInBackground(path: string, onDone: (status: IntegrityStatus) => void, options: { readonly checksums?: boolean } = {}): BackgroundCheck {
  let status: IntegrityStatus = { state: 'checking' };
  const finish = (s: IntegrityStatus): void => {
    if (status.state !== 'checking') return;
    status = s;
    onDone(s);
  };
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, driver, checksums: options.checksums === true } });
  worker.unref(); // never what keeps a process alive
  worker.on('message', (m: { messages: string[]; schema: SchemaEntry[]; ms: number }) => {
    const ok = m.messages.length === 1 && m.messages[0] === 'ok';
    finish(ok ? { state: 'ok', ms: m.ms } : { state: 'failed', ms: m.ms, problems: groupByTable(m.messages, m.schema) });
  });
  worker.on('error', (err) => finish({ state: 'not-checked', reason: err instanceof Error ? err.message : String(err) }));
  worker.on('exit', () => finish({ state: 'not-checked', reason: 'the check was stopped before it finished' }));
  return {
    get status() {
      return status;
    },
    async cancel(): Promise<void> {
      await worker.terminate();
    },
  };
}
