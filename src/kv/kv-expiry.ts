/**
 * Time to live of KV keys: how expiry times enter the log, how reads stay exact, and how expired
 * keys are removed.
 *
 * - The clock is read once per request, at the door, outside the step (`stampKvInput`, the
 *   machine's `stamp`): a relative `ttlMs` becomes an absolute `expiresAt` (ms since the epoch),
 *   and every input whose answer or effect depends on expiry carries that `now`. Both are logged
 *   with the input, so replay takes the same decisions whatever the time of the replay.
 * - Exactness: every step judges a key against its input's `now` ({@link isLive}): a key whose
 *   `expiresAt <= now` is absent to every read and every conditional write, even before it has
 *   been removed.
 * - Removal: one durable timer per machine (id {@link EXPIRY_TIMER}), due at the soonest expiry
 *   rounded up to {@link REMOVAL_GRANULARITY_MS}; its delivery (`{ op: 'removeExpired', upTo }`,
 *   a logged request like any other) deletes at most {@link MAX_REMOVALS_PER_STEP} keys due by
 *   `upTo` and sets the timer again for what is left. However many keys expire, that is at most
 *   1000 / {@link REMOVAL_GRANULARITY_MS} wakeups a second (more only while a backlog drains, one
 *   bounded step each). The timer is in the timers table, so removal survives a crash.
 */
import { setTimer, type TimerCommand } from '../model/machine.js';
import { isExpiryTime, MAX_EXPIRY_MS } from '../encoding/expiring-map.js';

/** Timer id of the removal of expired keys (one per KV machine). */
export const EXPIRY_TIMER = 'kv:expire';

/** Removal runs at multiples of this many ms: keys expiring within one such window go together. */
export const REMOVAL_GRANULARITY_MS = 100;

/** Most keys one removal step deletes: the step, its commit and its kv_entries rows stay short. */
export const MAX_REMOVALS_PER_STEP = 2000;

/** Longest `ttlMs` accepted: about 100 years (a time to live, not a date). */
export const MAX_TTL_MS = 100 * 365.25 * 24 * 3600 * 1000;

/** What the KV step needs of its state for expiry; a plain Map (models in tests) has none of it. */
export interface ExpiryTable {
  has(key: string): boolean;
  expiresAt?(key: string): number | undefined;
  isLive?(key: string, now: number | undefined): boolean;
  setExpiry?(key: string, at: number | undefined): void;
  soonestExpiry?(): number | undefined;
  due?(upTo: number, max: number): string[];
  expiredCount?(now: number | undefined): number;
  /** Keys with an expiry time, expired or not. */
  readonly expiringCount?: number;
  delete(key: string): boolean;
}

/** Whether `key` is present and, at `now`, not expired (`now` undefined: nothing has expired). */
export function isLive(table: ExpiryTable, key: string, now: number | undefined): boolean {
  return table.isLive ? table.isLive(key, now) : table.has(key);
}

/** Sets (or with undefined clears) a present key's expiry; a table without expiries refuses a time. */
export function setExpiry(table: ExpiryTable, key: string, at: number | undefined): void {
  if (table.setExpiry) table.setExpiry(key, at);
  else if (at !== undefined) throw new TypeError('this KV table cannot hold expiry times (it is not an ExpiringMap)');
}

/** The expiry time of a key, undefined when it has none. */
export function expiryOf(table: ExpiryTable, key: string): number | undefined {
  return table.expiresAt?.(key);
}

/**
 * PTTL's answer for `key` at `now`: the ms left (at least 1), -1 for a live key without expiry,
 * -2 for a missing (or expired) one.
 */
export function remainingMs(table: ExpiryTable, key: string, now: number | undefined): number {
  if (!isLive(table, key, now)) return -2;
  const at = expiryOf(table, key);
  if (at === undefined) return -1;
  return now === undefined ? at : at - now;
}

/**
 * A removal step: deletes the keys expired by `upTo` (soonest first, at most
 * {@link MAX_REMOVALS_PER_STEP}); answers how many.
 */
export function removeExpired(table: ExpiryTable, upTo: number): number {
  const keys = table.due?.(upTo, MAX_REMOVALS_PER_STEP) ?? [];
  for (const k of keys) table.delete(k);
  return keys.length;
}

/** The keys a removal step at `upTo` deletes (for the kv_entries rows; the same as the step). */
export function keysToRemove(table: ExpiryTable, upTo: number): string[] {
  return table.due?.(upTo, MAX_REMOVALS_PER_STEP) ?? [];
}

/** The removal timer's due time for the soonest expiry `at`: the next multiple of the granularity. */
export function removalTime(at: number): number {
  return Math.min(Math.ceil(at / REMOVAL_GRANULARITY_MS) * REMOVAL_GRANULARITY_MS, MAX_EXPIRY_MS);
}

/**
 * The removal timer a state-changing step must set, or null: when some key expires before the
 * timer this machine last set (`scheduled`, undefined when unknown or consumed). A timer left
 * due earlier than needed is harmless: its delivery removes nothing and sets the next one.
 */
export function removalTimer(table: ExpiryTable, scheduled: number | undefined): { readonly at: number; readonly command: TimerCommand } | null {
  const soonest = table.soonestExpiry?.();
  if (soonest === undefined) return null;
  const at = removalTime(soonest);
  if (scheduled !== undefined && scheduled <= at) return null;
  return { at, command: setTimer(EXPIRY_TIMER, { op: 'removeExpired', upTo: at }, { at }) };
}

/** Checks a `ttlMs`: a positive integer of ms, at most {@link MAX_TTL_MS}. Throws TypeError. */
export function checkTtlMs(ttlMs: unknown, what = 'ttlMs'): number {
  if (typeof ttlMs !== 'number' || !Number.isSafeInteger(ttlMs) || ttlMs <= 0 || ttlMs > MAX_TTL_MS) {
    throw new TypeError(`"${what}" must be a positive integer number of ms (at most ${MAX_TTL_MS}), got ${describeValue(ttlMs)}`);
  }
  return ttlMs;
}

/** Checks an `expiresAt`: an integer number of ms since the epoch, 0 to 8.64e15. Throws TypeError. */
export function checkExpiresAt(at: unknown, what = 'expiresAt'): number {
  if (!isExpiryTime(at)) throw new TypeError(`"${what}" must be an integer number of ms since the epoch (0 to ${MAX_EXPIRY_MS}), got ${describeValue(at)}`);
  return at;
}

function describeValue(v: unknown): string {
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  return typeof v === 'string' ? JSON.stringify(v.slice(0, 32)) : typeof v;
}

/**
 * EXPIRE's condition, as Redis's NX, XX, GT, LT (and XX with GT or LT): `nx` only a key without
 * an expiry, `xx` only one with, `gt`/`lt` only a later/earlier time than the key's, a key
 * without expiry counting as expiring never (so `gt` never holds for it and `lt` always does).
 */
export const EXPIRE_CONDITIONS = ['nx', 'xx', 'gt', 'lt', 'xx-gt', 'xx-lt'] as const;
export type ExpireCondition = (typeof EXPIRE_CONDITIONS)[number];

/** Whether EXPIRE with condition `when` sets `next` on a key whose expiry is `current`. */
export function expireConditionHolds(when: ExpireCondition, current: number | undefined, next: number): boolean {
  switch (when) {
    case 'nx':
      return current === undefined;
    case 'xx':
      return current !== undefined;
    case 'gt':
    case 'xx-gt':
      return current !== undefined && next > current;
    case 'lt':
      return current === undefined || next < current;
    case 'xx-lt':
      return current !== undefined && next < current;
  }
}
