import { ConfigError } from '../errors.js';
import type { AnyMachine } from './machine.js';
import { resolveBackoff, type BackoffOptions, type ResolvedBackoff } from './backoff.js';
import type { EntitiesSpec } from './entities.js';

/** OTP restart strategies. */
export type Strategy = 'one_for_one' | 'one_for_all' | 'rest_for_one';

/**
 * OTP child restart types. `permanent`: restarted after a crash and after a normal exit
 * ({@link stopNormally}); `transient`: only after a crash; `temporary`: never.
 */
export type RestartType = 'permanent' | 'transient' | 'temporary';

export interface WorkerOptions {
  /** Default `permanent`. */
  restart?: RestartType;
  /** Grace time for the `onStart`/`onTerminate` hooks, in ms. Default 500. */
  shutdownMs?: number;
  /** Delay restarts after crashes, growing per consecutive crash (not in OTP). Default: none, restart at once as OTP. */
  backoff?: BackoffOptions;
}

export interface SupervisorOptions {
  /** Restarts allowed within `periodMs` before the supervisor gives up. Default 1 (as OTP). */
  intensity?: number;
  /** Window for `intensity`, in ms. Default 5000 (as OTP). */
  periodMs?: number;
  /** Name shown in status and logs. Defaults to its position, e.g. `root/1`. */
  name?: string;
}

export interface WorkerSpec {
  readonly kind: 'worker';
  readonly name: string;
  readonly machine: AnyMachine;
  readonly restart: RestartType;
  readonly shutdownMs: number;
  readonly backoff: ResolvedBackoff | null;
}

export interface SupervisorSpec {
  readonly kind: 'supervisor';
  readonly name: string | undefined;
  readonly strategy: Strategy;
  readonly children: readonly ChildSpec[];
  readonly intensity: number;
  readonly periodMs: number;
}

export type ChildSpec = WorkerSpec | SupervisorSpec | EntitiesSpec;

const STRATEGIES: readonly Strategy[] = ['one_for_one', 'one_for_all', 'rest_for_one'];
const RESTARTS: readonly RestartType[] = ['permanent', 'transient', 'temporary'];
const NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

/** A leaf of the tree: a named state machine. */
export function worker(name: string, machine: AnyMachine, options: WorkerOptions = {}): WorkerSpec {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new ConfigError(`worker name must match ${NAME} (letters, digits, _ . : -), got ${JSON.stringify(name)}`);
  }
  if (!machine || typeof machine.step !== 'function' || typeof machine.init !== 'function') {
    throw new ConfigError(`worker ${name}: machine must come from defineMachine()`);
  }
  const restart = options.restart ?? 'permanent';
  if (!RESTARTS.includes(restart)) throw new ConfigError(`worker ${name}: restart must be one of ${RESTARTS.join(', ')}`);
  const shutdownMs = options.shutdownMs ?? 500;
  if (!(shutdownMs >= 0)) throw new ConfigError(`worker ${name}: shutdownMs must be >= 0`);
  return { kind: 'worker', name, machine, restart, shutdownMs, backoff: resolveBackoff(name, options.backoff) };
}

/** An inner node of the tree: supervises its children with one of OTP's strategies. */
export function supervisor(strategy: Strategy, children: readonly ChildSpec[], options: SupervisorOptions = {}): SupervisorSpec {
  if (!STRATEGIES.includes(strategy)) throw new ConfigError(`supervisor strategy must be one of ${STRATEGIES.join(', ')}, got ${JSON.stringify(strategy)}`);
  if (!Array.isArray(children)) throw new ConfigError('supervisor children must be an array');
  children.forEach((child, i) => checkChild(child, `supervisor child ${i}`));
  if (options === null || typeof options !== 'object') throw new ConfigError('supervisor options must be an object');
  const intensity = options.intensity ?? 1;
  const periodMs = options.periodMs ?? 5000;
  // As OTP's validIntensity/validPeriod: integers, so a window of Infinity (never forgetting a
  // restart) or NaN (never counting one) cannot slip in.
  if (!Number.isSafeInteger(intensity) || intensity < 0) throw new ConfigError(`supervisor intensity must be an integer >= 0, got ${String(intensity)}`);
  if (!Number.isSafeInteger(periodMs) || periodMs <= 0) throw new ConfigError(`supervisor periodMs must be an integer > 0, got ${String(periodMs)}`);
  return { kind: 'supervisor', name: options.name, strategy, children, intensity, periodMs };
}

/** Worker names (not entity families) in depth-first, left-to-right (start) order; throws on duplicates. */
export function workerNames(tree: SupervisorSpec): string[] {
  const names: string[] = [];
  const seen = new Set<string>();
  const visit = (node: ChildSpec): void => {
    checkChild(node, 'tree node');
    if (node.kind === 'worker' || node.kind === 'entities') {
      if (seen.has(node.name)) throw new ConfigError(`duplicate machine name in tree: ${node.name}`);
      seen.add(node.name);
      if (node.kind === 'worker') names.push(node.name);
    } else {
      node.children.forEach(visit);
    }
  };
  if (!tree || tree.kind !== 'supervisor') throw new ConfigError('the root of the tree must be a supervisor(...)');
  visit(tree);
  return names;
}

/**
 * Throws ConfigError unless `child` is a spec made by {@link worker} or {@link supervisor}: as
 * OTP's check_childspec answers `{invalid_child_spec, X}`, never a TypeError from deep inside.
 */
function checkChild(child: unknown, what: string): asserts child is ChildSpec {
  const kind = child !== null && typeof child === 'object' ? (child as { kind?: unknown }).kind : undefined;
  if (kind === 'worker' || kind === 'entities' || (kind === 'supervisor' && Array.isArray((child as { children?: unknown }).children))) return;
  let shown: string;
  try {
    shown = JSON.stringify(child) ?? String(child);
  } catch {
    shown = String(child);
  }
  throw new ConfigError(`${what} is not a child spec (use worker(...), entities(...) or supervisor(...)), got ${shown.slice(0, 80)}`);
}
