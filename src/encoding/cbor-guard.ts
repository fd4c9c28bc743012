import { isUtf8 } from 'node:buffer';
import { DecodeError } from '../errors.js';

/** Largest bignum (tags 2 and 3) accepted in inputs, in bytes: 8,192 bits. */
export const MAX_BIGNUM_BYTES = 1024;

/**
 * Deepest nesting of arrays, maps and tags accepted in a state-changing input. cbor-x encodes
 * recursively and overflows the stack near 1,800 levels; an input is stored inside a state
 * (a KV value sits 3 levels down in its ShardedMap), and every snapshot encodes that state, so
 * an input accepted deeper than this could make every later snapshot fail. 256 leaves a margin
 * of over 1,500 levels for the state's own structure.
 */
export const MAX_NESTING = 256;

/**
 * A pre-decode check of untrusted CBOR (wire inputs) for what makes a small message expensive.
 *
 * - cbor-x understands value sharing (tags 28/29), packed-value tables (tag 51) and record
 *   definitions (tags 105, 0xdffe, 0xdfff: property names defined once and reused). A
 *   state-changing input is re-encoded for the request log without any of these, so 100 KB of
 *   shared references becomes a 200 MB log entry (and a 1 MiB request could need tens of GB).
 *   This library's own encoder never writes these tags. Without a table or a definition, the
 *   tags that would refer to one (6, 0xe000..0xffff) decode as inert `Tag` objects, so they
 *   pass.
 * - cbor-x converts bignums (tags 2/3) to and from BigInt in time quadratic in their length: a
 *   256 KiB one takes about 36 s to decode. Bignums above {@link MAX_BIGNUM_BYTES} are refused.
 *
 * - Text strings must be valid UTF-8 (RFC 8949 §3.1): the decoder would replace invalid bytes
 *   with U+FFFD, so two different keys could arrive as one.
 * - Arrays, maps and tags may nest at most {@link MAX_NESTING} levels.
 *
 * Refusals are DecodeErrors. Everything else (malformed or truncated bytes included) is left
 * to the decoder. The walk is iterative and linear in the input.
 */
export function assertNoAmplifyingTags(bytes: Uint8Array): void {
  walk(bytes, true);
}

/**
 * Refuses CBOR nested deeper than {@link MAX_NESTING} with a {@link DecodeError}: the check every
 * logged input passes, whatever path it came by, so that what is accepted stays snapshottable.
 */
export function assertNestingWithinLimit(bytes: Uint8Array): void {
  walk(bytes, false);
}

/** The refusal of an input nested deeper than {@link MAX_NESTING}. */
export function nestingLimitError(): DecodeError {
  return new DecodeError(`input nested more than ${MAX_NESTING} levels deep (arrays, maps and tags), or cyclic; the limit keeps every state snapshottable`);
}

function walk(bytes: Uint8Array, checkTags: boolean): void {
  const end = bytes.length;
  let pos = 0;
  // Items still to read at the current nesting level (Infinity: indefinite length, until 0xff).
  let remaining = 1;
  const outer: number[] = [];
  for (;;) {
    if (remaining === 0) {
      if (outer.length === 0) return;
      remaining = outer.pop()!;
      continue;
    }
    if (pos >= end) return;
    const initial = bytes[pos++]!;
    if (initial === 0xff) {
      if (remaining !== Number.POSITIVE_INFINITY) return;
      remaining = 0;
      continue;
    }
    if (remaining !== Number.POSITIVE_INFINITY) remaining--;
    const major = initial >> 5;
    const info = initial & 0x1f;
    const arg = readArgument(bytes, pos, info);
    if (Number.isNaN(arg)) return; // reserved additional information: malformed, the decoder says so
    pos += ARGUMENT_BYTES[info] ?? 0;
    switch (major) {
      case 2:
      case 3:
        if (arg < 0) {
          outer.push(remaining);
          remaining = Number.POSITIVE_INFINITY;
        } else {
          // The decoder would replace invalid UTF-8 with U+FFFD: a key would silently become another.
          if (checkTags && major === 3 && !isUtf8(bytes.subarray(pos, pos + arg))) throw new DecodeError('CBOR text string is not valid UTF-8');
          pos += arg;
        }
        break;
      case 4:
      case 5:
        if (arg !== 0) {
          if (outer.length >= MAX_NESTING) throw nestingLimitError();
          outer.push(remaining);
          remaining = arg < 0 ? Number.POSITIVE_INFINITY : major === 5 ? 2 * arg : arg;
        }
        break;
      case 6:
        if (checkTags && amplifying(arg)) throw new DecodeError(`CBOR tag ${arg} (value sharing, packed-value tables or record definitions) is not accepted in inputs`);
        if (checkTags && (arg === 2 || arg === 3)) checkBignum(bytes, pos);
        // A tag nests its item one level deeper when decoded (a Tag object, or the value it
        // stands for): it counts against the nesting limit like an array of one.
        if (outer.length >= MAX_NESTING) throw nestingLimitError();
        outer.push(remaining);
        remaining = 1;
        break;
      default:
        break;
    }
  }
}

/** Bytes of argument after the initial byte, by additional information (24..27). */
const ARGUMENT_BYTES: readonly number[] = Object.assign(new Array<number>(32).fill(0), { 24: 1, 25: 2, 26: 4, 27: 8 });

/**
 * The argument of a head whose initial byte had additional information `info`, read from the
 * bytes at `pos` (missing bytes read as 0: truncation is the decoder's to report). -1 for an
 * indefinite length, NaN for the reserved values 28..30.
 */
function readArgument(bytes: Uint8Array, pos: number, info: number): number {
  const b = (i: number): number => bytes[pos + i] ?? 0;
  if (info < 24) return info;
  if (info === 24) return b(0);
  if (info === 25) return (b(0) << 8) | b(1);
  if (info === 26) return b(0) * 2 ** 24 + ((b(1) << 16) | (b(2) << 8) | b(3));
  if (info === 27) return (b(0) * 2 ** 24 + ((b(1) << 16) | (b(2) << 8) | b(3))) * 2 ** 32 + b(4) * 2 ** 24 + ((b(5) << 16) | (b(6) << 8) | b(7));
  return info === 31 ? -1 : Number.NaN;
}

/** The content of a bignum tag must be a definite byte string of at most MAX_BIGNUM_BYTES. */
function checkBignum(bytes: Uint8Array, pos: number): void {
  const head = bytes[pos];
  if (head === undefined) return;
  // A length head longer than 2 bytes is refused too: no byte string of 1 KiB needs one.
  const info = head & 0x1f;
  const length = info > 25 ? Number.NaN : readArgument(bytes, pos + 1, info);
  if (head >> 5 !== 2 || !(length >= 0 && length <= MAX_BIGNUM_BYTES)) {
    throw new DecodeError(`CBOR bignums (tags 2 and 3) must be byte strings of at most ${MAX_BIGNUM_BYTES} bytes`);
  }
}

function amplifying(tag: number): boolean {
  return tag === 28 || tag === 29 || tag === 51 || tag === 105 || tag === 0xdffe || tag === 0xdfff;
}
