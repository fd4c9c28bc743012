/** Longest identifier a caller or a step may give (idempotency keys, timer ids), in bytes of UTF-8. */
export const MAX_IDENTIFIER_BYTES = 1024;

/** Whether a string is valid Unicode (no lone surrogates), i.e. survives UTF-8 unchanged (String.prototype.isWellFormed, not in this TypeScript lib yet). */
export function isWellFormed(s: string): boolean {
  return (s as string & { isWellFormed(): boolean }).isWellFormed();
}

/**
 * What is wrong with `value` as an identifier that is stored as SQLite TEXT and compared
 * exactly (a non-empty, well-formed string of at most {@link MAX_IDENTIFIER_BYTES}), or null.
 */
export function identifierProblem(what: string, value: unknown): string | null {
  if (typeof value !== 'string' || value === '') return `${what} must be a non-empty string`;
  // A lone surrogate would not survive the trip through UTF-8 TEXT: two ids could become one.
  if (!isWellFormed(value)) return `${what} must be well-formed Unicode (no lone surrogates)`;
  // Checked on every keyed request: a UTF-16 unit is at most 3 bytes of UTF-8, so most keys need no count.
  if (value.length * 3 <= MAX_IDENTIFIER_BYTES) return null;
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > MAX_IDENTIFIER_BYTES) return `${what} must be at most ${MAX_IDENTIFIER_BYTES} bytes of UTF-8, got ${bytes}`;
  return null;
}
