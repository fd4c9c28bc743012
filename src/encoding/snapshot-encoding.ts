import { cbor } from './cbor.js';
import { EXPIRING_MAP_TAG, ExpiringMap } from './expiring-map.js';
import { SHARDED_MAP_TAG, ShardedMap, isMapLike } from './sharded-map.js';

/**
 * Encodes a machine's state for a snapshot, in slices, so that a large state does not block
 * the Node.js event loop for the whole encoding: the caller yields between slices.
 *
 * A `Map` larger than one slice is written as CBOR tag 259 around an indefinite-length map
 * (RFC 8949 §3.2.2), its entries encoded a slice at a time; any CBOR decoder (and cbor-x, which
 * turns tag 259 back into a `Map`) reads it as the same Map a one-shot encode would give.
 * A {@link ShardedMap} larger than one slice is written as its tag and array head, then its
 * shards grouped into slices of about `sliceEntries` entries (a shard larger than that is
 * sliced like a Map); an {@link ExpiringMap} likewise, inside its own tag, followed by its
 * expiry times (sliced like a Map when many). Any other state is encoded in one go.
 */

/** Map entries per slice: about 30 ms of encoding on this project's reference machine. */
export const SLICE_ENTRIES = 65_536;

const MAP_START = Uint8Array.of(0xd9, 0x01, 0x03, 0xbf); // tag 259, indefinite-length map
const BREAK = Uint8Array.of(0xff);

/** Length of the head of a CBOR array item (major type 4), from its first byte. */
function arrayHeadLength(first: number): number {
  const info = first & 0x1f;
  if (first >> 5 !== 4 || info > 27) throw new Error(`not a definite-length CBOR array head: 0x${first.toString(16)}`);
  return info < 24 ? 1 : info === 24 ? 2 : info === 25 ? 3 : info === 26 ? 5 : 9;
}

/** Entries a state holds for slicing purposes: those of a Map or ShardedMap, else 0. */
export function stateEntries(state: unknown): number {
  return isMapLike(state) ? state.size : 0;
}

/** The encoded state, as a sequence of byte chunks to concatenate. */
export function* encodeStateSlices(state: unknown, sliceEntries = SLICE_ENTRIES): Generator<Uint8Array> {
  if (stateEntries(state) <= sliceEntries) {
    yield cbor.encode(state);
  } else if (state instanceof ExpiringMap) {
    // Its tag around [shards, expiries]: the same bytes its CBOR extension writes in one go.
    yield Buffer.concat([head(6, EXPIRING_MAP_TAG), head(4, 2)]);
    yield* shardedSlices(state, sliceEntries, false);
    const expiries = state.expiries;
    if (expiries.size <= sliceEntries) yield cbor.encode(expiries);
    else yield* mapSlices(expiries, sliceEntries);
  } else if (state instanceof ShardedMap) {
    yield* shardedSlices(state, sliceEntries);
  } else {
    yield* mapSlices(state as Map<unknown, unknown>, sliceEntries);
  }
}

/** CBOR head (major type, argument) as bytes. */
function head(major: number, n: number): Uint8Array {
  const m = major << 5;
  if (n < 24) return Uint8Array.of(m | n);
  if (n < 0x100) return Uint8Array.of(m | 24, n);
  if (n < 0x10000) return Uint8Array.of(m | 25, n >> 8, n & 0xff);
  return Uint8Array.of(m | 26, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
}

/** A ShardedMap's tag (unless `tagged` is false: just its array of shards) and shards, in slices. */
function* shardedSlices(state: ShardedMap, sliceEntries: number, tagged = true): Generator<Uint8Array> {
  const shards = state.shards;
  yield tagged ? Buffer.concat([head(6, SHARDED_MAP_TAG), head(4, shards.length)]) : head(4, shards.length);
  let group: ReadonlyMap<string, unknown>[] = [];
  let entries = 0;
  const flush = function* (): Generator<Uint8Array> {
    if (group.length === 0) return;
    const bytes = cbor.encode(group);
    yield bytes.subarray(arrayHeadLength(bytes[0]!));
    group = [];
    entries = 0;
  };
  for (const shard of shards) {
    if (shard.size > sliceEntries) {
      yield* flush();
      yield* mapSlices(shard, sliceEntries);
      continue;
    }
    if (entries + shard.size > sliceEntries) yield* flush();
    group.push(shard);
    entries += shard.size;
  }
  yield* flush();
}

function* mapSlices(state: ReadonlyMap<unknown, unknown>, sliceEntries: number): Generator<Uint8Array> {
  yield MAP_START;
  let pairs: unknown[] = [];
  for (const [k, v] of state) {
    pairs.push(k, v);
    if (pairs.length >= 2 * sliceEntries) {
      const bytes = cbor.encode(pairs);
      yield bytes.subarray(arrayHeadLength(bytes[0]!));
      pairs = [];
    }
  }
  if (pairs.length > 0) {
    const bytes = cbor.encode(pairs);
    yield bytes.subarray(arrayHeadLength(bytes[0]!));
  }
  yield BREAK;
}
