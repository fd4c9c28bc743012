import type { Database } from 'better-sqlite3';

/** Renders a log row's CBOR (a sequence of inputs) or a failed input's (one value) as JSON; null: none. */
export type RenderRequests = (cborBytes: Uint8Array, sequence: boolean) => string | null;

/** Runs a write under the writer's rules (closed check, SQLite errors as StorageError). */
type Write = <T>(what: string, fn: () => T) => T;

/**
 * Recomputes `requests_json` of every log row of `machine` and `input_json` of its failed inputs,
 * a page of rows per transaction, so that a big log never holds the writer for long.
 */
export function rebuildRequestJson(db: Database, machine: string, render: RenderRequests | null, write: Write): number {
  let rows = 0;
  const page = db.prepare('SELECT id, requests FROM request_log WHERE machine = ? AND id > ? ORDER BY id LIMIT 500');
  const set = db.prepare('UPDATE request_log SET requests_json = ? WHERE id = ?');
  for (let after = 0; ; ) {
    const batch = page.all(machine, after) as { id: number; requests: Uint8Array }[];
    if (batch.length === 0) break;
    write('rebuilding request JSON', () => db.transaction(() => batch.forEach((r) => set.run(render && render(r.requests, true), r.id)))());
    rows += batch.length;
    after = batch[batch.length - 1]!.id;
  }
  const failed = db.prepare('SELECT id, input FROM failed_requests WHERE machine = ? AND input IS NOT NULL').all(machine) as { id: number; input: Uint8Array }[];
  const setFailed = db.prepare('UPDATE failed_requests SET input_json = ? WHERE id = ?');
  write('rebuilding failed input JSON', () => db.transaction(() => failed.forEach((f) => setFailed.run(render && render(f.input, false), f.id)))());
  return rows;
}

/** Rewrites `machine`'s `kv_entries` rows as of `seq` in one transaction (null seq: removes them). */
export function rebuildEntries(db: Database, machine: string, entries: Iterable<readonly [string, string]>, seq: number | null): void {
  const upsert = db.prepare('INSERT OR REPLACE INTO kv_entries (machine, key, value, seq) VALUES (?, ?, ?, ?)');
  db.transaction(() => {
    db.prepare('DELETE FROM kv_entries WHERE machine = ?').run(machine);
    if (seq !== null) for (const [key, value] of entries) upsert.run(machine, key, value, seq);
    db.prepare('UPDATE machines SET entries_seq = ? WHERE name = ?').run(seq, machine);
  })();
}
