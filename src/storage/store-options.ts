import { ConfigError } from '../errors.js';
import type { LogGroup } from './rows.js';

/**
 * `full`: SQLite synchronous=FULL, a reply is released only after fsync; survives power loss.
 * `normal`: synchronous=NORMAL in WAL mode; survives a crash of the process, but the last
 * commits before a power failure or OS crash may be lost.
 */
export type Durability = 'full' | 'normal';

/** Default database location, relative to the working directory. */
export const DEFAULT_DB_PATH = 'storage/ssm.db';

/** Test seams for fault injection; never set in production. */
export interface StoreFaults {
  /** Called inside the batch transaction, before it commits: throw to simulate an I/O error. */
  beforeCommit?(groups: readonly LogGroup[]): void;
  /** Called inside the snapshot transaction, before it commits. */
  beforeSnapshotCommit?(machine: string, seq: number): void;
  /**
   * Called once the application's own connection is open and migrated, before any machine is
   * restored: lets a test set per-connection limits such as `PRAGMA max_page_count` (disk full).
   * `db` is the better-sqlite3 `Database`, typed `unknown` so the public types need no @types/better-sqlite3.
   */
  onOpen?(db: unknown): void;
}

/** Options of the writer, {@link Store.open}. */
export interface StoreOptions {
  /**
   * When a commit counts as durable. See {@link Durability}.
   * @default 'full'
   */
  durability?: Durability;
  /**
   * Create the database file (and its folder) when it does not exist; `false` refuses with a
   * StorageError and creates nothing, so that a mistyped path cannot start an empty database.
   * @default true
   */
  create?: boolean;
  /**
   * Fault injection for tests.
   * @default {} (no faults)
   */
  faults?: StoreFaults;
}

/** {@link StoreOptions} with every default applied. */
export type ResolvedStoreOptions = Required<StoreOptions>;

const DURABILITIES: readonly Durability[] = ['full', 'normal'];

/** Applies the defaults (the one place they are applied) and validates; throws ConfigError. */
export function resolveStoreOptions(options: StoreOptions = {}): ResolvedStoreOptions {
  const durability = options.durability ?? 'full';
  if (!DURABILITIES.includes(durability)) throw new ConfigError(`durability must be 'full' or 'normal', got ${String(durability)}`);
  const faults = options.faults ?? {};
  if (typeof faults !== 'object' || faults === null) throw new ConfigError('faults must be an object');
  const create = options.create ?? true;
  if (typeof create !== 'boolean') throw new ConfigError('create must be a boolean');
  return { durability, create, faults };
}
