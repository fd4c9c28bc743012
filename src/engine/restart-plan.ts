import type { RestartType, Strategy } from '../model/tree.js';

/**
 * Pure supervision decisions, kept apart from the runtime so they can be tested exhaustively.
 */

/** What a supervisor does when its child at `failedIndex` fails. */
export type RestartDecision =
  /**
   * Stop `stop` (indices, in that order) then start `start` (indices, in that order). `start` is
   * the reverse of `stop` without temporary children.
   */
  | { readonly action: 'restart'; readonly stop: readonly number[]; readonly start: readonly number[] }
  /** A temporary child: it stays stopped, nothing else is touched. */
  | { readonly action: 'drop'; readonly stop: readonly number[] }
  /** Intensity exceeded: stop every child (reverse order) and fail the supervisor itself. */
  | { readonly action: 'escalate'; readonly stop: readonly number[] };

/** Children to restart for a failure of child `failed`, in start order. */
export function affectedChildren(strategy: Strategy, count: number, failed: number, alive: readonly boolean[]): number[] {
  const range = (from: number): number[] => {
    const out: number[] = [];
    for (let i = from; i < count; i++) if (i === failed || alive[i]) out.push(i);
    return out;
  };
  switch (strategy) {
    case 'one_for_one':
      return [failed];
    case 'one_for_all':
      return range(0);
    case 'rest_for_one':
      return range(failed);
  }
}

/**
 * Sliding-window restart intensity, as OTP: more than `intensity` restarts within `periodMs`
 * means the supervisor gives up. Returns the new window and whether it was exceeded.
 */
export function recordRestart(times: readonly number[], now: number, intensity: number, periodMs: number): { times: number[]; exceeded: boolean } {
  const recent = times.filter((t) => now - t < periodMs);
  recent.push(now);
  return { times: recent, exceeded: recent.length > intensity };
}

/** What both decisions read of a supervisor: its strategy, its children and its restart window. */
export interface SupervisorWindow {
  readonly strategy: Strategy;
  readonly childCount: number;
  readonly restartTimes: readonly number[];
  readonly intensity: number;
  readonly periodMs: number;
  readonly now: number;
}

export interface FailureInput extends SupervisorWindow {
  readonly failed: number;
  readonly failedRestart: RestartType;
  /**
   * Restart type of every child (supervisors count as permanent). Temporary siblings caught in a
   * one_for_all / rest_for_one restart are stopped and, as in OTP, not started again.
   * Omitted: no temporary siblings.
   */
  readonly childRestart?: readonly RestartType[];
  /** Which children are currently running (the failed one counts as not running). */
  readonly alive: readonly boolean[];
}

/** Decides what a supervisor does about one failed child, and its new restart window. */
export function planRestart(input: FailureInput): { decision: RestartDecision; restartTimes: number[] } {
  const { strategy, childCount, failed, alive } = input;
  if (input.failedRestart === 'temporary') {
    return { decision: { action: 'drop', stop: [failed] }, restartTimes: [...input.restartTimes] };
  }
  const window = recordRestart(input.restartTimes, input.now, input.intensity, input.periodMs);
  if (window.exceeded) {
    const all: number[] = [];
    for (let i = childCount - 1; i >= 0; i--) if (i === failed || alive[i]) all.push(i);
    return { decision: { action: 'escalate', stop: all }, restartTimes: window.times };
  }
  const affected = affectedChildren(strategy, childCount, failed, alive);
  const start = affected.filter((i) => input.childRestart?.[i] !== 'temporary');
  return { decision: { action: 'restart', stop: [...affected].reverse(), start }, restartTimes: window.times };
}

export interface RetryInput extends SupervisorWindow {
  /** The child whose start failed during the restart. */
  readonly failed: number;
  /** The `start` list of the restart attempt that failed, in start order. */
  readonly pending: readonly number[];
  /** Which children are running now (the one that failed to start counts as not running). */
  readonly alive: readonly boolean[];
}

/**
 * Decides the next attempt after a restart whose start of child `failed` threw, as OTP's
 * `try_again_restart`: the attempt counts against the intensity like any restart (`add_restart`),
 * so a start that keeps failing ends in escalation, and one that fails once is survived.
 * What is tried again follows OTP's `restart/3`:
 * - one_for_one: the failed child alone;
 * - one_for_all: every child of the failed attempt; those already restarted are stopped first
 *   (`restart_multiple_children` -> `terminate_children`);
 * - rest_for_one: the failed child and those after it in the failed attempt (`split_child`); the
 *   ones before it, already restarted, are kept.
 * Temporary children were already left out of `pending`, so they are never started again.
 * `stop` lists the running children among those (and the failed one, whose partly started
 * subtree must be torn down), in reverse start order.
 */
export function planRetry(input: RetryInput): { decision: RestartDecision; restartTimes: number[] } {
  const { failed, alive } = input;
  const window = recordRestart(input.restartTimes, input.now, input.intensity, input.periodMs);
  const running = (i: number): boolean => i === failed || alive[i] === true;
  if (window.exceeded) {
    const all: number[] = [];
    for (let i = input.childCount - 1; i >= 0; i--) if (running(i)) all.push(i);
    return { decision: { action: 'escalate', stop: all }, restartTimes: window.times };
  }
  const start =
    input.strategy === 'one_for_one' ? [failed] : input.strategy === 'one_for_all' ? [...input.pending] : input.pending.filter((i) => i >= failed);
  const stop = start.filter(running).reverse();
  return { decision: { action: 'restart', stop, start }, restartTimes: window.times };
}
