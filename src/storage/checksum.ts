import { createHash } from 'node:crypto';

/** The checksum stored with every snapshot: sha256 of its state bytes, as lowercase hex. */
export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
