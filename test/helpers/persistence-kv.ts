/**
 * Shared helpers for the persistence, recovery and crash tests: temp databases, a KV tree that
 * tolerates many crashes, reading a machine's whole state back through the public API, and a
 * raw SQLite connection for inspecting (or damaging) what is on disk.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { ExecutionContext } from 'ava';
import { startApplication, type App } from '../../src/engine/application.js';
import type { ApplicationOptions } from '../../src/engine/options.js';
import { kvMachine } from '../../src/kv/kv-machine.js';
import type { LifecycleEvent } from '../../src/engine/logger.js';
import type { AnyMachine } from '../../src/model/machine.js';
import type { RecoveryReport } from '../../src/storage/reports.js';
import type { StatusNode } from '../../src/engine/runtime-tree.js';
import { supervisor, worker, type Strategy, type SupervisorSpec } from '../../src/model/tree.js';

/** A fresh temp directory with a database path inside; removed when the test ends. */
export function tempDb(t: ExecutionContext, prefix = 'ssm-persist-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'app.db');
}

/** A one_for_one tree of KV machines whose supervisor allows many restarts (crashes are part of the tests). */
export function kvTree(names: readonly string[] = ['kv1', 'kv2'], machine: AnyMachine = kvMachine({ deliberateCrash: true }), strategy: Strategy = 'one_for_one'): SupervisorSpec {
  return supervisor(
    strategy,
    names.map((n) => worker(n, machine)),
    { intensity: 1_000_000, periodMs: 1000, name: 'root' },
  );
}

/** Starts an application, recording its lifecycle events (logger silenced otherwise). */
export async function startRecording(tree: SupervisorSpec, options: ApplicationOptions): Promise<{ app: App; events: LifecycleEvent[] }> {
  const events: LifecycleEvent[] = [];
  const app = await startApplication(tree, { ...options, logger: (e) => events.push(e) });
  return { app, events };
}

/** The recovery report of `machine` in the latest 'started' event. */
export function recoveryOf(events: readonly LifecycleEvent[], machine: string): RecoveryReport | undefined {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    if (e.type === 'started' && e.machine === machine) return e.recovery;
  }
  return undefined;
}

/**
 * A KV machine's whole state, read through the public API (read-only calls: never logged), page
 * by page with `entries` and `after` (one reply is bounded) until a page is empty. Machines of
 * these tests that ignore `after` answer everything at once: a page that starts at or before
 * the cursor means that. Call it while no write is in flight.
 */
export async function kvEntries(app: App, machine: string): Promise<[string, unknown][]> {
  const out: [string, unknown][] = [];
  let after: string | undefined;
  for (;;) {
    const page = await app.call<[string, unknown][]>(machine, { op: 'entries', after, limit: 10_000 });
    if (page.length === 0 || (after !== undefined && page[0]![0] <= after)) return out;
    out.push(...page);
    after = page[page.length - 1]![0];
  }
}

/** Sorted entries of a model map, comparable with {@link kvEntries}. */
export function modelEntries(model: ReadonlyMap<string, unknown>): [string, unknown][] {
  return [...model.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The status node of one worker. */
export function workerStatus(app: App, name: string): Extract<StatusNode, { kind: 'worker' }> {
  const visit = (n: StatusNode): Extract<StatusNode, { kind: 'worker' }> | undefined => {
    if (n.kind !== 'supervisor') return n.kind === 'worker' && n.name === name ? n : undefined;
    for (const c of n.children) {
      const found = visit(c);
      if (found) return found;
    }
    return undefined;
  };
  const found = visit(app.status());
  if (!found) throw new Error(`no worker ${name}`);
  return found;
}

/** A separate, plain better-sqlite3 connection to the file (for inspecting or corrupting it). */
export function rawDb(path: string, readonly = true): Database.Database {
  const db = new Database(path, { readonly, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  return db;
}

/** Row counts of the tables recovery reads, to prove that nothing was deleted. */
export function tableCounts(path: string): { snapshots: number; log: number; logRows: string } {
  const db = rawDb(path);
  try {
    const snapshots = db.prepare('SELECT count(*) FROM snapshots').pluck().get() as number;
    const log = db.prepare('SELECT count(*) FROM request_log').pluck().get() as number;
    const rows = db.prepare('SELECT machine, first_seq, last_seq, hex(requests) AS r FROM request_log ORDER BY id').all();
    return { snapshots, log, logRows: JSON.stringify(rows) };
  } finally {
    db.close();
  }
}

/** The value the child's load mode stores under `key`: recognisable, and not trivially small. */
export function childValue(key: string): { key: string; n: number; pad: string } {
  return { key, n: key.length * 7919, pad: 'x'.repeat(40) };
}
