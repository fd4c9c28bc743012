import type { Database } from 'better-sqlite3';
import type { TableIntegrity } from './reports.js';

/**
 * Runs SQLite's integrity check and groups its messages by the table they concern, so a user
 * learns that `request_log` is damaged rather than only "database disk image is malformed".
 * Messages name a b-tree by its root page ("Tree 5 page 9 ...") or an index by name ("row 3
 * missing from index x"); both are mapped through sqlite_schema. Anything else (free-list or
 * page-usage problems) belongs to the file. An empty array means the check passed.
 * `quick` uses `quick_check` (O(N), no index-content cross-check), cheap enough at start.
 */
export function integrityByTable(db: Database, quick = false): TableIntegrity[] {
  // Read row by row: on some damage SQLite yields its findings and then fails the statement
  // ("malformed"); what it found before failing is the useful part.
  const messages: string[] = [];
  try {
    for (const [message] of db.prepare(`PRAGMA ${quick ? 'quick_check' : 'integrity_check'}`).raw().iterate() as Iterable<[string]>) messages.push(message);
  } catch (err) {
    messages.push(`the check stopped early: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (messages.length === 1 && messages[0] === 'ok') return [];
  let schema: SchemaEntry[] = [];
  try {
    schema = db.prepare('SELECT name, tbl_name, rootpage FROM sqlite_schema').all() as SchemaEntry[];
  } catch {
    // The schema itself is unreadable: every message is reported against the file.
  }
  return groupByTable(messages, schema);
}

/** One entry of sqlite_schema, as {@link groupByTable} needs it. */
export interface SchemaEntry {
  readonly name: string;
  readonly tbl_name: string;
  readonly rootpage: number | null;
}

/** Groups integrity-check messages by the table they concern (see {@link integrityByTable}). */
export function groupByTable(messages: readonly string[], schema: readonly SchemaEntry[]): TableIntegrity[] {
  const byRoot = new Map(schema.filter((e) => e.rootpage).map((e) => [e.rootpage!, e]));
  const byName = new Map(schema.map((e) => [e.name, e]));
  const groups = new Map<string | null, string[]>();
  for (const raw of messages) {
    for (const message of raw.replace(/^\*\*\* in database \w+ \*\*\*\n/, '').split('\n')) {
      const tree = /^(?:Tree|Page) (\d+)\b/.exec(message);
      const index = /\bindex (\S+)/.exec(message);
      const entry = tree ? byRoot.get(Number(tree[1])) : index ? byName.get(index[1]!) : undefined;
      const table = entry ? entry.tbl_name : null;
      const list = groups.get(table) ?? [];
      list.push(entry && entry.name !== entry.tbl_name && !message.includes(entry.name) ? `${message} (index ${entry.name})` : message);
      groups.set(table, list);
    }
  }
  return [...groups].map(([table, problems]) => ({ table, problems }));
}
