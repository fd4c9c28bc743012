/**
 * The 32-bit fingerprint of an idempotency key on a machine, as stored in
 * `idempotency_records.fingerprints`. Stored, so it must never change: FNV-1a over the UTF-16 code
 * units of the machine's name, a 0, and the key, then MurmurHash3's finalizer so that keys which
 * differ in their last characters spread over the whole range.
 */
export function keyFingerprint(machine: string, key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < machine.length; i++) h = Math.imul(h ^ machine.charCodeAt(i), 0x01000193);
  h = Math.imul(h, 0x01000193); // the 0 between them: ('ab', 'c') and ('a', 'bc') differ
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
