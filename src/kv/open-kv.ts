import { dirname, join } from 'node:path';
import { startApplication } from '../engine/application.js';
import { DEFAULT_QUEUE_CAPACITY } from '../engine/options.js';
import { ShardedMap } from '../encoding/sharded-map.js';
import { fanOutWidth } from './fan-out.js';
import { ConfigError } from '../errors.js';
import { entities } from '../model/entities.js';
import { supervisor, worker } from '../model/tree.js';
import { DEFAULT_DB_PATH } from '../storage/store-options.js';
import { embeddedKvMachine } from './embedded-machine.js';
import type { KV, KVOptions } from './kv-api.js';
import { checkLayout, layoutMachine, layoutMarker } from './kv-layout.js';
import { MAX_PARTITIONS, PARTITION_FAMILY } from './partition-hash.js';
import { PartitionedKV } from './partitioned-kv.js';
import { KV_MACHINE, SingleKV } from './single-kv.js';

export { InvalidKeyError, InvalidOperationError, UpdateConflictError, DEFAULT_UPDATE_ATTEMPTS, type BatchOp, type EntriesOptions, type KV, type KVOptions, type SetOptions, type UpdateOptions, type WriteOptions } from './kv-api.js';
export { KV_MACHINE } from './single-kv.js';
export { MAX_PARTITIONS, PARTITION_HASH, fnv1a32, partitionOf } from './partition-hash.js';

/** Default database of {@link openKV}, relative to the working directory. */
export const DEFAULT_KV_PATH = join(dirname(DEFAULT_DB_PATH), 'kv.db');

/** The layout options of {@link KVOptions}, checked, with their defaults. */
interface Layout {
  readonly partitions: number;
  readonly warm: boolean;
  readonly idleMs: number;
}

/** An option's value for a message: a string quoted, so that '4' does not read as 4. */
const shown = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : String(v));

function resolveLayout(options: KVOptions): Layout {
  const { partitions = 1, warm = true, partitionIdleMs = Number.POSITIVE_INFINITY } = options;
  if (!Number.isSafeInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS) throw new ConfigError(`openKV: partitions must be an integer from 1 to ${MAX_PARTITIONS}, got ${shown(partitions)}`);
  if (typeof warm !== 'boolean') throw new ConfigError(`openKV: warm must be a boolean, got ${shown(warm)}`);
  if (partitionIdleMs !== Number.POSITIVE_INFINITY && !(Number.isSafeInteger(partitionIdleMs) && partitionIdleMs >= 1)) throw new ConfigError(`openKV: partitionIdleMs must be a positive integer or Infinity, got ${shown(partitionIdleMs)}`);
  // The family's sweep compares against now - idleMs: "never" is a time no process lives to see.
  return { partitions, warm, idleMs: partitionIdleMs === Number.POSITIVE_INFINITY ? Number.MAX_SAFE_INTEGER : partitionIdleMs };
}

/**
 * Opens (or creates) a durable key-value store at `path` (default `storage/kv.db`, folder
 * created). Behind it: one KV state machine under a supervisor, or with `partitions: P` a family
 * of P partitions (see {@link KVOptions.partitions}), with the request log and snapshots in
 * SQLite. The same file cannot be opened twice at once (DatabaseLockedError), nor with another
 * layout than it was written with (ConfigError, nothing changed).
 *
 * Values are anything cbor-x round-trips: plain objects, arrays, strings, numbers, booleans,
 * `null`, `undefined`, `Map`, `Set`, `Date`, `Uint8Array` and other typed arrays, `bigint`.
 * Keys are strings of at most 4096 UTF-16 code units (InvalidKeyError otherwise). One `set`
 * (key and value encoded) may not exceed `maxPayloadBytes` (default 1 MiB; PayloadTooLargeError).
 *
 * `options` are those of the application (durability, snapshot policy, queue, timeouts), and the
 * layout (`partitions`, `warm`, `partitionIdleMs`); the logger is silent unless one is given.
 *
 * @example
 * ```ts
 * const kv = await openKV<{ n: number }>('storage/counters.db');
 * await kv.set('a', { n: 1 });
 * console.log(await kv.get('a')); // { n: 1 }
 * await kv.close();
 * const big = await openKV('storage/big.db', { partitions: 64 }); // 64 partitions, warmed in the background
 * await big.close();
 * ```
 */
export async function openKV<V = unknown>(path: string = DEFAULT_KV_PATH, options: KVOptions = {}): Promise<KV<V>> {
  // Only undefined takes the default: anything else that is not a path (null) would pass the
  // layout check as "no file" and open the application's default database, unchecked.
  if (typeof path !== 'string' || path === '') throw new ConfigError(`openKV: path must be a non-empty string (omit it for ${DEFAULT_KV_PATH}), got ${path === null ? 'null' : typeof path === 'string' ? 'an empty string' : typeof path}`);
  if (options === null || typeof options !== 'object') throw new ConfigError(`openKV: options must be an object, got ${options === null ? 'null' : typeof options}`);
  const { partitions: _p, warm: _w, partitionIdleMs: _i, ...appOptions } = options;
  const layout = resolveLayout(options);
  checkLayout(path, layout.partitions);
  const app = { ...appOptions, logger: options.logger ?? false, db: path };
  if (layout.partitions === 1) {
    const tree = supervisor('one_for_one', [worker(KV_MACHINE, embeddedKvMachine())], { name: 'kv_root' });
    return new SingleKV<V>(await startApplication(tree, app));
  }
  const P = layout.partitions;
  const tree = supervisor(
    'one_for_one',
    [
      // Listed first: its row in `machines` records the layout from the first start on.
      worker(layoutMarker(P), layoutMachine(P)),
      // Each holds 1/P of the keys: 256/P shards keep the single store's shard size (ShardedMap).
      entities(PARTITION_FAMILY, embeddedKvMachine({ shards: Math.max(1, ShardedMap.DEFAULT_SHARDS / 2 ** Math.ceil(Math.log2(P))) }), { maxActive: P, idleMs: layout.idleMs }),
    ],
    { name: 'kv_root' },
  );
  return new PartitionedKV<V>(await startApplication(tree, app), P, layout.warm, fanOutWidth(options.queueCapacity ?? DEFAULT_QUEUE_CAPACITY));
}
