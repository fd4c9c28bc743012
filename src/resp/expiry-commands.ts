/**
 * Time to live over RESP: TTL, PTTL, EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, PERSIST, answered as
 * Redis answers them (TTL -2 for a missing key, -1 for one without expiry). Each is one request
 * of the KV machine's expiry ops; the clock is read at the machine's door (see
 * src/kv/kv-expiry.ts), so a key expired is absent at once, removed or not.
 */
import { MAX_EXPIRY_MS } from '../encoding/expiring-map.js';
import { error, int, type Reply } from './encoder.js';
import { ReplyError, expiryArg, handlersOf, intArg, keyOf, type Handler, type Planner } from './string-commands.js';

const intReply = (n: unknown): Reply => int(n as number);
const boolReply = (b: unknown): Reply => int(b ? 1 : 0);

/** TTL's seconds: Redis rounds the remaining ms to the nearest second. */
const seconds = (ms: unknown): Reply => {
  const n = ms as number;
  return int(n < 0 ? n : Math.floor((n + 500) / 1000));
};

/** EXPIRE's NX/XX/GT/LT are refused rather than ignored: a condition silently dropped would change what the command does. */
function noOptions(a: readonly Buffer[], name: string): void {
  if (a.length > 3) throw new ReplyError(error(`ERR ${name.toUpperCase()} options (NX, XX, GT, LT) are not supported`));
}

/** EXPIRE and PEXPIRE: a time to live; zero or negative deletes the key, as Redis does. */
const expireIn = (unit: number, name: string): Planner => (_s, a) => {
  noOptions(a, name);
  const key = keyOf(a[1]!);
  if (intArg(a[2]!) <= 0n) return { input: { op: 'expire', key, expiresAt: 0 }, reply: boolReply };
  return { input: { op: 'expire', key, ttlMs: expiryArg(a[2]!, unit, name) }, reply: boolReply };
};

/** EXPIREAT and PEXPIREAT: an absolute time (a past one deletes the key). */
const expireAt = (unit: number, name: string): Planner => (_s, a) => {
  noOptions(a, name);
  const key = keyOf(a[1]!);
  const at = intArg(a[2]!);
  if (at <= 0n) return { input: { op: 'expire', key, expiresAt: 0 }, reply: boolReply };
  return { input: { op: 'expire', key, expiresAt: expiryArg(a[2]!, unit, name, MAX_EXPIRY_MS) }, reply: boolReply };
};

export const EXPIRY_PLANS: Record<string, readonly [number, Planner]> = {
  ttl: [2, (_s, a) => ({ input: { op: 'ttl', key: keyOf(a[1]!) }, reply: seconds })],
  pttl: [2, (_s, a) => ({ input: { op: 'ttl', key: keyOf(a[1]!) }, reply: intReply })],
  expire: [-3, expireIn(1000, 'expire')],
  pexpire: [-3, expireIn(1, 'pexpire')],
  expireat: [-3, expireAt(1000, 'expireat')],
  pexpireat: [-3, expireAt(1, 'pexpireat')],
  persist: [2, (_s, a) => ({ input: { op: 'persist', key: keyOf(a[1]!) }, reply: boolReply })],
};

export const EXPIRY_COMMANDS: Record<string, readonly [number, Handler]> = handlersOf(EXPIRY_PLANS);
