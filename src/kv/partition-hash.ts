/**
 * Which partition of a partitioned KV store ({@link openKV} with `partitions`) holds a key.
 *
 * This is part of the on-disk format: a key written to partition `i` is found again only if the
 * same key hashes to `i` on every later open. So the function is fixed, named in the store's
 * layout marker (see kv-layout.ts), and must never change for a given name; another hash would
 * need another name (and a store opened with it is refused, not misread).
 *
 * The hash is 32-bit FNV-1a over the key's UTF-8 bytes (keys are well-formed Unicode, checked
 * before routing), and the partition is that unsigned hash modulo the partition count. FNV-1a is
 * chosen because it is short enough to specify in one line and to reimplement in any language
 * (e.g. to count keys per partition outside this library), not for its statistical quality;
 * its low bits spread ordinary keys evenly enough for load balancing (test/kv-partitions.test.ts
 * checks the spread of 10,000 sequential keys).
 */

/** The name of the routing function, recorded in the layout marker of every partitioned store. */
export const PARTITION_HASH = 'fnv1a32';

/** Most partitions of one store; a larger count is refused with ConfigError. */
export const MAX_PARTITIONS = 4096;

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * 32-bit FNV-1a of the UTF-8 encoding of `key`, as an unsigned integer. Encodes on the fly (no
 * buffer per call: it runs on every request). A lone surrogate, which routing never sees, is
 * hashed as U+FFFD, as TextEncoder would encode it.
 * Test vectors: `''` → 0x811c9dc5, `'a'` → 0xe40c292c, `'foobar'` → 0xbf9cf968.
 */
export function fnv1a32(key: string): number {
  let h = FNV_OFFSET;
  const byte = (b: number): void => {
    h ^= b;
    h = Math.imul(h, FNV_PRIME);
  };
  for (let i = 0; i < key.length; i++) {
    let c = key.charCodeAt(i);
    if (c < 0x80) {
      byte(c);
      continue;
    }
    if (c < 0x800) {
      byte(0xc0 | (c >> 6));
      byte(0x80 | (c & 0x3f));
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const d = key.charCodeAt(i + 1);
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        byte(0xf0 | (c >> 18));
        byte(0x80 | ((c >> 12) & 0x3f));
        byte(0x80 | ((c >> 6) & 0x3f));
        byte(0x80 | (c & 0x3f));
        continue;
      }
      c = 0xfffd;
    }
    byte(0xe0 | (c >> 12));
    byte(0x80 | ((c >> 6) & 0x3f));
    byte(0x80 | (c & 0x3f));
  }
  return h >>> 0;
}

/** The partition (0..partitions-1) that holds `key`: `fnv1a32(key) % partitions`. */
export function partitionOf(key: string, partitions: number): number {
  return fnv1a32(key) % partitions;
}

/** Family name of the partitions: partition `i` is the entity `kv/p<i>`. */
export const PARTITION_FAMILY = 'kv';

/** The entity key of partition `i` (`p0`, `p1`, ...): its machine is `kv/p<i>`. */
export function partitionKey(i: number): string {
  return `p${i}`;
}

/** The machine name of partition `i`, as `ssm inspect` and the tables show it. */
export function partitionMachine(i: number): string {
  return `${PARTITION_FAMILY}/${partitionKey(i)}`;
}
