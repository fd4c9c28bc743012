import { ConfigError } from '../errors.js';

/**
 * Restart backoff of a worker (not in OTP; as Akka's `restartWithBackoff`): after a crash, its
 * supervisor waits before restarting it, longer after each consecutive crash.
 */
export interface BackoffOptions {
  /** Delay before the restart after a first crash, in ms (> 0, at most {@link MAX_BACKOFF_MS}). */
  minMs: number;
  /** Longest delay, in ms (>= minMs, at most {@link MAX_BACKOFF_MS}). */
  maxMs: number;
  /**
   * Each consecutive crash multiplies the delay by this (>= 1).
   * @default 2
   */
  factor?: number;
  /**
   * Random share added to each delay (0 to 1: up to that fraction more), so that machines that
   * crashed together do not restart in lockstep.
   * @default 0
   */
  jitter?: number;
  /**
   * A machine that ran this long (ms) without crashing starts again from `minMs`.
   * @default maxMs
   */
  resetAfterMs?: number;
  /**
   * What its callers meet meanwhile: `queue` waits for the restart (bounded by their timeouts
   * and the queue's capacity; other machines are served as usual), `fail` refuses at once with
   * MachineRestartingError and its `retryAfterMs`.
   * @default 'queue'
   */
  whileWaiting?: 'queue' | 'fail';
}

/**
 * The longest delay a backoff may be (2^31-1 ms, about 24.8 days): what a timer holds. Node fires a
 * longer setTimeout at once (with a warning), which would turn a long configured delay into an
 * immediate restart loop, so longer ones are refused and a jittered delay is capped at this.
 */
export const MAX_BACKOFF_MS = 2 ** 31 - 1;

/** Every key {@link BackoffOptions} accepts: any other is a ConfigError (a misspelt key must not be silently ignored). */
const KEYS: readonly string[] = ['minMs', 'maxMs', 'factor', 'jitter', 'resetAfterMs', 'whileWaiting'] satisfies (keyof BackoffOptions)[];

/** {@link BackoffOptions} with every default applied. */
export type ResolvedBackoff = Readonly<Required<BackoffOptions>>;

/** Checks a worker's backoff options (ConfigError naming the worker) and applies the defaults. */
export function resolveBackoff(worker: string, options: BackoffOptions | undefined): ResolvedBackoff | null {
  if (options === undefined) return null;
  const bad = (what: string): never => {
    throw new ConfigError(`worker ${worker}: backoff.${what}`);
  };
  if (typeof options !== 'object' || options === null) bad('must be { minMs, maxMs, ... }');
  const unknown = Object.keys(options).filter((k) => !KEYS.includes(k));
  if (unknown.length > 0) bad(`${unknown[0]} is not a backoff option (accepted: ${KEYS.join(', ')})`);
  const { minMs, maxMs, factor = 2, jitter = 0, whileWaiting = 'queue' } = options;
  if (typeof minMs !== 'number' || !Number.isFinite(minMs) || minMs <= 0 || minMs > MAX_BACKOFF_MS) bad(`minMs must be a number > 0 and <= ${MAX_BACKOFF_MS} (what a timer holds), got ${String(minMs)}`);
  if (typeof maxMs !== 'number' || !Number.isFinite(maxMs) || maxMs < minMs || maxMs > MAX_BACKOFF_MS) bad(`maxMs must be a number >= minMs and <= ${MAX_BACKOFF_MS} (what a timer holds), got ${String(maxMs)}`);
  if (typeof factor !== 'number' || !Number.isFinite(factor) || factor < 1) bad(`factor must be a finite number >= 1, got ${String(factor)}`);
  if (typeof jitter !== 'number' || !(jitter >= 0 && jitter <= 1)) bad(`jitter must be between 0 and 1, got ${String(jitter)}`);
  const resetAfterMs = options.resetAfterMs ?? maxMs;
  if (typeof resetAfterMs !== 'number' || !(resetAfterMs > 0)) bad(`resetAfterMs must be > 0, got ${String(resetAfterMs)}`);
  if (whileWaiting !== 'queue' && whileWaiting !== 'fail') bad(`whileWaiting must be 'queue' or 'fail', got ${String(whileWaiting)}`);
  return { minMs, maxMs, factor, jitter, resetAfterMs, whileWaiting };
}

/** How many crashes in a row this one is: 1 again after a run of at least `resetAfterMs`. */
export function consecutiveCrashes(previous: number, ranMs: number, policy: ResolvedBackoff): number {
  return ranMs >= policy.resetAfterMs ? 1 : previous + 1;
}

/** The delay before restarting after the `consecutive`-th crash in a row; `random` in [0, 1). At most {@link MAX_BACKOFF_MS}. */
export function backoffDelay(consecutive: number, policy: ResolvedBackoff, random: number): number {
  const base = Math.min(policy.maxMs, policy.minMs * policy.factor ** Math.max(0, consecutive - 1));
  // Jitter may add up to maxMs again: capped so the timer never overflows into firing at once.
  return Math.min(MAX_BACKOFF_MS, Math.round(base * (1 + policy.jitter * random)));
}
