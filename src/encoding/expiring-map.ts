import { addExtension } from 'cbor-x';
import { ShardedMap } from './sharded-map.js';
import { SortedKeys } from './sorted-keys.js';

/** Width of the decimal expiry time that heads an entry of the expiry index (8.64e15 has 16 digits). */
const AT_DIGITS = 16;
/** Latest expiry time accepted: the latest instant a Date holds (ms since the epoch). */
export const MAX_EXPIRY_MS = 8.64e15;

/** An expiry index entry: the time, zero-padded so string order is time order, then the key. */
const indexEntry = (at: number, key: string): string => `${String(at).padStart(AT_DIGITS, '0')}\u0000${key}`;
const entryTime = (entry: string): number => Number(entry.slice(0, AT_DIGITS));
const entryKey = (entry: string): string => entry.slice(AT_DIGITS + 1);

/** Whether `at` can be an expiry time: an integer number of ms since the epoch, 0 to {@link MAX_EXPIRY_MS}. */
export function isExpiryTime(at: unknown): at is number {
  return typeof at === 'number' && Number.isSafeInteger(at) && at >= 0 && at <= MAX_EXPIRY_MS;
}

/**
 * The KV store's state: a {@link ShardedMap} of values whose keys may also carry an expiry time
 * (ms since the epoch). Why a subclass: everything that reads a KV state as a map (ssm inspect,
 * kv_entries, range reads, JSON rendering) keeps working unchanged, and a key without expiry
 * costs nothing more.
 *
 * The map itself never looks at a clock: whether a key has expired is asked with a time given
 * by the caller ({@link isLive}), which for a machine step is the `now` its input carries. An
 * expired key stays until it is deleted (by a logged request: see src/kv/kv-expiry.ts).
 *
 * Expiry is metadata of a key, so: `delete` and `clear` drop it; `set` keeps it (a value
 * rewritten by INCR or APPEND keeps its time to live, as in Redis); {@link setExpiry} changes it.
 *
 * CBOR: tag {@link EXPIRING_MAP_TAG} around `[shards, expiries]`, the shards as ShardedMap
 * writes them (an array of Maps) and the expiries a Map from key to time. The ordered expiry
 * index is derived (rebuilt on decode), never persisted.
 */
export class ExpiringMap<V = unknown> extends ShardedMap<V> {
  /** key -> expiry time, for keys that have one. */
  #expiry = new Map<string, number>();
  /** The same pairs in time order (see {@link indexEntry}): soonest expiry and the keys due. */
  #byTime = new SortedKeys();

  /** Rebuilds an ExpiringMap from the parts its CBOR form holds; throws TypeError when they do not fit. */
  static fromParts<V>(shards: unknown, expiries: unknown): ExpiringMap<V> {
    const m = ShardedMap.adoptShards(new ExpiringMap<V>(null, 1), shards);
    if (!(expiries instanceof Map)) throw new TypeError('ExpiringMap: expected a Map of expiry times');
    const entries: string[] = [];
    for (const [key, at] of expiries as Map<unknown, unknown>) {
      if (typeof key !== 'string' || !m.has(key)) throw new TypeError(`ExpiringMap: an expiry time for a key that is not in the map: ${JSON.stringify(String(key).slice(0, 64))}`);
      if (!isExpiryTime(at)) throw new TypeError(`ExpiringMap: the expiry time of ${JSON.stringify(key.slice(0, 64))} is not a valid time`);
      entries.push(indexEntry(at, key));
    }
    m.#expiry = expiries as Map<string, number>;
    m.#byTime = SortedKeys.fromUnsorted(entries);
    return m;
  }

  /** Adopts the shards of a plain ShardedMap (a KV state of version 2), with no expiries. */
  static fromShardedMap<V>(map: ShardedMap<V>): ExpiringMap<V> {
    return ShardedMap.adoptShards(new ExpiringMap<V>(null, 1), map.shards);
  }

  /** The expiry time of `key` (ms since the epoch), undefined when it has none (or is absent). */
  expiresAt(key: string): number | undefined {
    return this.#expiry.size === 0 ? undefined : this.#expiry.get(key);
  }

  /** Whether `key` is present and not expired at `now`; `now` undefined: nothing has expired. */
  isLive(key: string, now: number | undefined): boolean {
    if (!this.has(key)) return false;
    if (now === undefined || this.#expiry.size === 0) return true;
    const at = this.#expiry.get(key);
    return at === undefined || at > now;
  }

  /** Gives a present key the expiry time `at`, or none (undefined). Throws TypeError for an absent key or a bad time. */
  setExpiry(key: string, at: number | undefined): void {
    const old = this.#expiry.get(key);
    if (old === at) return;
    if (at !== undefined) {
      if (!this.has(key)) throw new TypeError(`ExpiringMap: no key ${JSON.stringify(key.slice(0, 64))} to set an expiry on`);
      if (!isExpiryTime(at)) throw new TypeError(`ExpiringMap: not a valid expiry time: ${String(at)}`);
    }
    if (old !== undefined) this.#byTime.delete(indexEntry(old, key));
    if (at === undefined) {
      this.#expiry.delete(key);
    } else {
      this.#expiry.set(key, at);
      this.#byTime.add(indexEntry(at, key));
    }
  }

  override delete(key: string): boolean {
    if (this.#expiry.size > 0) this.setExpiry(key, undefined);
    return super.delete(key);
  }

  override clear(): void {
    super.clear();
    this.#expiry.clear();
    this.#byTime = new SortedKeys();
  }

  /** Keys with an expiry time. */
  get expiringCount(): number {
    return this.#expiry.size;
  }

  /** The soonest expiry time, undefined when no key has one. */
  soonestExpiry(): number | undefined {
    const first = this.#byTime.from(undefined).next();
    return first.done ? undefined : entryTime(first.value);
  }

  /** Keys expired at `upTo` (expiry time `<= upTo`), soonest first, at most `max`. */
  due(upTo: number, max: number): string[] {
    const out: string[] = [];
    if (max <= 0) return out;
    for (const e of this.#byTime.from(undefined)) {
      if (entryTime(e) > upTo) break;
      out.push(entryKey(e));
      if (out.length >= max) break;
    }
    return out;
  }

  /** How many keys have expired at `now` but are still here: what `size` must not count. */
  expiredCount(now: number | undefined): number {
    if (now === undefined || this.#expiry.size === 0) return 0;
    let n = 0;
    for (const e of this.#byTime.from(undefined)) {
      if (entryTime(e) > now) break;
      n++;
    }
    return n;
  }

  /** The expiry times, key -> ms (read-only by contract): what the CBOR form carries. */
  get expiries(): ReadonlyMap<string, number> {
    return this.#expiry;
  }

  override get [Symbol.toStringTag](): string {
    return 'ExpiringMap';
  }
}

/** CBOR tag of an ExpiringMap: 0x53534b, "SSK" in ASCII (beside ShardedMap's "SSM"). Not registered with IANA. */
export const EXPIRING_MAP_TAG = 0x53534b;

// Registered after ShardedMap's extension: cbor-x tries the latest first, so an ExpiringMap is
// encoded with its own tag, not as the ShardedMap it also is.
addExtension({
  Class: ExpiringMap,
  tag: EXPIRING_MAP_TAG,
  encode: (instance: ExpiringMap, encode: (value: unknown) => Uint8Array) => encode([instance.shards, instance.expiries]),
  decode: (parts: unknown) => {
    if (!Array.isArray(parts) || parts.length !== 2) throw new TypeError('ExpiringMap: expected [shards, expiries]');
    return ExpiringMap.fromParts(parts[0], parts[1]);
  },
});
