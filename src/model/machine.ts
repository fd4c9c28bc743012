import { cborCodec, type Codec } from './codec.js';
import { ConfigError } from '../errors.js';

/**
 * What a user writes: plain, sequential, synchronous business logic.
 *
 * `step` must be deterministic given `(input, state)`: after a crash or a restart the state is
 * rebuilt by replaying logged inputs through it. Time and randomness must arrive as inputs.
 */
export interface MachineDefinition<S, I, O> {
  /** The initial state, used when storage has nothing for this machine. */
  init(): S;
  /**
   * Applies one input. May mutate and return the same state object (large states should not be
   * copied per step). A throw is a crash: the in-memory state is then treated as corrupt and
   * rebuilt from storage. Return {@link stopNormally}`(state, output)` to reply and then stop
   * the machine normally (OTP's `{stop, normal, Reply, State}`).
   */
  step(input: I, state: S): StepResult<S, O>;
  /** Wire codec for {@link App.callBytes} and HTTP. Defaults to CBOR. */
  codec?: Codec<I, O>;
  /**
   * Checks and narrows an input decoded from untrusted bytes (the codec's output, or JSON over
   * HTTP) before it can reach `step`; throw to reject it as a DecodeError. Without it, a
   * malformed input would crash the machine and count against restart intensity.
   */
  validate?(input: unknown): I;
  /**
   * Called at the door for every call to this machine (`call`, `callValue`, `callBytes`, `cast`;
   * after `validate` for the untrusted ones), outside any step: the place to attach to an input
   * what a step may not read itself, such as the clock. What it returns is what is stepped and
   * logged, so replay sees the same. An idempotency key is matched on the input as it was before
   * this (a retry stamped with a later time is still the same request). Throw to refuse the call
   * (a TypeError becomes a DecodeError). Not called for timer deliveries, nor in replay.
   */
  stamp?(input: I): I;
  /** Inputs for which this returns true do not change state: they are never logged. */
  readOnly?(input: I): boolean;
  /**
   * Called (between batches, with the live state) before `input` is stepped. Return a promise
   * when stepping it now would first do long work on data derived from the state (e.g. build an
   * index) that can be done in the background in short slices: the event loop then holds this
   * machine's requests (this one and every later one, in order; other machines go on) until it
   * settles, once per request. Must not change what any step returns (replay never calls it),
   * only when a cost is paid; a step must still be correct if called before it settles.
   */
  whenReady?(input: I, state: S): PromiseLike<unknown> | null | undefined;
  /** Version of the state's shape, stored with every snapshot. Defaults to 1. */
  version?: number;
  /** Upgrades a snapshot's state taken at `fromVersion` to the current `version`. */
  migrate?(state: unknown, fromVersion: number): S;
  /**
   * A per-key view of a map-like state, kept as rows of the `kv_entries` table (see
   * {@link EntryProjection}); without it the state is shown whole in `machine_states`.
   */
  entries?: EntryProjection<I, S>;
  /** Runs after the state is restored, under the worker's shutdown grace time. */
  onStart?(name: string, state: S): void | Promise<void>;
  /** Runs when the machine is stopped or restarted, under the worker's shutdown grace time. */
  onTerminate?(name: string, state: S): void | Promise<void>;
}

/**
 * How a machine's state reads as rows `(key, value)` in the `kv_entries` table, for people with
 * the sqlite3 CLI. Kept in the commit of every batch; derived, never read by recovery.
 */
export interface EntryProjection<I, S> {
  /**
   * The keys a state-changing input may change (more is harmless; missing one leaves its row
   * stale until the next rebuild). Called before the step, on the input the step gets and the
   * state before the step (for an input whose keys the state decides, such as a removal of
   * expired keys); it must not change either.
   */
  keys(input: I, state: S): Iterable<string>;
  /** A key's value in `state` (`undefined`: absent, its row is removed). */
  value(state: S, key: string): unknown;
  /** Every entry of `state`, to rebuild the rows. */
  all(state: S): Iterable<readonly [string, unknown]>;
}

/**
 * Asks for a normal stop, as the third element of what `step` returns. The reply is delivered,
 * the returned state is committed like any other, and the machine is then stopped with a
 * snapshot of that state (OTP's `{stop, normal, Reply, State}`). What follows depends on the
 * worker's restart type, as in OTP: `permanent` is restarted (from that snapshot) and the
 * restart counts against the intensity; `transient` and `temporary` stay stopped (calls get
 * MachineStoppedError) until the application is started again, which restores that state.
 */
export interface StopDirective {
  readonly stop: 'normal';
}

/**
 * A durable timer command of a step ({@link setTimer}, {@link cancelTimer}). Steps are
 * deterministic and cannot read the clock, so time arrives as an input: a timer delivers `input`
 * to its own machine, as a logged request of its own, at `at` (ms since the epoch) or `afterMs`
 * after the commit of the request that set it.
 */
export type TimerCommand =
  | { readonly timer: string; readonly input: unknown; readonly at: number }
  | { readonly timer: string; readonly input: unknown; readonly afterMs: number }
  | { readonly cancel: string };

/**
 * What a step may ask for besides its state and output, as the third element of its result:
 * a normal stop, and timer commands (applied in order, in the commit of the request).
 */
export interface StepEffects {
  readonly stop?: 'normal';
  /** An entity deletes itself (see {@link deleteEntity}); a crash for a machine of the tree. */
  readonly delete?: true;
  readonly timers?: readonly TimerCommand[];
}

/** What `step` returns: the new state and the output, and optionally {@link StepEffects}. */
export type StepResult<S, O> = readonly [S, O] | readonly [S, O, StepEffects];

const NORMAL: StopDirective = Object.freeze({ stop: 'normal' });

/** `return stopNormally(state, output)` from a step: reply `output`, then stop normally. */
export function stopNormally<S, O>(state: S, output: O): readonly [S, O, StopDirective] {
  return [state, output, NORMAL];
}

/**
 * A timer command: deliver `input` to this machine (or entity) at `when.at` (a Date or ms since
 * the epoch) or `when.afterMs` after this request's commit. Setting an id that is pending
 * replaces that timer. `id`: a non-empty string of at most 1024 bytes of UTF-8.
 */
export function setTimer(id: string, input: unknown, when: { readonly afterMs: number } | { readonly at: number | Date }): TimerCommand {
  if ('at' in when) return { timer: id, input, at: when.at instanceof Date ? when.at.getTime() : when.at };
  return { timer: id, input, afterMs: when.afterMs };
}

/** A timer command: cancel the pending timer `id` of this machine (nothing if there is none). */
export function cancelTimer(id: string): TimerCommand {
  return { cancel: id };
}

/** `return withTimers(state, output, setTimer(...), cancelTimer(...))` from a step. */
export function withTimers<S, O>(state: S, output: O, ...timers: TimerCommand[]): readonly [S, O, StepEffects] {
  return [state, output, { timers }];
}

/** Checks what a step returned; throws TypeError (a crash) unless it is a {@link StepResult}. */
export function checkStepResult(result: unknown, name: string): asserts result is StepResult<unknown, unknown> {
  if (Array.isArray(result) && result.length === 2) return;
  if (Array.isArray(result) && result.length === 3) {
    const d = result[2] as { stop?: unknown; timers?: unknown } | null;
    if (d !== null && typeof d === 'object' && (d.stop === undefined || d.stop === 'normal') && (d.timers === undefined || Array.isArray(d.timers)) && ((d as { delete?: unknown }).delete === undefined || (d as { delete?: unknown }).delete === true)) return;
  }
  throw new TypeError(`step of ${name} must return [state, output] or stopNormally(state, output), or withTimers(state, output, ...timers)`);
}

/**
 * `return deleteEntity(state, output)` from an entity's step: reply `output` once the entity is
 * gone: its state, snapshots, log, failure rows, idempotency keys, timers and registry row are
 * removed in the commit of this request (or, if that commit fails, none of it). The entity
 * goes on from `init()` (its next state-changing request registers it again). A machine of
 * the tree cannot delete itself: that is a crash.
 */
export function deleteEntity<S, O>(state: S, output: O): readonly [S, O, StepEffects] {
  return [state, output, DELETE];
}

const DELETE: StepEffects = Object.freeze({ delete: true as const });

/** Whether a checked step result deletes its entity. */
export const deletesEntity = (result: StepResult<unknown, unknown>): boolean => result.length === 3 && result[2].delete === true;

/** Whether a checked step result asks for a normal stop. */
export const stopsNormally = (result: StepResult<unknown, unknown>): boolean => result.length === 3 && result[2].stop === 'normal';

/** The timer commands of a checked step result (empty for most). */
export const timerCommands = (result: StepResult<unknown, unknown>): readonly TimerCommand[] => (result.length === 3 ? (result[2].timers ?? NO_TIMERS) : NO_TIMERS);

const NO_TIMERS: readonly TimerCommand[] = Object.freeze([]);

/** A machine definition with defaults filled in. */
export interface Machine<S, I, O> extends MachineDefinition<S, I, O> {
  readonly codec: Codec<I, O>;
  readonly version: number;
  readonly readOnly: (input: I) => boolean;
  readonly validate: (input: unknown) => I;
}

/** Any machine, for containers that hold machines of different types. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyMachine = Machine<any, any, any>;

const never = (): boolean => false;
const identity = <I>(input: unknown): I => input as I;

/** Validates a machine definition and fills in its defaults (CBOR codec, version 1). */
export function defineMachine<S, I, O>(def: MachineDefinition<S, I, O>): Machine<S, I, O> {
  if (typeof def.init !== 'function') throw new ConfigError('defineMachine: init must be a function');
  if (typeof def.step !== 'function') throw new ConfigError('defineMachine: step must be a function');
  const version = def.version ?? 1;
  if (!Number.isSafeInteger(version) || version < 1) throw new ConfigError(`defineMachine: version must be a positive integer, got ${version}`);
  return {
    ...def,
    codec: def.codec ?? cborCodec<I, O>(),
    version,
    readOnly: def.readOnly ? def.readOnly.bind(def) : never,
    ...(def.whenReady ? { whenReady: def.whenReady.bind(def) } : {}),
    ...(def.stamp ? { stamp: def.stamp.bind(def) } : {}),
    validate: def.validate ? def.validate.bind(def) : identity<I>,
  };
}
