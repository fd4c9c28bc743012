import { ConfigError } from '../errors.js';
import type { AnyMachine } from './machine.js';
import type { RestartType } from './tree.js';

/**
 * Options of {@link entities}: a family of machines, one per key, woken on their first request
 * and put to sleep when idle (OTP's simple_one_for_one with passivation).
 */
export interface EntitiesOptions {
  /**
   * Put an entity to sleep after this long without a request (ms): snapshotted if it changed
   * since its last snapshot, its `onTerminate` hook run, and out of memory. One sweep per family
   * (every `idleMs / 4`, at least 10 ms and at most 1 s apart), never a timer per entity.
   * @default 60_000
   */
  idleMs?: number;
  /**
   * Most entities awake at once: past it, the least recently used ones are put to sleep (in one
   * transaction for all their snapshots). Entities with a request in flight are never put to
   * sleep, so for a moment the number awake may exceed it by those.
   * @default 10_000
   */
  maxActive?: number;
  /**
   * Crashes of its entities allowed within `periodMs` before the family fails and its parent
   * supervisor decides (as a supervisor's intensity). OTP's 1 in 5 s fits a handful of
   * workers, not thousands of entities where a few bad inputs are ordinary: the default lets
   * 100 crashes within a second pass, and fails the family on a systemic fault (every entity
   * crashing) within a second.
   * @default 100
   */
  intensity?: number;
  /**
   * Window for `intensity`, in ms.
   * @default 1000
   */
  periodMs?: number;
  /**
   * For each entity, as a worker's: `permanent` and `transient` entities are rebuilt from disk
   * at once after a crash; a `temporary` one leaves memory (its next request wakes it from disk).
   * A crash is counted against `intensity` in every case.
   * @default 'permanent'
   */
  restart?: RestartType;
  /**
   * Grace time of each entity's `onStart`/`onTerminate` hooks, in ms.
   * @default 500
   */
  shutdownMs?: number;
}

/** A family of entities in a supervision tree, made by {@link entities}. */
export interface EntitiesSpec {
  readonly kind: 'entities';
  readonly name: string;
  readonly machine: AnyMachine;
  readonly idleMs: number;
  readonly maxActive: number;
  readonly intensity: number;
  readonly periodMs: number;
  readonly restart: RestartType;
  readonly shutdownMs: number;
}

const NAME = /^[A-Za-z0-9_.:-]{1,128}$/;
const RESTARTS: readonly RestartType[] = ['permanent', 'transient', 'temporary'];

// In a `u` pattern a surrogate pair is one code point: only a lone surrogate matches.
const LONE_SURROGATE = /\p{Cs}/u;

/** Longest entity key, in bytes of UTF-8. */
export const MAX_ENTITY_KEY_BYTES = 1024;

/**
 * A child spec: a family `name` of machines `machine`, one per key, addressed as
 * `'<name>/<key>'` in `app.call`, `callBytes`, `callValue` and `cast`. Placed in a supervisor
 * like a {@link worker}; the family is a supervisor of its entities (see {@link EntitiesOptions}).
 */
export function entities(name: string, machine: AnyMachine, options: EntitiesOptions = {}): EntitiesSpec {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new ConfigError(`entities name must match ${NAME} (letters, digits, _ . : -), got ${JSON.stringify(name)}`);
  }
  if (!machine || typeof machine.step !== 'function' || typeof machine.init !== 'function') {
    throw new ConfigError(`entities ${name}: machine must come from defineMachine()`);
  }
  if (options === null || typeof options !== 'object') throw new ConfigError(`entities ${name}: options must be an object`);
  const int = (field: keyof EntitiesOptions, value: unknown, min: number): number => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) throw new ConfigError(`entities ${name}: ${field} must be an integer >= ${min}, got ${String(value)}`);
    return value;
  };
  const restart = options.restart ?? 'permanent';
  if (!RESTARTS.includes(restart)) throw new ConfigError(`entities ${name}: restart must be one of ${RESTARTS.join(', ')}`);
  const shutdownMs = options.shutdownMs ?? 500;
  if (!(shutdownMs >= 0)) throw new ConfigError(`entities ${name}: shutdownMs must be >= 0`);
  return {
    kind: 'entities',
    name,
    machine,
    idleMs: int('idleMs', options.idleMs ?? 60_000, 1),
    maxActive: int('maxActive', options.maxActive ?? 10_000, 1),
    intensity: int('intensity', options.intensity ?? 100, 0),
    periodMs: int('periodMs', options.periodMs ?? 1000, 1),
    restart,
    shutdownMs,
  };
}

/**
 * Why `key` cannot name an entity, or null: a non-empty string of at most 1 KiB of UTF-8
 * (`/` allowed), well formed (no lone surrogate, which UTF-8 cannot hold).
 */
export function entityKeyProblem(key: string): string | null {
  if (key.length === 0) return 'an entity key must not be empty';
  if (LONE_SURROGATE.test(key)) return 'an entity key must be well-formed Unicode (no lone surrogates)';
  if (Buffer.byteLength(key, 'utf8') > MAX_ENTITY_KEY_BYTES) return `an entity key must be at most ${MAX_ENTITY_KEY_BYTES} bytes of UTF-8`;
  return null;
}
