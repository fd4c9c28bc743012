import { Encoder } from 'cbor-x';
import { assertNoAmplifyingTags } from './cbor-guard.js';
import { DecodeError, EncodeError } from './errors.js';
// Registers the ShardedMap CBOR extension before anything is encoded or decoded.
import './sharded-map.js';

/**
 * Turns wire bytes into a machine's inputs and its outputs back into bytes.
 * `decode` must throw on bad input; the engine wraps whatever it throws in a {@link DecodeError}.
 */
export interface Codec<I, O> {
  /** MIME type of the encoding, used by the HTTP endpoint. */
  readonly contentType: string;
  decode(bytes: Uint8Array): I;
  encode(output: O): Uint8Array;
}

/**
 * The one CBOR configuration used everywhere (wire, request log, snapshots): standard CBOR maps
 * for objects (no cbor-x record extension, so any CBOR decoder can read our data), tag 259 for
 * `Map` (cbor-x's default without records) so Maps and plain objects stay distinct, cbor-x's tags
 * for Set, Date, typed arrays and bigint, and this library's tag for {@link ShardedMap} (which a
 * generic decoder shows as an unknown tag around an array of maps).
 */
export const cbor = new Encoder({ useRecords: false });

/** Encodes with the shared CBOR configuration, returning a copy that later encodes cannot overwrite. */
export function encodeCbor(value: unknown): Uint8Array {
  return cbor.encode(value);
}

/** Decodes one CBOR item; trailing bytes, truncation and hostile nesting become {@link DecodeError}. */
export function decodeCbor(bytes: Uint8Array): unknown {
  try {
    return cbor.decode(bytes);
  } catch (err) {
    throw new DecodeError(`undecodable CBOR: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/**
 * The default codec: CBOR via cbor-x. Inputs using value sharing, packed-value tables, record
 * definitions or bignums over 1 KiB are refused (see {@link assertNoAmplifyingTags}): they could
 * turn a small request into a huge request-log entry or a long stall.
 */
export function cborCodec<I = unknown, O = unknown>(): Codec<I, O> {
  return {
    contentType: 'application/cbor',
    decode: (bytes) => {
      assertNoAmplifyingTags(bytes);
      return decodeCbor(bytes) as I;
    },
    encode: (output) => {
      try {
        return encodeCbor(output);
      } catch (err) {
        throw new EncodeError(`output not encodable as CBOR: ${String(err)}`, { cause: err });
      }
    },
  };
}

/**
 * `JSON.parse` for untrusted input, refusing objects with a `__proto__` key. JSON.parse makes
 * such a key an ordinary own property, but the CBOR decoder renames it to `__proto_` (cbor-x's
 * guard against prototype pollution), so the input would be logged as something that replays
 * differently and recovery would not reproduce the state. Throws {@link DecodeError}.
 */
export function parseUntrustedJson(text: string): unknown {
  return JSON.parse(text, refuseProtoKey);
}

function refuseProtoKey(key: string, value: unknown): unknown {
  if (key === '__proto__') throw new DecodeError('the JSON key "__proto__" is not accepted');
  return value;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

/** JSON codec (UTF-8). Invalid UTF-8 and invalid JSON become {@link DecodeError}. */
export function jsonCodec<I = unknown, O = unknown>(): Codec<I, O> {
  return {
    contentType: 'application/json',
    decode: (bytes) => {
      try {
        return parseUntrustedJson(utf8.decode(bytes)) as I;
      } catch (err) {
        throw new DecodeError(`undecodable JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    },
    encode: (output) => {
      const text = JSON.stringify(output, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
      return utf8Encoder.encode(text === undefined ? 'null' : text);
    },
  };
}
