import { defineMachine, withTimers, type EntryProjection, type Machine, type StepResult } from '../model/machine.js';
import { cbor } from '../encoding/cbor.js';
import { sha256 } from '../storage/checksum.js';
import { ExpiringMap } from '../encoding/expiring-map.js';
import type { KeyRange } from '../encoding/key-range.js';
import { ShardedMap } from '../encoding/sharded-map.js';
import { readPage } from './kv-page.js';
import { expireConditionHolds, expiryOf, isLive, type ExpireCondition, keysToRemove, remainingMs, removalTimer, removeExpired, setExpiry } from './kv-expiry.js';
import { byteOpStep, liveValue, type ByteOpTable, type KvByteOpInput } from './kv-ops.js';
import { LONE_SURROGATE, MAX_KEY_LENGTH, isReadOnlyKvInput, isWellFormed, stampKvInput, validateKvInput } from './kv-input.js';

export { LONE_SURROGATE, MAX_KEY_LENGTH, isReadOnlyKvInput, isWellFormed, stampKvInput, validateKvInput };

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
  | { readonly op: 'size'; readonly now?: number; readonly expiring?: boolean }
  | ({ readonly op: 'entries'; readonly limit?: number; readonly keysOnly?: boolean; readonly now?: number } & KeyRange)
  | ({ readonly op: 'scan'; readonly limit?: number; readonly now?: number } & KeyRange)
  | { readonly op: 'ttl'; readonly key: string; readonly now?: number }
  | { readonly op: 'expire'; readonly key: string; readonly ttlMs?: number; readonly expiresAt?: number; readonly now?: number; readonly when?: ExpireCondition }
  | { readonly op: 'persist'; readonly key: string; readonly now?: number }
  | { readonly op: 'compareAndSet'; readonly key: string; readonly expected?: unknown; readonly value: unknown; readonly ttlMs?: number; readonly expiresAt?: number; readonly keepTtl?: boolean; readonly now?: number }
  | { readonly op: 'batch'; readonly ops: readonly KvInput[]; readonly now?: number; readonly guard?: readonly KvGuard[] }
  | { readonly op: 'digest'; readonly keys: readonly string[]; readonly now?: number }
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

/** Whether the CBOR of two values is the same bytes (compareAndSet's equality). */
function sameCbor(a: unknown, b: unknown): boolean {
  const x = cbor.encode(a);
  const y = cbor.encode(b);
  return x.length === y.length && Buffer.compare(x, y) === 0;
}

/**
 * What a batch's `guard` expects of a key: the {@link keyDigest} it had (null: absent). RESP's
 * WATCH reads the digests; EXEC's batch applies only if every key still has the same.
 */
export interface KvGuard {
  readonly key: string;
  readonly digest: string | null;
}

/**
 * A live key's value and expiry as a short digest (sha256 of their CBOR, hex), null when it is
 * absent or expired: what WATCH remembers of a key, so that a changed value or expiry aborts EXEC
 * and the log holds 64 characters a watched key, not its value.
 */
export function keyDigest(state: KvTable, key: string, now: number | undefined): string | null {
  const { present, value } = liveValue(state, key, now);
  return present ? sha256(cbor.encode([value, expiryOf(state, key) ?? null])) : null;
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
    case 'size': {
      const expired = state.expiredCount?.(now) ?? 0;
      // With `expiring`: also how many live keys have an expiry (Redis's INFO keyspace `expires`).
      return input.expiring ? { keys: state.size - expired, expiring: Math.max(0, (state.expiringCount ?? 0) - expired) } : state.size - expired;
    }
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
      if (input.when && !expireConditionHolds(input.when, expiryOf(state, input.key), input.expiresAt)) return false;
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
    case 'digest':
      return input.keys.map((key) => keyDigest(state, key, now));
    case 'batch':
      // A guarded batch (RESP's WATCH) applies nothing, and answers null, if a key changed.
      if (input.guard && !input.guard.every((g) => keyDigest(state, g.key, now) === g.digest)) return null;
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
  /**
   * Shards of a new store's map (a power of two; see ShardedMap): a map written keeps the count
   * it was created with. A partition of openKV's partitioned store holds 1/P of the keys, so it
   * is given 256/P shards (at least 1), and 4,096 empty partitions do not cost a million Maps.
   * @default 256
   */
  shards?: number;
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
    init: () => new ExpiringMap(null, options.shards),
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
