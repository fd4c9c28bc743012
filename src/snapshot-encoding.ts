import { cbor, encodeCbor } from './codec.js';

/**
 * Encodes a machine's state for a snapshot, in slices, so that a large state does not block
 * the Node.js event loop for the whole encoding: the caller yields between slices.
 *
 * A `Map` larger than one slice is written as CBOR tag 259 around an indefinite-length map
 * (RFC 8949 §3.2.2), its entries encoded a slice at a time; any CBOR decoder (and cbor-x, which
 * turns tag 259 back into a `Map`) reads it as the same Map a one-shot encode would give.
 * Any other state is encoded in one go.
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

/** The encoded state, as a sequence of byte chunks to concatenate. */
export function* encodeStateSlices(state: unknown, sliceEntries = SLICE_ENTRIES): Generator<Uint8Array> {
  if (!(state instanceof Map) || state.size <= sliceEntries) {
    yield encodeCbor(state);
    return;
  }
  yield MAP_START;
  let pairs: unknown[] = [];
  for (const [k, v] of state as Map<unknown, unknown>) {
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
