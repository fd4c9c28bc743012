import type { ExecutionContext } from 'ava';
import { startApplication, type App } from '../../src/engine/application.js';
import type { ApplicationOptions } from '../../src/engine/options.js';
import type { LifecycleEvent } from '../../src/engine/logger.js';
import { defineMachine, type Machine } from '../../src/model/machine.js';
import type { StatusNode } from '../../src/engine/runtime-tree.js';
import { worker, type SupervisorSpec, type WorkerOptions, type WorkerSpec } from '../../src/model/tree.js';

/**
 * Shared fixtures for the core tests: a small "probe" machine whose hooks and steps write into
 * one trace, so tests can assert exact start/stop/step sequences, plus a captured logger.
 */

export type ProbeInput =
  | { readonly op: 'put'; readonly key: string; readonly value: unknown }
  | { readonly op: 'get'; readonly key: string }
  | { readonly op: 'inc' }
  | { readonly op: 'count' }
  | { readonly op: 'self' }
  | { readonly op: 'crash'; readonly why?: string };

export interface ProbeState {
  n: number;
  items: Record<string, unknown>;
}

export interface ProbeOptions {
  /** Called from onStart; may return a promise (to make the hook slow or never finish). */
  onStart?: (name: string) => void | Promise<void>;
  /** Called from onTerminate; may return a promise. */
  onTerminate?: (name: string) => void | Promise<void>;
}

/** A recording of everything the machines and the logger did, in one order. */
export class Recorder {
  /** `start:<name>`, `stop:<name>`, `step:<label>:<op>[:key]`. */
  readonly trace: string[] = [];
  readonly events: LifecycleEvent[] = [];
  readonly logger = (e: LifecycleEvent): void => {
    this.events.push(e);
  };

  /** Hook calls only (`start:x` / `stop:x`), optionally from position `from` of the trace. */
  hooks(from = 0): string[] {
    return this.trace.slice(from).filter((s) => s.startsWith('start:') || s.startsWith('stop:'));
  }

  /** Compact event lines (`started x`, `terminated x restart`, ...), from event index `from`. */
  lines(from = 0): string[] {
    return this.events.slice(from).map(eventLine);
  }

  /** Names of machines with an event of `type`, in order. */
  machinesWith(type: 'started' | 'terminated' | 'crashed' | 'hook_timeout', from = 0): string[] {
    return this.events.slice(from).flatMap((e) => (e.type === type ? [e.machine] : []));
  }

  /** A worker running its own probe machine. */
  worker(name: string, options: WorkerOptions = {}, probe: ProbeOptions = {}): WorkerSpec {
    return worker(name, this.machine(name, probe), options);
  }

  /** A probe machine writing into this recorder; `label` names it in step lines (use the worker's name). */
  machine(label: string, options: ProbeOptions = {}): Machine<ProbeState, ProbeInput, unknown> {
    const trace = this.trace;
    return defineMachine<ProbeState, ProbeInput, unknown>({
      init: () => ({ n: 0, items: {} }),
      step: (input, state) => {
        trace.push(`step:${label}:${(input as { op: string }).op}${'key' in input ? `:${input.key}` : ''}`);
        switch (input.op) {
          case 'put':
            state.items[input.key] = input.value;
            return [state, null];
          case 'get':
            return [state, input.key in state.items ? state.items[input.key] : null];
          case 'inc':
            state.n++;
            return [state, state.n];
          case 'count':
            return [state, state.n];
          case 'self':
            // The live state object itself: lets a test see whether a machine was restarted
            // (a restart rebuilds state into a new object) without relying on lost data.
            return [state, state];
          case 'crash':
            // Corrupt memory before throwing, as the issue warns step may do.
            state.n = -1000;
            throw new Error(input.why ?? 'boom');
          default:
            throw new Error(`unknown op ${JSON.stringify(input)}`);
        }
      },
      readOnly: (input) => input.op === 'get' || input.op === 'count' || input.op === 'self',
      onStart: (name) => {
        trace.push(`start:${name}`);
        return options.onStart?.(name);
      },
      onTerminate: (name) => {
        trace.push(`stop:${name}`);
        return options.onTerminate?.(name);
      },
    });
  }
}

/** One compact line per event, for exact-sequence assertions. */
export function eventLine(e: LifecycleEvent): string {
  switch (e.type) {
    case 'started':
      return `started ${e.machine}`;
    case 'crashed':
      return `crashed ${e.machine}`;
    case 'terminated':
      return `terminated ${e.machine} ${e.reason}`;
    case 'restarting':
      return `restarting ${e.supervisor} ${e.machines.join(',')}`;
    case 'escalated':
      return `escalated ${e.supervisor}`;
    case 'hook_timeout':
      return `hook_timeout ${e.machine} ${e.hook}`;
    case 'hook_failed':
      return `hook_failed ${e.machine} ${e.hook}`;
    case 'snapshot_failed':
      return `snapshot_failed ${e.machine}`;
    case 'storage_failed':
      return `storage_failed ${e.machines.join(',')}`;
    case 'integrity_failed':
      return `integrity_failed`;
    case 'timers_failed':
      return `timers_failed`;
    case 'backoff':
      return `backoff ${e.supervisor} ${e.machines.join(',')}`;
    case 'held':
      return `held ${e.machine}`;
    case 'application_stopped':
      return `application_stopped`;
  }
}

/** Starts `tree` on an in-memory database with the recorder's logger; stops it after the test. */
export async function startProbeApp(t: ExecutionContext, tree: SupervisorSpec, rec: Recorder, options: ApplicationOptions = {}): Promise<App> {
  const app = await startApplication(tree, { db: ':memory:', logger: rec.logger, ...options });
  t.teardown(() => app.stop());
  return app;
}

/** The status entry of worker `name`. */
export function workerStatus(app: App, name: string): Extract<StatusNode, { kind: 'worker' }> {
  const find = (n: StatusNode): Extract<StatusNode, { kind: 'worker' }> | undefined => {
    if (n.kind !== 'supervisor') return n.kind === 'worker' && n.name === name ? n : undefined;
    for (const c of n.children) {
      const hit = find(c);
      if (hit) return hit;
    }
    return undefined;
  };
  const hit = find(app.status());
  if (!hit) throw new Error(`no worker ${name} in status`);
  return hit;
}

/** The status entry of supervisor `name`. */
export function supervisorStatus(app: App, name: string): Extract<StatusNode, { kind: 'supervisor' }> {
  const find = (n: StatusNode): Extract<StatusNode, { kind: 'supervisor' }> | undefined => {
    if (n.kind !== 'supervisor') return undefined;
    if (n.name === name) return n;
    for (const c of n.children) {
      const hit = find(c);
      if (hit) return hit;
    }
    return undefined;
  };
  const hit = find(app.status());
  if (!hit) throw new Error(`no supervisor ${name} in status`);
  return hit;
}

/** Every worker's `seq`, by name. */
export function seqs(app: App): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of app.machines()) out[name] = workerStatus(app, name).seq;
  return out;
}

/** A promise plus its resolver, for gating hooks from a test. */
export function gate<T = void>(): { promise: Promise<T>; open: (v: T) => void } {
  let open!: (v: T) => void;
  const promise = new Promise<T>((r) => (open = r));
  return { promise, open };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Settles `p` and reports how: keeps a rejection from going unhandled while the test waits. */
export function settled<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}
