import { existsSync } from 'node:fs';
import type { Database } from 'better-sqlite3';
import { ConfigError } from '../errors.js';
import { defineMachine } from '../model/machine.js';
import { openDatabaseFile } from '../storage/sqlite.js';
import { PARTITION_FAMILY, PARTITION_HASH } from './partition-hash.js';
import { KV_MACHINE } from './single-kv.js';

/*
 * The layout of a KV database file: one machine (`kv`), or P partitions (`kv/p0`..) routed by
 * a named hash. It is part of the on-disk format: a key is found only where it was written, so a
 * file is opened only with the layout it was written with, and everything else is refused before
 * the application starts (nothing is written, not even the lock row).
 *
 * The partition count and hash are recorded by the *name* of a machine of the tree, the layout
 * marker `kv.partitions:<P>:<hash>`: every machine of a tree has its row in `machines` from the
 * first start on (and no partition can hold data before that start), rows are never pruned, and
 * a name can be read with a plain query, without replaying anything and without a migration.
 */

const MARKER_PREFIX = `${KV_MACHINE}.partitions:`;

/** Name of the layout marker of a store of `partitions` partitions. */
export function layoutMarker(partitions: number): string {
  return `${MARKER_PREFIX}${partitions}:${PARTITION_HASH}`;
}

/** The marker's machine: it holds no data and takes no writes; a call answers the layout it names. */
export function layoutMachine(partitions: number) {
  const layout = { partitions, hash: PARTITION_HASH };
  return defineMachine<null, unknown, typeof layout>({
    init: () => null,
    step: (_input, state) => [state, layout],
    readOnly: () => true,
  });
}

/** What a file holds: nothing of a KV store, the single machine's data, or a partitioned layout. */
type FoundLayout = { kind: 'none' } | { kind: 'single' } | { kind: 'partitioned'; markers: string[]; registered: number } | { kind: 'foreign'; machines: string[] };

function hasColumn(db: Database, table: string, column: string): boolean {
  return (db.prepare(`SELECT name FROM pragma_table_info(?)`).pluck().all(table) as string[]).includes(column);
}

/** SQL: whether the machine named by `name` (an SQL expression) has logged or snapshotted anything. */
const holdsData = (name: string): string => `(EXISTS (SELECT 1 FROM request_log l WHERE l.machine = ${name}) OR EXISTS (SELECT 1 FROM snapshots s WHERE s.machine = ${name}))`;

function readLayout(db: Database): FoundLayout {
  if (!hasColumn(db, 'machines', 'name')) return { kind: 'none' };
  // Machines of another application (ssm serve's kv1.., an app of its own) that hold data: the
  // file is not a KV store's, and opening it as one would show it empty and add machines to it.
  const foreign = db
    .prepare(
      `SELECT name FROM machines m WHERE m.name <> @kv AND substr(m.name, 1, length(@family) + 1) <> @family || '/' AND substr(m.name, 1, length(@marker)) <> @marker
         AND ${holdsData('m.name')} ORDER BY name LIMIT 6`,
    )
    .pluck()
    .all({ kv: KV_MACHINE, family: PARTITION_FAMILY, marker: MARKER_PREFIX }) as string[];
  if (foreign.length > 0) return { kind: 'foreign', machines: foreign };
  const markers = db.prepare(`SELECT name FROM machines WHERE substr(name, 1, ?) = ? ORDER BY name`).pluck().all(MARKER_PREFIX.length, MARKER_PREFIX) as string[];
  // Partitions registered (written to) before: a file from before version 9 has none.
  const registered = hasColumn(db, 'machines', 'family') ? (db.prepare(`SELECT count(*) FROM machines WHERE family = ?`).pluck().get(PARTITION_FAMILY) as number) : 0;
  if (markers.length > 0 || registered > 0) return { kind: 'partitioned', markers, registered };
  // The single machine counts once it has logged or snapshotted anything: data that partitions would not see.
  const single = db.prepare(`SELECT ${holdsData('@m')}`).pluck().get({ m: KV_MACHINE }) as number;
  return single ? { kind: 'single' } : { kind: 'none' };
}

/** The layout of the file at `path` (reads only; `none` for a missing file or one that is not a database of this library yet). */
function layoutAt(path: string): FoundLayout {
  if (path === ':memory:' || !existsSync(path)) return { kind: 'none' };
  // Both ways leave the files as they were (no statement here writes): without a WAL, a writable
  // connection, since a read-only one would leave an empty WAL behind; with one (a killed process,
  // a copy of a live store), a read-only one, since the last writable connection to close would
  // checkpoint that WAL into the file and delete it.
  const db = openDatabaseFile(path, existsSync(`${path}-wal`) ? 'read' : 'write', false);
  try {
    return readLayout(db);
  } finally {
    db.close();
  }
}

function describeFound(found: FoundLayout): string {
  switch (found.kind) {
    case 'foreign':
      return `another application's machines (${found.machines.slice(0, 5).join(', ')}${found.machines.length > 5 ? ', ...' : ''}), not a KV store of openKV`;
    case 'single':
      return 'one machine (opened without partitions)';
    case 'partitioned':
      if (found.markers.length === 0) return `${found.registered} partitions without a layout marker`;
      return found.markers.map((m) => `partitions: ${m.slice(MARKER_PREFIX.length).replace(':', ', hash ')}`).join(' and ');
    case 'none':
      return 'nothing';
  }
}

/**
 * Refuses (ConfigError) to open the file at `path` as a store of `partitions` partitions (1: the
 * single machine) when it was written with another layout: its keys would be looked for in the
 * wrong machines and seem lost, and new writes would split the data. Reads only.
 */
export function checkLayout(path: string, partitions: number): void {
  const found = layoutAt(path);
  if (found.kind === 'none') return;
  if (found.kind === 'foreign') {
    throw new ConfigError(`${path} holds ${describeFound(found)}: openKV would show it as an empty store. Open it with the application that wrote it (ssm serve, startApplication), or give openKV a file of its own (nothing was changed on disk).`);
  }
  const wanted = partitions === 1 ? 'one machine (no partitions option)' : `partitions: ${partitions}, hash ${PARTITION_HASH}`;
  const fits = partitions === 1 ? found.kind === 'single' : found.kind === 'partitioned' && found.markers.length === 1 && found.markers[0] === layoutMarker(partitions);
  if (fits) return;
  throw new ConfigError(
    `KV store ${path} was written as ${describeFound(found)}, and cannot be opened as ${wanted}: keys would be routed to other machines than the ones holding them. ` +
      `Open it with the layout it was written with (nothing was changed on disk); to change the layout, copy the entries into a new store.`,
  );
}
