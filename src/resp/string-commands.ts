/**
 * The string commands (GET, SET, MSET, INCR, ...) as calls to the selected KV machine. Each
 * command is one machine request (MSET, SET NX/XX/GET, GETDEL, DEL of many keys, INCRBY and
 * APPEND are single ops of src/kv/kv-ops.ts), so it is atomic and durable before its reply.
 *
 * Every handler issues its calls synchronously, before awaiting anything: the engine queues
 * them in that order, which keeps a pipeline's effects in the order the client sent it.
 */
import { valueAsBytes, type IncrOutput } from '../kv/kv-ops.js';
import { NIL, OK, array, bulkOrNil, error, int, type Reply } from './encoder.js';
import type { Session } from './session.js';

/** A reply that ends a command early (bad arguments); thrown synchronously by a handler. */
export class ReplyError extends Error {
  constructor(readonly reply: Reply) {
    super(reply.t === 'error' ? reply.s : 'reply');
  }
}

export type Handler = (s: Session, args: readonly Buffer[]) => Reply | Promise<Reply>;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A Redis key (bytes) as a KV key (a string): its UTF-8 text. Keys that are not valid UTF-8
 * are refused rather than mapped, so every key reads the same over HTTP and over RESP.
 */
export function keyOf(b: Uint8Array): string {
  try {
    return utf8.decode(b);
  } catch {
    throw new ReplyError(error('ERR key is not valid UTF-8 (ssm keys are text; values may be any bytes)'));
  }
}

export const NOT_INTEGER = error('ERR value is not an integer or out of range');
export const SYNTAX = error('ERR syntax error');

/** Redis's integer argument syntax, within 64 bits. */
export function intArg(b: Uint8Array): bigint {
  const s = Buffer.from(b).toString('latin1');
  if (!/^-?[0-9]{1,19}$/.test(s)) throw new ReplyError(NOT_INTEGER);
  const n = BigInt(s);
  if (n < -(2n ** 63n) || n > 2n ** 63n - 1n) throw new ReplyError(NOT_INTEGER);
  return n;
}

const call = (s: Session, input: unknown): Promise<unknown> => s.server.options.app.callValue(s.machine, input);
const readBytes = (v: unknown): Reply => bulkOrNil(valueAsBytes(v));

function incr(s: Session, key: Buffer, by: bigint): Promise<Reply> {
  return call(s, { op: 'incrBy', key: keyOf(key), by }).then((o) => {
    const out = o as IncrOutput;
    if ('value' in out) return int(out.value);
    return out.error === 'OVERFLOW' ? error('ERR increment or decrement would overflow') : NOT_INTEGER;
  });
}

function set(s: Session, args: readonly Buffer[]): Promise<Reply> {
  let when: 'always' | 'absent' | 'present' = 'always';
  let returnOld = false;
  for (const a of args.slice(3)) {
    const opt = a.toString('latin1').toUpperCase();
    if (opt === 'NX' && when !== 'present') when = 'absent';
    else if (opt === 'XX' && when !== 'absent') when = 'present';
    else if (opt === 'GET') returnOld = true;
    else if (['EX', 'PX', 'EXAT', 'PXAT', 'KEEPTTL'].includes(opt)) throw new ReplyError(error('ERR expiry (EX/PX/EXAT/PXAT/KEEPTTL) is not supported: ssm keys do not expire yet'));
    else throw new ReplyError(SYNTAX);
  }
  const key = keyOf(args[1]!);
  const value = args[2]!;
  if (when === 'always' && !returnOld) return call(s, { op: 'store', key, value }).then(() => OK);
  return call(s, { op: 'storeIf', key, value, when, returnOld }).then((o) => {
    const out = o as { stored: boolean; old?: unknown };
    if (returnOld) return readBytes(out.old);
    return out.stored ? OK : NIL;
  });
}

/** Name → [arity (negative: at least), handler]; arity counts the command name, as in Redis. */
export const STRING_COMMANDS: Record<string, readonly [number, Handler]> = {
  get: [2, (s, a) => call(s, { op: 'lookup', key: keyOf(a[1]!) }).then(readBytes)],
  set: [-3, set],
  getdel: [2, (s, a) => call(s, { op: 'take', key: keyOf(a[1]!) }).then(readBytes)],
  del: [-2, (s, a) => call(s, { op: 'deleteMany', keys: a.slice(1).map(keyOf) }).then((n) => int(n as number))],
  exists: [
    -2,
    (s, a) => {
      const keys = a.slice(1).map(keyOf);
      return Promise.all(keys.map((key) => call(s, { op: 'has', key }))).then((found) => int(found.filter(Boolean).length));
    },
  ],
  mget: [-2, (s, a) => call(s, { op: 'lookupMany', keys: a.slice(1).map(keyOf) }).then((vs) => array((vs as unknown[]).map(readBytes)))],
  mset: [
    -3,
    (s, a) => {
      if (a.length % 2 !== 1) throw new ReplyError(error("ERR wrong number of arguments for 'mset' command"));
      const entries: [string, Buffer][] = [];
      for (let i = 1; i < a.length; i += 2) entries.push([keyOf(a[i]!), a[i + 1]!]);
      return call(s, { op: 'storeMany', entries }).then(() => OK);
    },
  ],
  incr: [2, (s, a) => incr(s, a[1]!, 1n)],
  decr: [2, (s, a) => incr(s, a[1]!, -1n)],
  incrby: [3, (s, a) => incr(s, a[1]!, intArg(a[2]!))],
  decrby: [
    3,
    (s, a) => {
      const by = intArg(a[2]!);
      if (by === -(2n ** 63n)) throw new ReplyError(error('ERR decrement would overflow'));
      return incr(s, a[1]!, -by);
    },
  ],
  append: [3, (s, a) => call(s, { op: 'append', key: keyOf(a[1]!), value: a[2]! }).then((n) => int(n as number))],
  strlen: [2, (s, a) => call(s, { op: 'lookup', key: keyOf(a[1]!) }).then((v) => int(valueAsBytes(v)?.length ?? 0))],
};
