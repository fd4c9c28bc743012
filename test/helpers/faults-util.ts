/**
 * Shared helpers of the fault and hostile-input suites (test/faults-*, test/hostile-*,
 * test/load-*): digests of a KV application's whole state, a KV model for differential checks,
 * a disk-full switch on the application's own connection, and a plain expectation that a
 * promise rejects with a typed error.
 */
import { createHash } from 'node:crypto';
import type { Database } from 'better-sqlite3';
import type { App } from '../../src/engine/application.js';
import { cbor } from '../../src/encoding/cbor.js';
import { SsmError } from '../../src/errors.js';
import { kvStep, type KvInput, type KvTable } from '../../src/kv/kv-machine.js';
import { kvEntries } from './persistence-kv.js';

/** A KV state as a plain Map: kvStep works on any KvTable. */
type MapState = Map<string, unknown> & KvTable;

/** True when the long form of the suite was asked for (`npm run test:faults`). */
export const LONG = process.env['SSM_FAULTS_LONG'] === '1';

/** A digest of machines' whole states, read through the public API (read-only calls, never logged). */
export async function kvDigest(app: App, machines: readonly string[] = app.machines()): Promise<string> {
  const h = createHash('sha256');
  for (const m of machines) {
    const entries = await kvEntries(app, m);
    h.update(m).update(cbor.encode(entries));
  }
  return h.digest('hex');
}

/** The same digest computed from model maps (sorted as the machine's `entries` sorts). */
export function modelDigest(models: ReadonlyMap<string, MapState>): string {
  const h = createHash('sha256');
  for (const [m, state] of models) {
    const entries = [...state.keys()].sort().map((k) => [k, state.get(k)]);
    h.update(m).update(cbor.encode(entries));
  }
  return h.digest('hex');
}

/** Applies a validated input to a model map with the machine's own step. */
export function applyModel(state: MapState, input: KvInput): unknown {
  return kvStep(input, state)[1];
}

/**
 * Disk full for one connection: caps the database at its current size plus `extraPages`.
 * `PRAGMA max_page_count` applies to the connection it is set on, so this must be the
 * application's own (captured with the `faults.onOpen` seam).
 */
export class DiskLimit {
  db: Database | null = null;
  readonly onOpen = (db: Database): void => {
    this.db = db;
  };

  /**
   * Caps the file at its current page count plus `extraPages`; returns the cap. Free pages inside
   * the file are reclaimed first (VACUUM), so that "full" leaves no hidden room: otherwise
   * SQLite would reuse pages freed by earlier log truncation and a snapshot could still fit.
   */
  fill(extraPages = 0): number {
    const db = this.need();
    db.exec('VACUUM');
    const pages = db.pragma('page_count', { simple: true }) as number;
    return db.pragma(`max_page_count = ${pages + extraPages}`, { simple: true }) as number;
  }

  /** Lifts the cap: the disk has been cleaned up. */
  free(): void {
    this.need().pragma('max_page_count = 1073741823');
  }

  private need(): Database {
    if (!this.db) throw new Error('DiskLimit: the application has not opened its database yet');
    return this.db;
  }
}

/** Settles a promise into a tagged result (never an unhandled rejection). */
export async function outcome<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  try {
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, error };
  }
}

/** The `code` of a typed error, or a description of an untyped one (which tests treat as a failure). */
export function errorCode(err: unknown): string {
  if (err instanceof SsmError) return err.code;
  return `UNTYPED:${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A value of roughly `bytes` bytes, recognisable from its key. */
export function bulky(key: string, bytes: number): { key: string; pad: string } {
  return { key, pad: key.padEnd(bytes, '#') };
}
