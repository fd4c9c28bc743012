/**
 * Time to live over RESP: TTL, PTTL, EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, PERSIST, answered as
 * Redis answers them (TTL -2 for a missing key, -1 for one without expiry). Each is one request
 * of the KV machine's expiry ops; the clock is read at the machine's door (see
 * src/kv/kv-expiry.ts), so a key expired is absent at once, removed or not.
 */
import { MAX_EXPIRY_MS } from '../encoding/expiring-map.js';
import { error, int, type Reply } from './encoder.js';
import type { ExpireCondition } from '../kv/kv-expiry.js';
import { ReplyError, expiryArg, handlersOf, intArg, keyOf, type Handler, type Plan, type Planner } from './string-commands.js';

const intReply = (n: unknown): Reply => int(n as number);
const boolReply = (b: unknown): Reply => int(b ? 1 : 0);

/** TTL's seconds: Redis rounds the remaining ms to the nearest second. */
const seconds = (ms: unknown): Reply => {
  const n = ms as number;
  return int(n < 0 ? n : Math.floor((n + 500) / 1000));
};

/** EXPIRE's NX, XX, GT and LT (after the key and time), as Redis parses and combines them. */
function condition(a: readonly Buffer[]): ExpireCondition | undefined {
  const flags = new Set<string>();
  for (const arg of a.slice(3)) {
    const f = arg.toString('latin1').toLowerCase();
    if (f !== 'nx' && f !== 'xx' && f !== 'gt' && f !== 'lt') throw new ReplyError(error(`ERR Unsupported option ${arg.toString('latin1')}`));
    flags.add(f);
  }
  if (flags.has('nx') && flags.size > 1) throw new ReplyError(error('ERR NX and XX, GT or LT options at the same time are not compatible'));
  if (flags.has('gt') && flags.has('lt')) throw new ReplyError(error('ERR GT and LT options at the same time are not compatible'));
  const order = flags.has('gt') ? 'gt' : flags.has('lt') ? 'lt' : undefined;
  if (flags.has('xx')) return order ? `xx-${order}` : 'xx';
  return flags.has('nx') ? 'nx' : order;
}

/** The expire op for `key` at `time` (expiresAt 0: delete, as a time already past), with its condition. */
function expireOp(a: readonly Buffer[], time: { ttlMs: number } | { expiresAt: number }): Plan {
  const when = condition(a);
  return { input: { op: 'expire', key: keyOf(a[1]!), ...time, ...(when ? { when } : {}) }, reply: boolReply };
}

/** EXPIRE and PEXPIRE: a time to live; zero or negative deletes the key, as Redis does. */
const expireIn = (unit: number, name: string): Planner => (_s, a) =>
  expireOp(a, intArg(a[2]!) <= 0n ? { expiresAt: 0 } : { ttlMs: expiryArg(a[2]!, unit, name) });

/** EXPIREAT and PEXPIREAT: an absolute time (a past one deletes the key). */
const expireAt = (unit: number, name: string): Planner => (_s, a) =>
  expireOp(a, intArg(a[2]!) <= 0n ? { expiresAt: 0 } : { expiresAt: expiryArg(a[2]!, unit, name, MAX_EXPIRY_MS) });

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
