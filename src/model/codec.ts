import { assertNoAmplifyingTags } from '../encoding/cbor-guard.js';
import { cbor, decodeCbor } from '../encoding/cbor.js';
import { parseUntrustedJson, toJson } from '../encoding/json.js';
import { DecodeError, EncodeError } from '../errors.js';

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
        return cbor.encode(output);
      } catch (err) {
        throw new EncodeError(`output not encodable as CBOR: ${String(err)}`, { cause: err });
      }
    },
  };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

/**
 * JSON codec (UTF-8). Invalid UTF-8 and invalid JSON become {@link DecodeError}; outputs are
 * rendered by the library's one JSON rendering ({@link toJson}), so a `Map` output is an object.
 */
export function jsonCodec<I = unknown, O = unknown>(): Codec<I, O> {
  return {
    contentType: 'application/json',
    decode: (bytes) => {
      try {
        return parseUntrustedJson(utf8.decode(bytes)) as I;
      } catch (err) {
        throw err instanceof DecodeError ? err : new DecodeError(`undecodable JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    },
    encode: (output) => utf8Encoder.encode(toJson(output)),
  };
}
