import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/**
 * Checks `Authorization: Bearer <token>` against the configured token in constant time: both
 * sides are hashed to 32 bytes first, so neither the comparison nor a length check leaks how
 * much of the token a guess got right.
 */
export function bearerChecker(token: string): (authorization: string | undefined) => boolean {
  const expected = digest(token);
  return (authorization) => {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '');
    // Hash something even when the header is missing or malformed: same work on every path.
    const given = digest(m ? m[1]! : '');
    return timingSafeEqual(given, expected) && m !== null;
  };
}
