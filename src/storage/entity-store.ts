import type { Database, Statement } from 'better-sqlite3';
import type { EntityListing, EntityRegistration } from './rows.js';
import { asStorageError } from './sqlite.js';

/**
 * The entity registry (rows of `machines` with a family, migration 009): registered in the
 * commit of an entity's first state-changing request, listed and counted by family and key on
 * the index `machines_by_family_key`, and purged with every row of the entity when it is deleted.
 */
export class EntityStore {
  private readonly q: Record<'register' | 'count' | 'page' | 'fixed' | 'isEntity' | 'changed', Statement>;
  private readonly purgeRows: Statement[];

  constructor(private readonly db: Database, private readonly path: string) {
    const p = (sql: string): Statement => db.prepare(sql);
    this.q = {
      register: p(`INSERT INTO machines (name, status, state_version, created_at, updated_at, family, entity_key) VALUES (?, 'entity', ?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING`),
      count: p('SELECT count(*) FROM machines WHERE family = ?').pluck(),
      // Each row's seq and snapshot seq from the indexes by machine: a page costs its own rows.
      page: p(`SELECT m.entity_key AS key,
                 max(coalesce((SELECT max(l.last_seq) FROM request_log l WHERE l.machine = m.name), 0),
                     coalesce((SELECT max(s.seq) FROM snapshots s WHERE s.machine = m.name), 0)) AS seq,
                 coalesce((SELECT max(s.seq) FROM snapshots s WHERE s.machine = m.name AND s.rejected IS NULL), 0) AS snapshotSeq
               FROM machines m
               WHERE m.family = @family AND m.entity_key > @after AND m.entity_key >= @prefix AND (@end IS NULL OR m.entity_key < @end)
               ORDER BY m.entity_key LIMIT @limit`),
      fixed: p('SELECT name FROM machines WHERE family IS NULL ORDER BY name').pluck(),
      isEntity: p('SELECT 1 FROM machines WHERE name = ? AND family IS NOT NULL').pluck(),
      // From the log's index, over the family's name range ('/' + 1 is '0'): it reads the entities
      // that have log rows, never the sleeping ones whose log was pruned at their last snapshot.
      changed: p(`SELECT l.machine FROM request_log l WHERE l.machine > @family || '/' AND l.machine < @family || '0'
                  GROUP BY l.machine
                  HAVING max(l.last_seq) > coalesce((SELECT max(s.seq) FROM snapshots s WHERE s.machine = l.machine AND s.rejected IS NULL), 0)`).pluck(),
    };
    // Children first: snapshots reference machines.
    this.purgeRows = ['request_log', 'snapshots', 'failed_requests', 'idempotency_records', 'timers', 'kv_entries', 'machine_states', 'crash_history', 'held_machines'].map((t) => p(`DELETE FROM ${t} WHERE machine = ?`));
    this.purgeRows.push(p('DELETE FROM machines WHERE name = ?'));
  }

  /** Registers entities (inside the caller's transaction). */
  register(entities: readonly EntityRegistration[], now: string): void {
    for (const e of entities) this.q.register.run(e.machine, e.version, now, now, e.family, e.key);
  }

  /** Removes every row of entity `machine`: its log, snapshots, failures, keys, timers, readable rows and registry row (inside the caller's transaction). */
  purge(machine: string): void {
    for (const s of this.purgeRows) s.run(machine);
  }

  /** Registered entities of `family` (an index range count). */
  count(family: string): number {
    return asStorageError('counting entities', () => this.q.count.get(family) as number, this.path);
  }

  /** Registered entities of `family` with keys after `after` starting with `prefix`, in key order. */
  page(family: string, prefix: string, after: string, limit: number): Omit<EntityListing, 'awake'>[] {
    return asStorageError('listing entities', () => this.q.page.all({ family, prefix, after, end: prefixEnd(prefix), limit }) as Omit<EntityListing, 'awake'>[], this.path);
  }

  /** Names of the machines of the tree (every registered machine that is not an entity). */
  fixedMachineNames(): string[] {
    return this.q.fixed.all() as string[];
  }

  /** Entities of `family` whose log goes past their newest good snapshot (changed since it), by name. */
  changedSinceSnapshot(family: string): string[] {
    return asStorageError('listing changed entities', () => this.q.changed.all({ family }) as string[], this.path);
  }

  /** Whether `name` is a registered entity. */
  isEntity(name: string): boolean {
    return this.q.isEntity.get(name) !== undefined;
  }

  /** Runs `fn` in one transaction (nested ones become savepoints). */
  transaction<T>(fn: () => T): T {
    return asStorageError('writing entity snapshots', () => this.db.transaction(fn)(), this.path);
  }
}

/**
 * The least string greater than every string starting with `prefix` (null: none, or no prefix),
 * in SQLite's BINARY order, which for UTF-8 text is code point order: the prefix with its last
 * code point incremented.
 */
export function prefixEnd(prefix: string): string | null {
  const points = [...prefix];
  while (points.length > 0) {
    let cp = points.pop()!.codePointAt(0)! + 1;
    if (cp === 0xd800) cp = 0xe000;
    if (cp <= 0x10ffff) return points.join('') + String.fromCodePoint(cp);
  }
  return null;
}
