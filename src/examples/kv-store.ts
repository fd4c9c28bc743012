import { defineMachine, type Machine } from '../machine.js';

/**
 * The key-value store of the seed, as a state machine. State is a `Map`; values are anything
 * CBOR round-trips. Looking up the key `"crash"` throws on purpose (the seed's deliberate bug).
 */
export type KvInput =
  | { readonly op: 'store'; readonly key: string; readonly value: unknown }
  | { readonly op: 'lookup'; readonly key: string }
  | { readonly op: 'delete'; readonly key: string }
  | { readonly op: 'has'; readonly key: string }
  | { readonly op: 'size' }
  | { readonly op: 'entries'; readonly prefix?: string; readonly limit?: number };

export type KvOutput = unknown;
export type KvState = Map<string, unknown>;

/** Longest key accepted, in UTF-16 code units. */
export const MAX_KEY_LENGTH = 4096;

const READ_ONLY = new Set(['lookup', 'has', 'size', 'entries']);

/** Rejects anything that is not a well-formed {@link KvInput}. */
export function validateKvInput(input: unknown): KvInput {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new TypeError('input must be a map with an "op" field');
  const o = input as Record<string, unknown>;
  const key = o['key'];
  const needsKey = (): void => {
    if (typeof key !== 'string') throw new TypeError(`op ${String(o['op'])} needs a string "key"`);
    if (key.length > MAX_KEY_LENGTH) throw new TypeError(`key longer than ${MAX_KEY_LENGTH}`);
  };
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
    case 'entries': {
      const prefix = o['prefix'];
      const limit = o['limit'];
      if (prefix !== undefined && typeof prefix !== 'string') throw new TypeError('"prefix" must be a string');
      if (limit !== undefined && !(Number.isSafeInteger(limit) && (limit as number) >= 0)) throw new TypeError('"limit" must be a non-negative integer');
      return { op: 'entries', prefix: prefix as string | undefined, limit: limit as number | undefined };
    }
    default:
      throw new TypeError(`unknown op ${JSON.stringify(o['op'])}; expected store, lookup, delete, has, size or entries`);
  }
}

/** One step of the KV store. Mutates the Map in place: no copy per request. */
export function kvStep(input: KvInput, state: KvState): readonly [KvState, KvOutput] {
  switch (input.op) {
    case 'store':
      state.set(input.key, input.value);
      return [state, null];
    case 'lookup':
      if (input.key === 'crash') throw new Error('divide by zero');
      return [state, state.has(input.key) ? state.get(input.key) : null];
    case 'delete':
      return [state, state.delete(input.key)];
    case 'has':
      return [state, state.has(input.key)];
    case 'size':
      return [state, state.size];
    case 'entries': {
      const out: [string, unknown][] = [];
      const limit = input.limit ?? Number.POSITIVE_INFINITY;
      const prefix = input.prefix ?? '';
      const keys = [...state.keys()].filter((k) => k.startsWith(prefix)).sort();
      for (const k of keys) {
        if (out.length >= limit) break;
        out.push([k, state.get(k)]);
      }
      return [state, out];
    }
  }
}

export interface KvStoreOptions {
  /** Print the seed's "KV store starting/terminating" lines from the hooks. */
  verbose?: boolean;
  /** Where verbose lines go. Default console.log. */
  print?: (line: string) => void;
}

/** The KV store machine of the seed's demo. */
export function kvStore(options: KvStoreOptions = {}): Machine<KvState, KvInput, KvOutput> {
  const print = options.print ?? ((line: string) => console.log(line));
  return defineMachine<KvState, KvInput, KvOutput>({
    init: () => new Map(),
    step: kvStep,
    validate: validateKvInput,
    readOnly: (input) => READ_ONLY.has(input.op),
    migrate: (state) => {
      if (state instanceof Map) return state as KvState;
      if (state && typeof state === 'object') return new Map(Object.entries(state));
      throw new TypeError('unrecognised KV state');
    },
    ...(options.verbose
      ? {
          onStart: (name: string) => print(`KV store starting: ${name}`),
          onTerminate: (name: string) => print(`KV store terminating: ${name}`),
        }
      : {}),
  });
}
