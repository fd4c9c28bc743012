import { ConfigError, SsmError, UnknownMachineError } from '../../errors.js';
import { prefixEnd } from '../../storage/entity-store.js';
import { StoreReader } from '../../storage/store-reader.js';
import { parseCommand } from '../args.js';
import { positionalsAtMost, positiveFlag, usageGuard } from '../common.js';

export const summary = "list a family's entities by key, a page at a time";

const USAGE = `Usage: ssm entities FAMILY [--db PATH] [--prefix P] [--after KEY] [--limit N] [--json]

Lists the registered entities of a family (those that committed a request) in key order, with
each one's last durable sequence number and latest snapshot, from the registry's index (its cost
is the page's, whatever the number of entities). Inspect one with ssm inspect FAMILY/KEY (and
ssm log, ssm failed). Read-only: safe while a server runs.

Options:
  --db PATH    database file (default storage/ssm.db)
  --prefix P   only keys starting with P
  --after KEY  start after this key (the last key of the previous page)
  --limit N    at most N (default 100, at most 10000)
  --json       one JSON document: {"family", "count", "entities": [{"key", "seq", "snapshotSeq"}], "next"}`;

interface Row {
  key: string;
  seq: number;
  snapshotSeq: number;
}

export async function run(argv: string[]): Promise<number> {
  return usageGuard('entities', async () => {
    const { values, positionals } = parseCommand(argv, { db: { type: 'string' }, prefix: { type: 'string' }, after: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    positionalsAtMost(positionals, 1, USAGE);
    const family = positionals[0];
    if (family === undefined) throw new ConfigError('a FAMILY is needed (usage: ssm entities FAMILY)');
    const limit = positiveFlag('limit', values.limit) ?? 100;
    if (limit > 10_000) throw new ConfigError('--limit must be at most 10000');
    const prefix = values.prefix ?? '';
    const store = StoreReader.open(values.db);
    try {
      const columns = store.db.prepare(`SELECT name FROM pragma_table_info('machines')`).pluck().all() as string[];
      if (!columns.includes('family')) throw new SsmError('NO_ENTITIES', `the database ${store.path} predates entities (schema version < 8): it has none`);
      const count = store.db.prepare('SELECT count(*) FROM machines WHERE family = ?').pluck().get(family) as number;
      if (count === 0) throw new UnknownMachineError(`${family} (no entities of this family in ${store.path})`);
      const rows = store.db
        .prepare(
          `SELECT m.entity_key AS key,
             max(coalesce((SELECT max(l.last_seq) FROM request_log l WHERE l.machine = m.name), 0), coalesce((SELECT max(s.seq) FROM snapshots s WHERE s.machine = m.name), 0)) AS seq,
             coalesce((SELECT max(s.seq) FROM snapshots s WHERE s.machine = m.name AND s.rejected IS NULL), 0) AS snapshotSeq
           FROM machines m WHERE m.family = @family AND m.entity_key > @after AND m.entity_key >= @prefix AND (@end IS NULL OR m.entity_key < @end)
           ORDER BY m.entity_key LIMIT @limit`,
        )
        .all({ family, after: values.after ?? '', prefix, end: prefixEnd(prefix), limit }) as Row[];
      const next = rows.length === limit ? rows.at(-1)!.key : null;
      if (values.json) {
        console.log(JSON.stringify({ family, count, entities: rows, next }));
        return 0;
      }
      const width = Math.max(3, ...rows.map((r) => r.key.length));
      const lines = [`${'KEY'.padEnd(width)}  ${'SEQ'.padStart(8)}  ${'SNAPSHOT'.padStart(8)}`];
      for (const r of rows) lines.push(`${r.key.padEnd(width)}  ${String(r.seq).padStart(8)}  ${String(r.snapshotSeq).padStart(8)}`);
      lines.push(`${rows.length} shown of ${count} entities in ${family}${next !== null ? `; next page: --after ${JSON.stringify(next)}` : ''}`);
      console.log(lines.join('\n'));
      return 0;
    } finally {
      store.close();
    }
  });
}
