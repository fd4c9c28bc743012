import { defineMachine, type EntryProjection, type Machine } from '../model/machine.js';
import { ShardedMap } from '../encoding/sharded-map.js';
import { MAX_PAGE_LIMIT, readPage } from './kv-page.js';
import { BYTE_OPS, BYTE_OPS_READ_ONLY, byteOpStep, validateByteOp, type KvByteOpInput } from './kv-ops.js';

/**
 * The key-value store as a state machine: the machine behind `ssm serve` and {@link openKV}.
 * State is a {@link ShardedMap} (state version 2; version 1 was a plain `Map`, migrated on
 * load), because a million-key store then recovers in about half the time; values are anything
 * CBOR round-trips. Range reads (`entries`: the pairs; `scan`: `{ entries, next }`) answer one
 * bounded page in key order after the exclusive cursor `after` (see {@link readPage}).
 */
export type KvInput =
  | { readonly op: 'store'; readonly key: string; readonly value: unknown }
  | { readonly op: 'lookup'; readonly key: string }
  | { readonly op: 'delete'; readonly key: string }
  | { readonly op: 'has'; readonly key: string }
  | { readonly op: 'size' }
  | { readonly op: 'entries'; readonly prefix?: string; readonly after?: string; readonly limit?: number; readonly keysOnly?: boolean }
  | { readonly op: 'scan'; readonly prefix?: string; readonly after?: string; readonly limit?: number }
  | KvByteOpInput;

export type KvOutput = unknown;
export type KvState = ShardedMap<unknown>;

/** What {@link kvStep} needs of its state: a `Map<string, unknown>` or a {@link ShardedMap}. */
export interface KvTable {
  readonly size: number;
  get(key: string): unknown;
  has(key: string): boolean;
  set(key: string, value: unknown): unknown;
  delete(key: string): boolean;
  keys(): IterableIterator<string>;
  /** Keys in order from a cursor (ShardedMap's index); without it a range read sorts every key. */
  keysInOrder?(prefix?: string, after?: string): Iterator<string>;
}

/** State version of {@link kvMachine}: 2 since the state became a ShardedMap. */
export const KV_STATE_VERSION = 2;

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

const READ_ONLY = new Set(['lookup', 'has', 'size', 'entries', 'scan', ...BYTE_OPS_READ_ONLY]);

/** The checks every key gets: a string, at most {@link MAX_KEY_LENGTH}, valid Unicode. */
function checkKey(key: unknown, op: string): string {
  if (typeof key !== 'string') throw new TypeError(`op ${op} needs a string "key"`);
  if (key.length > MAX_KEY_LENGTH) throw new TypeError(`key longer than ${MAX_KEY_LENGTH}`);
  if (!isWellFormed(key)) throw new TypeError(LONE_SURROGATE);
  return key;
}

/** Rejects anything that is not a well-formed {@link KvInput}. */
export function validateKvInput(input: unknown): KvInput {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new TypeError('input must be a map with an "op" field');
  const o = input as Record<string, unknown>;
  const key = o['key'];
  const needsKey = (): void => void checkKey(key, String(o['op']));
  if (BYTE_OPS.has(o['op'] as string)) return validateByteOp(o, checkKey);
  switch (o['op']) {
    case 'store':
      needsKey();
      if (!('value' in o)) throw new TypeError('op store needs a "value"');
      return { op: 'store', key: key as string, value: o['value'] };
    case 'lookup':
    case 'delete':
    case 'has':
      needsKey();
      return { op: o['op'], key: key as string };
    case 'size':
      return { op: 'size' };
    case 'entries':
    case 'scan': {
      const { prefix, after, limit } = o;
      for (const [name, v] of [['prefix', prefix], ['after', after]] as const) {
        if (v !== undefined && typeof v !== 'string') throw new TypeError(`"${name}" must be a string`);
        if (v !== undefined && !isWellFormed(v)) throw new TypeError(LONE_SURROGATE);
      }
      if (limit !== undefined && !(Number.isSafeInteger(limit) && (limit as number) >= 0)) throw new TypeError('"limit" must be a non-negative integer');
      // Refused rather than clamped: a caller asking for more must learn to page, not get less silently.
      if ((limit as number) > MAX_PAGE_LIMIT) throw new TypeError(`"limit" must be at most ${MAX_PAGE_LIMIT}; page with "after" (op scan answers the cursor)`);
      return { op: o['op'], prefix: prefix as string | undefined, after: after as string | undefined, limit: limit as number | undefined, ...(o['op'] === 'entries' && o['keysOnly'] === true ? { keysOnly: true } : {}) };
    }
    default:
      throw new TypeError(`unknown op ${JSON.stringify(o['op'])}; expected store, lookup, delete, has, size, entries, scan, ${[...BYTE_OPS].join(', ')}`);
  }
}

/** One step of the KV store. Mutates the table in place: no copy per request. */
export function kvStep<S extends KvTable>(input: KvInput, state: S): readonly [S, KvOutput] {
  switch (input.op) {
    case 'store':
      state.set(input.key, input.value);
      return [state, null];
    case 'lookup':
      return [state, state.has(input.key) ? state.get(input.key) : null];
    case 'delete':
      return [state, state.delete(input.key)];
    case 'has':
      return [state, state.has(input.key)];
    case 'size':
      return [state, state.size];
    case 'entries': {
      // A page (see readPage): cost and size follow what it returns, not the size of the store.
      const page = readPage(state, input).entries;
      return [state, input.keysOnly ? page.map(([k]) => k) : page];
    }
    case 'scan':
      return [state, readPage(state, input)];
    default:
      return [state, byteOpStep(input, state)];
  }
}

/**
 * The KV store's rows in `kv_entries`: one per key. The keys an input may change are read off its
 * shape (`key`, `keys`, `entries`, or the `ops` of a batch), so every writing op is covered.
 */
export const KV_ENTRIES: EntryProjection<KvInput, KvState> = {
  *keys(input) {
    const o = input as { key?: unknown; keys?: unknown; entries?: unknown; ops?: unknown };
    if (typeof o.key === 'string') yield o.key;
    if (Array.isArray(o.keys)) for (const k of o.keys) if (typeof k === 'string') yield k;
    if (Array.isArray(o.entries)) for (const e of o.entries) if (Array.isArray(e) && typeof e[0] === 'string') yield e[0];
    if (Array.isArray(o.ops)) for (const op of o.ops) yield* KV_ENTRIES.keys(op as KvInput);
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

/** The KV store machine; see {@link KvMachineOptions}. */
export function kvMachine(options: KvMachineOptions = {}): Machine<KvState, KvInput, KvOutput> {
  const print = options.print ?? ((line: string) => console.log(line));
  const step: typeof kvStep<KvState> = options.deliberateCrash
    ? (input, state) => {
        if (input.op === 'lookup' && input.key === CRASH_KEY) throw new Error('divide by zero');
        return kvStep(input, state);
      }
    : kvStep;
  return defineMachine<KvState, KvInput, KvOutput>({
    init: () => new ShardedMap(),
    step,
    validate: validateKvInput,
    readOnly: (input) => READ_ONLY.has(input.op),
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
 * Brings a KV state of any earlier version to a {@link ShardedMap}: version 1 was a `Map` with
 * string keys (or, in the first prototype, a plain object).
 */
export function migrateKvState(state: unknown): KvState {
  if (state instanceof ShardedMap) return state as KvState;
  if (state instanceof Map) {
    const out = new ShardedMap();
    for (const [k, v] of state) {
      if (typeof k !== 'string') throw new TypeError(`KV state has a non-string key: ${String(k)}`);
      out.set(k, v);
    }
    return out;
  }
  if (state && typeof state === 'object' && !Array.isArray(state)) return new ShardedMap(Object.entries(state));
  throw new TypeError('unrecognised KV state');
}
