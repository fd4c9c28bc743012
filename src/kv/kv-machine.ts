import { defineMachine, withTimers, type EntryProjection, type Machine, type StepResult } from '../model/machine.js';
import { cbor } from '../encoding/cbor.js';
import { ExpiringMap, MAX_EXPIRY_MS } from '../encoding/expiring-map.js';
import type { KeyRange } from '../encoding/key-range.js';
import { ShardedMap } from '../encoding/sharded-map.js';
import { MAX_PAGE_LIMIT, readPage } from './kv-page.js';
import { checkTtlMs, expiryOf, isLive, keysToRemove, remainingMs, removalTimer, removeExpired, setExpiry } from './kv-expiry.js';
import { BYTE_OPS, BYTE_OPS_READ_ONLY, MAX_KEYS_PER_OP, byteOpStep, expiryFields, liveValue, validateByteOp, type ByteOpTable, type KvByteOpInput } from './kv-ops.js';

/**
 * The key-value store as a state machine: the machine behind `ssm serve` and {@link openKV}.
 * State is an {@link ExpiringMap}, a {@link ShardedMap} whose keys may carry an expiry time
 * (state version 3; version 2 was a plain ShardedMap and version 1 a `Map`, both migrated on
 * load): a million-key store recovers in about half the time a Map takes. Values are anything
 * CBOR round-trips. Range reads (`entries`: the pairs; `scan`: `{ entries, next }`) answer one
 * bounded page in key order (or reverse order) after the exclusive cursor `after` (see
 * {@link readPage}).
 *
 * Time: `now` and `expiresAt` are ms since the epoch, put on the input at the door by
 * {@link stampKvInput} (the machine's `stamp`) and logged with it; the step never reads a clock.
 * A key whose `expiresAt <= now` is absent to every op (see kv-expiry.ts). An input without
 * `now` (logged by an older version, or given so on purpose) sees no key as expired.
 */
export type KvInput =
  | { readonly op: 'store' | 'set'; readonly key: string; readonly value: unknown; readonly ttlMs?: number; readonly expiresAt?: number; readonly keepTtl?: boolean; readonly now?: number }
  | { readonly op: 'lookup'; readonly key: string; readonly now?: number }
  | { readonly op: 'delete'; readonly key: string; readonly now?: number }
  | { readonly op: 'has'; readonly key: string; readonly now?: number }
  | { readonly op: 'size'; readonly now?: number }
  | ({ readonly op: 'entries'; readonly limit?: number; readonly keysOnly?: boolean; readonly now?: number } & KeyRange)
  | ({ readonly op: 'scan'; readonly limit?: number; readonly now?: number } & KeyRange)
  | { readonly op: 'ttl'; readonly key: string; readonly now?: number }
  | { readonly op: 'expire'; readonly key: string; readonly ttlMs?: number; readonly expiresAt?: number; readonly now?: number }
  | { readonly op: 'persist'; readonly key: string; readonly now?: number }
  | { readonly op: 'compareAndSet'; readonly key: string; readonly expected?: unknown; readonly value: unknown; readonly ttlMs?: number; readonly expiresAt?: number; readonly keepTtl?: boolean; readonly now?: number }
  | { readonly op: 'batch'; readonly ops: readonly KvInput[]; readonly now?: number }
  | { readonly op: 'removeExpired'; readonly upTo: number }
  | KvByteOpInput;

export type KvOutput = unknown;
export type KvState = ExpiringMap<unknown>;

/** What {@link kvStep} needs of its state: a `Map<string, unknown>`, a {@link ShardedMap} or an {@link ExpiringMap} (the only one that holds expiry times). */
export interface KvTable extends ByteOpTable {
  readonly size: number;
  get(key: string): unknown;
  has(key: string): boolean;
  set(key: string, value: unknown): unknown;
  delete(key: string): boolean;
  keys(): IterableIterator<string>;
  /** Keys of a range in order (ShardedMap's index); without it a range read sorts every key. */
  keysInRange?(range: KeyRange): Iterator<string>;
}

/** State version of {@link kvMachine}: 3 since keys may expire (ExpiringMap); 2 was a ShardedMap, 1 a Map. */
export const KV_STATE_VERSION = 3;

/** Longest key accepted, in UTF-16 code units. */
export const MAX_KEY_LENGTH = 4096;

/**
 * Why a key with a lone surrogate is refused: CBOR and UTF-8 cannot carry it, so it would be
 * stored as U+FFFD and alias every other key that differs from it only there.
 */
export const LONE_SURROGATE = 'key contains a lone surrogate (not valid Unicode): it cannot be stored exactly, and would alias other keys';

/** Whether a string is valid Unicode (no lone surrogates), i.e. survives UTF-8 unchanged. */
export function isWellFormed(s: string): boolean {
  return (s as string & { isWellFormed(): boolean }).isWellFormed();
}

const READ_ONLY = new Set(['lookup', 'has', 'size', 'entries', 'scan', 'ttl', ...BYTE_OPS_READ_ONLY]);
/** Ops a batch may not hold: range reads (paged, unbounded), batches, and the timer's removal. */
const NOT_IN_BATCH = new Set(['entries', 'scan', 'batch', 'removeExpired']);
/** Ops that neither read nor depend on expiry: no `now` is stamped on them. */
const CLOCKLESS = new Set(['storeMany', 'removeExpired']);

/** Whether a KV input changes nothing (never logged): a read, or a batch of reads only. */
export function isReadOnlyKvInput(input: KvInput): boolean {
  if (input.op === 'batch') return input.ops.every(isReadOnlyKvInput);
  return READ_ONLY.has(input.op);
}

/** The checks every key gets: a string, at most {@link MAX_KEY_LENGTH}, valid Unicode. */
function checkKey(key: unknown, op: string): string {
  if (typeof key !== 'string') throw new TypeError(`op ${op} needs a string "key"`);
  if (key.length > MAX_KEY_LENGTH) throw new TypeError(`key longer than ${MAX_KEY_LENGTH}`);
  if (!isWellFormed(key)) throw new TypeError(LONE_SURROGATE);
  return key;
}

const OPS = 'store (or set), lookup, delete, has, size, entries, scan, ttl, expire, persist, compareAndSet, batch';

/**
 * Rejects anything that is not a well-formed {@link KvInput} (TypeError, which the engine turns
 * into a DecodeError), and drops what an untrusted caller may not give: `now` (the door stamps
 * the clock) and the timer's own `removeExpired`.
 */
export function validateKvInput(input: unknown): KvInput {
  return validateOne(input, false);
}

function validateOne(input: unknown, inBatch: boolean): KvInput {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new TypeError('input must be a map with an "op" field');
  const o = input as Record<string, unknown>;
  const key = o['key'];
  const needsKey = (): string => checkKey(key, String(o['op']));
  if (inBatch && NOT_IN_BATCH.has(o['op'] as string)) throw new TypeError(`op ${String(o['op'])} cannot be part of a batch`);
  if (BYTE_OPS.has(o['op'] as string)) return validateByteOp(o, checkKey);
  switch (o['op']) {
    case 'store':
    case 'set':
      needsKey();
      if (!('value' in o)) throw new TypeError(`op ${o['op']} needs a "value"`);
      return { op: 'store', key: key as string, value: o['value'], ...expiryFields(o, 'store') };
    case 'lookup':
    case 'delete':
    case 'has':
    case 'ttl':
    case 'persist':
      needsKey();
      return { op: o['op'], key: key as string };
    case 'expire': {
      needsKey();
      const fields = expiryFields(o, 'expire');
      if (fields.keepTtl || (fields.ttlMs === undefined && fields.expiresAt === undefined)) throw new TypeError('op expire needs "ttlMs" or "expiresAt" (op persist removes an expiry)');
      return { op: 'expire', key: key as string, ...fields };
    }
    case 'compareAndSet':
      needsKey();
      if (!('value' in o)) throw new TypeError('op compareAndSet needs a "value" (and "expected"; omitted, it matches a missing key)');
      return { op: 'compareAndSet', key: key as string, expected: o['expected'], value: o['value'], ...expiryFields(o, 'compareAndSet') };
    case 'size':
      return { op: 'size' };
    case 'batch': {
      const ops = o['ops'];
      if (!Array.isArray(ops)) throw new TypeError('op batch needs an array "ops"');
      if (ops.length > MAX_KEYS_PER_OP) throw new TypeError(`op batch: more than ${MAX_KEYS_PER_OP} ops`);
      return {
        op: 'batch',
        ops: ops.map((sub, i) => {
          try {
            return validateOne(sub, true);
          } catch (err) {
            throw new TypeError(`op batch: op ${i}: ${(err as Error).message}; nothing was applied`);
          }
        }),
      };
    }
    case 'entries':
    case 'scan': {
      const { prefix, after, start, end, limit, reverse } = o;
      for (const [name, v] of [['prefix', prefix], ['after', after], ['start', start], ['end', end]] as const) {
        if (v !== undefined && typeof v !== 'string') throw new TypeError(`"${name}" must be a string`);
        if (v !== undefined && !isWellFormed(v)) throw new TypeError(LONE_SURROGATE);
      }
      if (reverse !== undefined && typeof reverse !== 'boolean') throw new TypeError('"reverse" must be a boolean');
      if (limit !== undefined && !(Number.isSafeInteger(limit) && (limit as number) >= 0)) throw new TypeError('"limit" must be a non-negative integer');
      // Refused rather than clamped: a caller asking for more must learn to page, not get less silently.
      if ((limit as number) > MAX_PAGE_LIMIT) throw new TypeError(`"limit" must be at most ${MAX_PAGE_LIMIT}; page with "after" (op scan answers the cursor)`);
      return {
        op: o['op'],
        prefix: prefix as string | undefined,
        after: after as string | undefined,
        limit: limit as number | undefined,
        ...(start === undefined ? {} : { start: start as string }),
        ...(end === undefined ? {} : { end: end as string }),
        ...(reverse === true ? { reverse: true } : {}),
        ...(o['op'] === 'entries' && o['keysOnly'] === true ? { keysOnly: true } : {}),
      };
    }
    case 'removeExpired':
      throw new TypeError('op removeExpired is sent by the store\'s own expiry timer only');
    default:
      throw new TypeError(`unknown op ${JSON.stringify(o['op'])}; expected ${OPS}, ${[...BYTE_OPS].join(', ')}`);
  }
}

/** `ttlMs` as the absolute `expiresAt` it means at `now` (the rest of the op unchanged). */
function absoluteExpiry<T extends object>(op: T, now: number): T {
  const ttlMs = (op as { ttlMs?: unknown }).ttlMs;
  if (ttlMs === undefined || ttlMs === null) return op;
  const { ttlMs: _, ...rest } = op as T & { ttlMs?: unknown };
  return { ...rest, expiresAt: Math.min(now + checkTtlMs(ttlMs), MAX_EXPIRY_MS) } as T;
}

/**
 * The KV machine's `stamp`: reads the clock once for the input (unless the caller gave `now`,
 * which only a trusted `app.call` can), turns every `ttlMs` into an `expiresAt`, and puts `now`
 * on every input whose answer or effect depends on expiry. A plain `store` needs no clock and
 * gets none (its log entry stays as it was). Throws TypeError for a malformed `ttlMs`.
 */
export function stampKvInput(input: KvInput, clock: () => number = Date.now): KvInput {
  const o = input as { op?: unknown; now?: unknown; ttlMs?: unknown; keepTtl?: unknown; ops?: unknown };
  if (typeof o !== 'object' || o === null || CLOCKLESS.has(o.op as string)) return input;
  if ((o.op === 'store' || o.op === 'set') && o.ttlMs === undefined && o.keepTtl !== true) return input;
  const now = typeof o.now === 'number' ? o.now : clock();
  if (o.op === 'batch' && Array.isArray(o.ops)) return { ...(input as object), ops: (o.ops as object[]).map((sub) => absoluteExpiry(sub, now)), now } as unknown as KvInput;
  return { ...absoluteExpiry(input, now), now } as KvInput;
}

/** Whether the CBOR of two values is the same bytes (compareAndSet's equality). */
function sameCbor(a: unknown, b: unknown): boolean {
  const x = cbor.encode(a);
  const y = cbor.encode(b);
  return x.length === y.length && Buffer.compare(x, y) === 0;
}

/** Writes `value` under `key` with the expiry a write's fields ask for (none: cleared). */
function write(state: KvTable, key: string, value: unknown, fields: { expiresAt?: number; keepTtl?: boolean }, now: number | undefined): void {
  const keep = fields.keepTtl === true && isLive(state, key, now);
  state.set(key, value);
  if (!keep) setExpiry(state, key, fields.expiresAt);
}

/** One step of the KV store. Mutates the table in place: no copy per request. */
export function kvStep<S extends KvTable>(input: KvInput, state: S): readonly [S, KvOutput] {
  return [state, stepOne(input, state, (input as { now?: number }).now)];
}

/** One op at `now` (a batch passes its own to every op it holds). */
function stepOne(input: KvInput, state: KvTable, now: number | undefined): KvOutput {
  switch (input.op) {
    case 'store':
    case 'set':
      write(state, input.key, input.value, input, now);
      return null;
    case 'lookup':
      return isLive(state, input.key, now) ? state.get(input.key) : null;
    case 'delete': {
      const live = isLive(state, input.key, now);
      return state.delete(input.key) && live;
    }
    case 'has':
      return isLive(state, input.key, now);
    case 'size':
      return state.size - (state.expiredCount?.(now) ?? 0);
    case 'entries': {
      // A page (see readPage): cost and size follow what it returns, not the size of the store.
      const page = readPage(state, { ...input, now }).entries;
      return input.keysOnly ? page.map(([k]) => k) : page;
    }
    case 'scan':
      return readPage(state, { ...input, now });
    case 'ttl':
      return remainingMs(state, input.key, now);
    case 'expire': {
      const { present } = liveValue(state, input.key, now);
      if (!present || input.expiresAt === undefined) return false;
      // A time already past removes the key, as Redis's EXPIRE does.
      if (now !== undefined && input.expiresAt <= now) state.delete(input.key);
      else setExpiry(state, input.key, input.expiresAt);
      return true;
    }
    case 'persist': {
      const { present } = liveValue(state, input.key, now);
      if (!present || expiryOf(state, input.key) === undefined) return false;
      setExpiry(state, input.key, undefined);
      return true;
    }
    case 'compareAndSet': {
      // A missing (or expired) key compares as undefined: what `get` answers for it.
      const { present, value } = liveValue(state, input.key, now);
      if (!sameCbor(present ? value : undefined, input.expected)) return false;
      write(state, input.key, input.value, input, now);
      return true;
    }
    case 'batch':
      return input.ops.map((op) => stepOne(op, state, now));
    case 'removeExpired':
      return removeExpired(state, input.upTo);
    default:
      return byteOpStep(input, state, now);
  }
}

/**
 * The KV store's rows in `kv_entries`: one per key. The keys an input may change are read off its
 * shape (`key`, `keys`, `entries`, or the `ops` of a batch), so every writing op is covered.
 */
export const KV_ENTRIES: EntryProjection<KvInput, KvState> = {
  *keys(input, state) {
    const o = input as { op?: unknown; key?: unknown; keys?: unknown; entries?: unknown; ops?: unknown; upTo?: unknown };
    if (typeof o.key === 'string') yield o.key;
    if (Array.isArray(o.keys)) for (const k of o.keys) if (typeof k === 'string') yield k;
    if (Array.isArray(o.entries)) for (const e of o.entries) if (Array.isArray(e) && typeof e[0] === 'string') yield e[0];
    if (Array.isArray(o.ops)) for (const op of o.ops) yield* KV_ENTRIES.keys(op as KvInput, state);
    // The removal of expired keys names none: the state decides, exactly as the step will.
    if (o.op === 'removeExpired' && typeof o.upTo === 'number') yield* keysToRemove(state, o.upTo);
  },
  value: (state, key) => state.get(key),
  all: (state) => state.entries(),
};

/** Options of {@link kvMachine}. */
export interface KvMachineOptions {
  /**
   * Print "KV store starting: NAME" / "KV store terminating: NAME" from the hooks (the demo).
   * @default false
   */
  verbose?: boolean;
  /**
   * Where verbose lines go.
   * @default console.log
   */
  print?: (line: string) => void;
  /**
   * Make a lookup of the key `"crash"` throw ("divide by zero"), the deliberate bug of the
   * design note that started this project (`shared/seed.txt`): `ssm demo` and the tests use it
   * to watch a supervisor restart a machine. Never on a served tree: any client could crash it.
   * @default false
   */
  deliberateCrash?: boolean;
}

/** The lookup that throws when {@link KvMachineOptions.deliberateCrash} is on. */
export const CRASH_KEY = 'crash';

/** Whether an input (a trusted one may be anything) is a range read, the reads the ordered index serves. */
function isRangeRead(input: unknown): boolean {
  const op = (input as { op?: unknown } | null)?.op;
  return op === 'entries' || op === 'scan';
}

/**
 * The removal timer each live state last set (see kv-expiry.ts): bookkeeping in memory only, so
 * a state fresh from recovery does not know it and sets the timer again at its next write.
 */
const scheduledRemoval = new WeakMap<object, number>();

/**
 * {@link kvStep} plus the removal timer of expired keys: a state-changing step that leaves a key
 * expiring before the timer last set (or a removal step, whose timer was just consumed) sets it
 * for the soonest expiry. Read-only steps cannot set timers (they are never logged).
 */
export function kvStepWithExpiry(input: KvInput, state: KvState): StepResult<KvState, KvOutput> {
  const result = kvStep(input, state);
  if (isReadOnlyKvInput(input)) return result;
  if (input.op === 'removeExpired') scheduledRemoval.delete(state);
  const timer = removalTimer(state, scheduledRemoval.get(state));
  if (timer === null) return result;
  scheduledRemoval.set(state, timer.at);
  return withTimers(result[0], result[1], timer.command);
}

/** The KV store machine; see {@link KvMachineOptions}. */
export function kvMachine(options: KvMachineOptions = {}): Machine<KvState, KvInput, KvOutput> {
  const print = options.print ?? ((line: string) => console.log(line));
  const step: typeof kvStepWithExpiry = options.deliberateCrash
    ? (input, state) => {
        if (input.op === 'lookup' && input.key === CRASH_KEY) throw new Error('divide by zero');
        return kvStepWithExpiry(input, state);
      }
    : kvStepWithExpiry;
  return defineMachine<KvState, KvInput, KvOutput>({
    init: () => new ExpiringMap(),
    step,
    validate: validateKvInput,
    stamp: (input) => stampKvInput(input),
    readOnly: isReadOnlyKvInput,
    entries: KV_ENTRIES,
    // A range read on a large store without its ordered index waits for a background build
    // instead of sorting every key in its step (issue 18.7); the result is the same either way.
    whenReady: (input, state) => (isRangeRead(input) && state instanceof ShardedMap ? state.whenIndexed() : null),
    version: KV_STATE_VERSION,
    migrate: migrateKvState,
    ...(options.verbose
      ? {
          onStart: (name: string) => print(`KV store starting: ${name}`),
          onTerminate: (name: string) => print(`KV store terminating: ${name}`),
        }
      : {}),
  });
}

/**
 * Brings a KV state of any earlier version to an {@link ExpiringMap}: version 2 was a
 * {@link ShardedMap} (its shards are adopted, not copied), version 1 a `Map` with string keys
 * (or, in the first prototype, a plain object). None of them had expiry times.
 */
export function migrateKvState(state: unknown): KvState {
  if (state instanceof ExpiringMap) return state as KvState;
  if (state instanceof ShardedMap) return ExpiringMap.fromShardedMap(state);
  if (state instanceof Map) {
    const out = new ExpiringMap();
    for (const [k, v] of state) {
      if (typeof k !== 'string') throw new TypeError(`KV state has a non-string key: ${String(k)}`);
      out.set(k, v);
    }
    return out;
  }
  if (state && typeof state === 'object' && !Array.isArray(state)) return new ExpiringMap(Object.entries(state));
  throw new TypeError('unrecognised KV state');
}
