/** Longest identifier a caller or a step may give (idempotency keys, timer ids), in bytes of UTF-8. */
export const MAX_IDENTIFIER_BYTES = 1024;

/**
 * What is wrong with `value` as an identifier that is stored as SQLite TEXT and compared
 * exactly (a non-empty, well-formed string of at most {@link MAX_IDENTIFIER_BYTES}), or null.
 */
export function identifierProblem(what: string, value: unknown): string | null {
  if (typeof value !== 'string' || value === '') return `${what} must be a non-empty string`;
  // A lone surrogate would not survive the trip through UTF-8 TEXT: two ids could become one.
  if (/\p{Surrogate}/u.test(value)) return `${what} must be well-formed Unicode (no lone surrogates)`;
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > MAX_IDENTIFIER_BYTES) return `${what} must be at most ${MAX_IDENTIFIER_BYTES} bytes of UTF-8, got ${bytes}`;
  return null;
}
