import { addExtension } from 'cbor-x';
import { IndexBuild, type IndexBuildSizes } from './index-build.js';
import { keysOfRange, type KeyRange } from './key-range.js';
import { SortedKeys } from './sorted-keys.js';

/** Largest map whose index {@link ShardedMap.whenIndexed} leaves to the first range read (a few ms of sorting). */
export const SYNC_INDEX_MAX_KEYS = 16_384;

/** Most time one slice of a background index build takes before yielding to the event loop. */
export const INDEX_SLICE_MS = 4;

/** How {@link ShardedMap.whenIndexed} builds; the defaults are the ones to use outside tests. */
export interface IndexingOptions extends IndexBuildSizes {
  /** @default {@link SYNC_INDEX_MAX_KEYS} */
  readonly syncMaxKeys?: number;
  /** 0: one unit of work per slice. @default {@link INDEX_SLICE_MS} */
  readonly sliceMs?: number;
}

/**
 * A `Map<string, V>` for large machine states, split into a fixed number of shards by a hash of
 * the key.
 *
 * Why: V8 rebuilds one big `Map` slowly. Decoding a snapshot of a 1,000,000-entry `Map` takes
 * about 1 s on this project's reference machine, almost all of it in the Map's own inserts and
 * rehashes over a table far larger than the CPU caches; the same entries in 256 Maps of ~4,000
 * decode in about half that. Replay into one big Map also stalls whenever it doubles (a
 * 1M-entry rehash); a shard only ever rehashes its own entries.
 *
 * Semantics are those of a Map with string keys, except iteration order: shard by shard, then
 * insertion order within a shard (sort when order matters). The shard count is fixed when the
 * map is created (default 256; an empty shard costs about a hundred bytes) and travels with it.
 *
 * CBOR: encoded as tag {@link SHARDED_MAP_TAG} around an array of Maps (the shards, in order).
 * The extension is registered with cbor-x when this module loads, which `codec.ts` guarantees.
 */
export class ShardedMap<V = unknown> implements Iterable<[string, V]> {
  #shards: Map<string, V>[];
  #mask: number;
  /**
   * The keys in order, for range reads: derived, never persisted (the CBOR form is the shards
   * alone), built on the first range read (or in the background, see {@link whenIndexed}) and
   * kept up to date by `set` and `delete` from then on.
   */
  #index: SortedKeys | null = null;
  /** A background build of {@link #index} under way, told of every write until it is done. */
  #build: IndexBuild | null = null;
  #built: Promise<void> | null = null;

  /** Shards of a map created without a count. */
  static readonly DEFAULT_SHARDS = 256;

  /**
   * @param entries initial entries
   * @param shardCount a power of two from 1 to 65,536; part of the persisted layout
   */
  constructor(entries?: Iterable<readonly [string, V]> | null, shardCount = ShardedMap.DEFAULT_SHARDS) {
    if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > 65_536 || (shardCount & (shardCount - 1)) !== 0) {
      throw new RangeError(`ShardedMap: shard count must be a power of two from 1 to 65536, got ${shardCount}`);
    }
    this.#shards = Array.from({ length: shardCount }, () => new Map<string, V>());
    this.#mask = shardCount - 1;
    if (entries) for (const [k, v] of entries) this.set(k, v);
  }

  /**
   * Rebuilds a ShardedMap from its shards as {@link shards} returned them (the CBOR decoder uses
   * this). It adopts the given Maps, it does not copy them. Checks that every key is a string and sits in the shard its hash selects (about 25 ms
   * for a million keys), so a malformed layout is refused here instead of making keys silently
   * unreachable. Throws TypeError.
   */
  static fromShards<V>(shards: unknown): ShardedMap<V> {
    return ShardedMap.adoptShards(new ShardedMap<V>(null, 1), shards);
  }

  /**
   * {@link fromShards} into `m`, a map just created and still empty: how a subclass (the KV
   * store's {@link ExpiringMap}) is rebuilt from its shards without copying them.
   */
  static adoptShards<M extends ShardedMap<V>, V>(m: M, shards: unknown): M {
    if (!Array.isArray(shards)) throw new TypeError('ShardedMap: expected an array of shards');
    const n = shards.length;
    if (n < 1 || n > 65_536 || (n & (n - 1)) !== 0) throw new TypeError(`ShardedMap: shard count must be a power of two from 1 to 65536, got ${n}`);
    if (m.size !== 0) throw new TypeError('ShardedMap.adoptShards: the target map must be empty');
    const mask = n - 1;
    for (let i = 0; i < n; i++) {
      const shard: unknown = shards[i];
      if (!(shard instanceof Map)) throw new TypeError(`ShardedMap: shard ${i} is not a Map`);
      for (const key of shard.keys()) {
        if (typeof key !== 'string') throw new TypeError(`ShardedMap: shard ${i} has a non-string key`);
        if ((hashKey(key) & mask) !== i) throw new TypeError(`ShardedMap: key ${JSON.stringify(key.slice(0, 64))} is in shard ${i}, not where its hash puts it`);
      }
    }
    m.#shards = shards as Map<string, V>[];
    m.#mask = mask;
    return m;
  }

  /** Summed over the shards on each call (cheap next to keeping a count on every write). */
  get size(): number {
    let n = 0;
    for (const shard of this.#shards) n += shard.size;
    return n;
  }

  /** The shards, in order; read-only by contract (mutating them breaks the map). */
  get shards(): readonly ReadonlyMap<string, V>[] {
    return this.#shards;
  }

  get(key: string): V | undefined {
    return this.#shards[hashKey(key) & this.#mask]!.get(key);
  }

  has(key: string): boolean {
    return this.#shards[hashKey(key) & this.#mask]!.has(key);
  }

  /**
   * Throws TypeError for a key that is not a string or not well-formed UTF-16 (a lone
   * surrogate): CBOR would change such a key, so after a restart it would hash to another shard
   * and the snapshot holding it would be refused.
   */
  set(key: string, value: V): this {
    if (typeof key !== 'string') throw new TypeError('ShardedMap keys must be strings');
    if (!(key as WellFormed).isWellFormed()) throw new TypeError('ShardedMap keys must be well-formed UTF-16 (no lone surrogates): CBOR cannot carry them unchanged');
    const at = hashKey(key) & this.#mask;
    const shard = this.#shards[at]!;
    // Only a key that is new changes the index; the extra lookup is paid once an index exists.
    if ((this.#index || this.#build) && !shard.has(key)) {
      this.#index?.add(key);
      this.#build?.noteAdded(at, key);
    }
    shard.set(key, value);
    return this;
  }

  delete(key: string): boolean {
    const at = hashKey(key) & this.#mask;
    const deleted = this.#shards[at]!.delete(key);
    if (deleted) {
      this.#index?.delete(key);
      this.#build?.noteRemoved(at, key);
    }
    return deleted;
  }

  clear(): void {
    for (const shard of this.#shards) shard.clear();
    this.#index = null;
    // A build under way is abandoned; its waiters are let go (an empty map indexes at once).
    this.#build = null;
  }

  /**
   * Keys in ascending UTF-16 code unit order that start with `prefix`, after `after`
   * (exclusive) if given. Lazy, so a page of `limit` keys costs O(log n + limit). Without an
   * index yet (see {@link whenIndexed}), the first call builds it synchronously, finishing a
   * background build if one is under way: about 1 s for a million keys, once while the map
   * lives. Do not mutate the map while iterating.
   */
  *keysInOrder(prefix = '', after?: string): Generator<string> {
    yield* this.keysInRange({ prefix, after });
  }

  /**
   * The keys of `range` (prefix, `start` inclusive, `end` exclusive, the cursor `after`), in
   * ascending order or, with `reverse`, descending: lazy, from the ordered index, with the
   * costs of {@link keysInOrder}. Do not mutate the map while iterating.
   */
  *keysInRange(range: KeyRange): Generator<string> {
    if (!this.#index) {
      this.#index = this.#build ? this.#build.step(Infinity)! : SortedKeys.fromUnsorted([...this.keys()]);
      this.#build = null;
    }
    yield* keysOfRange(this.#index, range);
  }

  /**
   * Null when a range read ({@link keysInOrder}) can be served now at the cost of what it
   * returns: the index exists, or the map is small enough ({@link SYNC_INDEX_MAX_KEYS}) to build
   * it on the spot. Otherwise starts building the index in the background (slices of about
   * {@link INDEX_SLICE_MS} between other macrotasks, writes in between reflected) and returns a
   * promise that settles, never rejects, when it is done or abandoned (`clear`). The event loop
   * parks a range read on it (see `MachineDefinition.whenReady`) so the read never pays for the
   * build. Only when it is paid changes: never what any read returns.
   */
  whenIndexed(options: IndexingOptions = {}): Promise<void> | null {
    if (this.#index) return null;
    if (this.#build) return this.#built;
    if (this.size <= (options.syncMaxKeys ?? SYNC_INDEX_MAX_KEYS)) return null;
    const sliceMs = options.sliceMs ?? INDEX_SLICE_MS;
    const build = (this.#build = new IndexBuild(this.#shards, options));
    this.#built = new Promise<void>((resolve) => {
      const slice = (): void => {
        // Finished by a range read meanwhile, or abandoned.
        if (this.#build !== build) return resolve();
        let index: SortedKeys | null;
        try {
          index = build.step(sliceMs);
        } catch {
          // A bug here must not lose the read: it falls back to the synchronous build.
          this.#build = null;
          return resolve();
        }
        if (!index) return void setImmediate(slice);
        this.#index = index;
        this.#build = null;
        resolve();
      };
      setImmediate(slice);
    });
    return this.#built;
  }

  /** Whether the ordered index of {@link keysInOrder} has been built. */
  get indexed(): boolean {
    return this.#index !== null;
  }

  *entries(): IterableIterator<[string, V]> {
    for (const shard of this.#shards) yield* shard.entries();
  }

  *keys(): IterableIterator<string> {
    for (const shard of this.#shards) yield* shard.keys();
  }

  *values(): IterableIterator<V> {
    for (const shard of this.#shards) yield* shard.values();
  }

  forEach(fn: (value: V, key: string, map: ShardedMap<V>) => void, thisArg?: unknown): void {
    for (const shard of this.#shards) for (const [k, v] of shard) fn.call(thisArg, v, k, this);
  }

  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.entries();
  }

  get [Symbol.toStringTag](): string {
    return 'ShardedMap';
  }
}

/** A `Map` or a {@link ShardedMap}: what renders and snapshots like a map. */
export function isMapLike(value: unknown): value is ReadonlyMap<unknown, unknown> | ShardedMap<unknown> {
  return value instanceof Map || value instanceof ShardedMap;
}

/** `String.prototype.isWellFormed` (Node 20) is newer than this project's TypeScript lib. */
type WellFormed = string & { isWellFormed(): boolean };

/**
 * 32-bit FNV-1a over UTF-16 code units, then murmur3's finaliser so the low bits (which pick the
 * shard) depend on every character. Part of the persisted layout: changing it needs a state
 * version bump and a migration.
 */
export function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * CBOR tag of a ShardedMap: 0x53534d, "SSM" in ASCII. Not registered with IANA: a generic CBOR
 * decoder shows it as an unknown tag around an array of maps.
 */
export const SHARDED_MAP_TAG = 0x53534d;

addExtension({
  Class: ShardedMap,
  tag: SHARDED_MAP_TAG,
  // cbor-x passes its in-place writer here (the declared return type is nominal).
  encode: (instance: ShardedMap, encode: (value: unknown) => Uint8Array) => encode(instance.shards),
  decode: (shards: unknown) => ShardedMap.fromShards(shards),
});
