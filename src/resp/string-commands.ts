/**
 * The string commands (GET, SET, MSET, INCR, ...) as calls to the selected KV machine. Each
 * command is one machine request (MSET, SET NX/XX/GET/EX/PX/EXAT/PXAT/KEEPTTL, GETDEL, DEL of
 * many keys, INCRBY and APPEND are single ops of src/kv/kv-ops.ts), so it is atomic and durable
 * before its reply.
 *
 * Every handler issues its calls synchronously, before awaiting anything: the engine queues
 * them in that order, which keeps a pipeline's effects in the order the client sent it.
 */
import { MAX_EXPIRY_MS } from '../encoding/expiring-map.js';
import { MAX_TTL_MS } from '../kv/kv-expiry.js';
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

/**
 * A command as one KV machine request and the reply made of its output. A command of several
 * requests is one read-only `batch` whose output is the array of theirs. Plans are what MULTI
 * queues: EXEC joins them into one batch request (see transaction-commands.ts).
 */
export interface Plan {
  readonly input: { readonly op: string; readonly ops?: readonly unknown[] } & Record<string, unknown>;
  readonly reply: (output: unknown) => Reply;
}

/** Turns a command's arguments into its {@link Plan}; throws ReplyError for bad arguments. */
export type Planner = (s: Session, args: readonly Buffer[]) => Plan;

/** Runs a plan as a command outside MULTI: its one request, then its reply. */
export function runPlan(s: Session, plan: Plan): Promise<Reply> {
  return call(s, plan.input).then(plan.reply);
}

/** Name → [arity, planner] into name → [arity, handler] for the command table. */
export function handlersOf(plans: Record<string, readonly [number, Planner]>): Record<string, readonly [number, Handler]> {
  return Object.fromEntries(Object.entries(plans).map(([name, [arity, planner]]) => [name, [arity, (s: Session, a: readonly Buffer[]) => runPlan(s, planner(s, a))] as const]));
}

const incrReply = (o: unknown): Reply => {
  const out = o as IncrOutput;
  if ('value' in out) return int(out.value);
  return out.error === 'OVERFLOW' ? error('ERR increment or decrement would overflow') : NOT_INTEGER;
};

function incr(key: Buffer, by: bigint): Plan {
  return { input: { op: 'incrBy', key: keyOf(key), by }, reply: incrReply };
}

/**
 * A positive integer expiry argument of SET/EXPIRE, as ms (`unit` ms per unit), at most `max`
 * (a time to live: {@link MAX_TTL_MS}; an absolute time: the latest a Date holds); Redis's
 * errors otherwise.
 */
export function expiryArg(b: Uint8Array, unit: number, command: string, max: number = MAX_TTL_MS): number {
  const n = intArg(b);
  const ms = n * BigInt(unit);
  if (n <= 0n || ms > BigInt(max)) throw new ReplyError(error(`ERR invalid expire time in '${command}' command`));
  return Number(ms);
}

const OK_REPLY = (): Reply => OK;

function set(_s: Session, args: readonly Buffer[]): Plan {
  let when: 'always' | 'absent' | 'present' = 'always';
  let returnOld = false;
  let expiry: { ttlMs: number } | { expiresAt: number } | { keepTtl: true } | null = null;
  for (let i = 3; i < args.length; i++) {
    const opt = args[i]!.toString('latin1').toUpperCase();
    if (opt === 'NX' && when !== 'present') when = 'absent';
    else if (opt === 'XX' && when !== 'absent') when = 'present';
    else if (opt === 'GET') returnOld = true;
    else if ((opt === 'EX' || opt === 'PX' || opt === 'EXAT' || opt === 'PXAT') && expiry === null && i + 1 < args.length) {
      const relative = opt === 'EX' || opt === 'PX';
      const ms = expiryArg(args[++i]!, opt === 'EX' || opt === 'EXAT' ? 1000 : 1, 'set', relative ? MAX_TTL_MS : MAX_EXPIRY_MS);
      expiry = relative ? { ttlMs: ms } : { expiresAt: ms };
    } else if (opt === 'KEEPTTL' && expiry === null) expiry = { keepTtl: true };
    else throw new ReplyError(SYNTAX);
  }
  const key = keyOf(args[1]!);
  const value = args[2]!;
  if (when === 'always' && !returnOld) return { input: { op: 'store', key, value, ...expiry }, reply: OK_REPLY };
  return {
    input: { op: 'storeIf', key, value, when, returnOld, ...expiry },
    reply: (o) => {
      const out = o as { stored: boolean; old?: unknown };
      if (returnOld) return readBytes(out.old);
      return out.stored ? OK : NIL;
    },
  };
}

/** Name → [arity (negative: at least), planner]; arity counts the command name, as in Redis. */
export const STRING_PLANS: Record<string, readonly [number, Planner]> = {
  get: [2, (_s, a) => ({ input: { op: 'lookup', key: keyOf(a[1]!) }, reply: readBytes })],
  set: [-3, set],
  getdel: [2, (_s, a) => ({ input: { op: 'take', key: keyOf(a[1]!) }, reply: readBytes })],
  del: [-2, (_s, a) => ({ input: { op: 'deleteMany', keys: a.slice(1).map(keyOf) }, reply: (n) => int(n as number) })],
  exists: [
    -2,
    // One read-only batch of `has`: a stored null exists (a lookup could not tell it from none).
    (_s, a) => ({ input: { op: 'batch', ops: a.slice(1).map((k) => ({ op: 'has', key: keyOf(k) })) }, reply: (found) => int((found as boolean[]).filter(Boolean).length) }),
  ],
  mget: [-2, (_s, a) => ({ input: { op: 'lookupMany', keys: a.slice(1).map(keyOf) }, reply: (vs) => array((vs as unknown[]).map(readBytes)) })],
  mset: [
    -3,
    (_s, a) => {
      if (a.length % 2 !== 1) throw new ReplyError(error("ERR wrong number of arguments for 'mset' command"));
      const entries: [string, Buffer][] = [];
      for (let i = 1; i < a.length; i += 2) entries.push([keyOf(a[i]!), a[i + 1]!]);
      return { input: { op: 'storeMany', entries }, reply: OK_REPLY };
    },
  ],
  incr: [2, (_s, a) => incr(a[1]!, 1n)],
  decr: [2, (_s, a) => incr(a[1]!, -1n)],
  incrby: [3, (_s, a) => incr(a[1]!, intArg(a[2]!))],
  decrby: [
    3,
    (_s, a) => {
      const by = intArg(a[2]!);
      if (by === -(2n ** 63n)) throw new ReplyError(error('ERR decrement would overflow'));
      return incr(a[1]!, -by);
    },
  ],
  append: [3, (_s, a) => ({ input: { op: 'append', key: keyOf(a[1]!), value: a[2]! }, reply: (n) => int(n as number) })],
  strlen: [2, (_s, a) => ({ input: { op: 'lookup', key: keyOf(a[1]!) }, reply: (v) => int(valueAsBytes(v)?.length ?? 0) })],
};

export const STRING_COMMANDS: Record<string, readonly [number, Handler]> = handlersOf(STRING_PLANS);
