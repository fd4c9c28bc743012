import { DecodeError } from './errors.js';

/**
 * A pre-decode check of untrusted CBOR (wire inputs) for the tags that let a small message
 * decode to a value whose plain encoding is huge.
 *
 * cbor-x understands value sharing (tags 28/29), packed values (tags 51 and 6), records (tags
 * 105 and 0xdff9..0xffff, which define property names once and reuse them) and bundled strings.
 * A state-changing input is re-encoded for the request log without any of these, so 100 KB of
 * shared references becomes a 200 MB log entry (and a 1 MiB request could need tens of GB).
 * This library's own encoder never writes these tags, so refusing them costs nothing
 * legitimate. Everything else (malformed or truncated bytes included) is left to the decoder.
 */
export function assertNoAmplifyingTags(bytes: Uint8Array): void {
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
    let arg: number;
    if (info < 24) arg = info;
    else if (info === 24) arg = bytes[pos++] ?? 0;
    else if (info === 25) {
      arg = ((bytes[pos] ?? 0) << 8) | (bytes[pos + 1] ?? 0);
      pos += 2;
    } else if (info === 26) {
      arg = (((bytes[pos] ?? 0) << 24) >>> 0) + (((bytes[pos + 1] ?? 0) << 16) | ((bytes[pos + 2] ?? 0) << 8) | (bytes[pos + 3] ?? 0));
      pos += 4;
    } else if (info === 27) {
      arg = ((bytes[pos] ?? 0) * 2 ** 24 + ((bytes[pos + 1] ?? 0) << 16) + ((bytes[pos + 2] ?? 0) << 8) + (bytes[pos + 3] ?? 0)) * 2 ** 32 + (((bytes[pos + 4] ?? 0) << 24) >>> 0) + (((bytes[pos + 5] ?? 0) << 16) | ((bytes[pos + 6] ?? 0) << 8) | (bytes[pos + 7] ?? 0));
      pos += 8;
    } else if (info === 31) arg = -1;
    else return; // reserved additional information: malformed, the decoder says so
    switch (major) {
      case 2:
      case 3:
        if (arg < 0) {
          outer.push(remaining);
          remaining = Number.POSITIVE_INFINITY;
        } else pos += arg;
        break;
      case 4:
      case 5:
        if (arg !== 0) {
          outer.push(remaining);
          remaining = arg < 0 ? Number.POSITIVE_INFINITY : major === 5 ? 2 * arg : arg;
        }
        break;
      case 6:
        if (amplifying(arg)) throw new DecodeError(`CBOR tag ${arg} (value sharing, packed values or records) is not accepted in inputs`);
        // The tagged item is the same item as the tag.
        if (remaining !== Number.POSITIVE_INFINITY) remaining++;
        break;
      default:
        break;
    }
  }
}

function amplifying(tag: number): boolean {
  return tag === 6 || tag === 28 || tag === 29 || tag === 51 || tag === 105 || (tag >= 0xdff9 && tag <= 0xffff);
}
