import { Encoder } from 'cbor-x';
import { DecodeError } from '../errors.js';
// Registers the ShardedMap and ExpiringMap CBOR extensions before anything is encoded or decoded.
import './sharded-map.js';
import './expiring-map.js';

/**
 * The one CBOR configuration used everywhere (wire, request log, snapshots): standard CBOR maps
 * for objects (no cbor-x record extension, so any CBOR decoder can read our data), tag 259 for
 * `Map` (cbor-x's default without records) so Maps and plain objects stay distinct, cbor-x's tags
 * for Set, Date, typed arrays and bigint, and this library's tag for {@link ShardedMap} (which a
 * generic decoder shows as an unknown tag around an array of maps). `cbor.encode` returns a copy
 * that later encodes cannot overwrite.
 */
export const cbor = new Encoder({ useRecords: false });

/** Decodes one CBOR item; trailing bytes, truncation and hostile nesting become {@link DecodeError}. */
export function decodeCbor(bytes: Uint8Array): unknown {
  try {
    return cbor.decode(bytes);
  } catch (err) {
    throw new DecodeError(`undecodable CBOR: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}
