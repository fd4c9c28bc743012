import fc from 'fast-check';
import { startApplication } from '../../src/engine/application.js';
import type { LifecycleEvent } from '../../src/engine/logger.js';
import { defineMachine, stopNormally } from '../../src/model/machine.js';
import { supervisor, worker, type ChildSpec, type RestartType, type Strategy, type SupervisorSpec } from '../../src/model/tree.js';
import { settled, workerStatus } from './core-fixtures.js';

/**
 * The two sides of the differential test against real OTP: random supervision trees and event
 * sequences, their Erlang terms for test/otp/sup_diff.escript, and the same case run in this
 * library, both reduced to one trace: `start:w` for every successful start, `stop:w` for every
 * termination a supervisor asked for (a worker's own crash or normal exit is not one), and
 * `gaveup` when the root supervisor gave up.
 */

export type TreeCase =
  | { readonly kind: 'sup'; readonly name: string; readonly strategy: Strategy; readonly intensity: number; readonly children: readonly TreeCase[] }
  | { readonly kind: 'worker'; readonly name: string; readonly restart: RestartType };

export type Event = { readonly op: 'crash' | 'quit'; readonly w: string } | { readonly op: 'fail'; readonly w: string; readonly n: number };

export interface Case {
  readonly tree: TreeCase;
  readonly events: readonly Event[];
}

/** Restart windows never expire within a case: the period is an hour on both sides. */
const PERIOD_S = 3600;

const shape = fc.letrec<{ node: unknown }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ kind: fc.constant('worker'), restart: fc.constantFrom<RestartType>('permanent', 'permanent', 'transient', 'temporary') }),
    fc.record({
      kind: fc.constant('sup'),
      strategy: fc.constantFrom<Strategy>('one_for_one', 'one_for_all', 'rest_for_one'),
      intensity: fc.integer({ min: 0, max: 3 }),
      children: fc.array(tie('node'), { minLength: 1, maxLength: 3 }),
    }),
  ),
}));

type Shape = { kind: 'worker'; restart: RestartType } | { kind: 'sup'; strategy: Strategy; intensity: number; children: Shape[] };

/** Names the nodes (w0.., s0..) and caps the depth at 4 supervisors. */
function named(s: Shape, counters = { w: 0, s: 0 }, depth = 1): TreeCase {
  if (s.kind === 'worker' || depth > 4) return { kind: 'worker', name: `w${counters.w++}`, restart: s.kind === 'worker' ? s.restart : 'permanent' };
  return { kind: 'sup', name: `s${counters.s++}`, strategy: s.strategy, intensity: s.intensity, children: s.children.map((c) => named(c, counters, depth + 1)) };
}

const workers = (t: TreeCase): string[] => (t.kind === 'worker' ? [t.name] : t.children.flatMap(workers));

export const caseArb: fc.Arbitrary<Case> = fc
  .record({ root: fc.record({ strategy: fc.constantFrom<Strategy>('one_for_one', 'one_for_all', 'rest_for_one'), intensity: fc.integer({ min: 0, max: 3 }), children: fc.array(shape.node as fc.Arbitrary<Shape>, { minLength: 1, maxLength: 4 }) }), seed: fc.array(fc.tuple(fc.nat(), fc.constantFrom('crash', 'crash', 'quit', 'fail'), fc.integer({ min: 1, max: 2 })), { minLength: 1, maxLength: 6 }) })
  .map(({ root, seed }) => {
    const tree = named({ kind: 'sup', ...root });
    const ws = workers(tree);
    const events = seed.map(([i, op, n]): Event => (op === 'fail' ? { op, w: ws[i % ws.length]!, n } : { op: op as 'crash' | 'quit', w: ws[i % ws.length]! }));
    return { tree, events };
  });

/** The case as an Erlang term for sup_diff.escript. */
export function erlangCase(id: number, c: Case): string {
  const node = (t: TreeCase): string =>
    t.kind === 'worker' ? `{worker, ${t.name}, ${t.restart}}` : `{sup, ${t.name}, ${t.strategy}, ${t.intensity}, ${PERIOD_S}, [${t.children.map(node).join(', ')}]}`;
  const ev = (e: Event): string => (e.op === 'fail' ? `{fail, ${e.w}, ${e.n}}` : `{${e.op}, ${e.w}}`);
  return `{'case', ${id}, ${node(c.tree)}, [${c.events.map(ev).join(', ')}]}.`;
}

/** Runs the case in this library and returns its trace. */
export async function runHere(c: Case): Promise<string[]> {
  const trace: string[] = [];
  const fails = new Map<string, number>();
  // After a crash or normal exit of `target`, its own termination is not one its supervisor asked for.
  let selfExit: string | null = null;
  const logger = (e: LifecycleEvent): void => {
    if (e.type === 'started') trace.push(`start:${e.machine}`);
    if (e.type !== 'terminated' || e.reason === 'crash' || e.reason === 'normal') return;
    if (e.machine === selfExit) {
      selfExit = null;
      return;
    }
    trace.push(`stop:${e.machine}`);
  };
  const machineFor = (name: string) =>
    defineMachine<null, { op: string }, string>({
      init: () => {
        const n = fails.get(name) ?? 0;
        if (n > 0) {
          fails.set(name, n - 1);
          throw new Error(`start of ${name} fails`);
        }
        return null;
      },
      step: (input, state) => {
        if (input.op === 'crash') throw new Error('crash');
        return input.op === 'quit' ? stopNormally(state, 'ok') : [state, 'ok'];
      },
      // Nothing is logged, so nothing is snapshotted: every start calls init(), as OTP's does.
      readOnly: () => true,
    });
  const build = (t: TreeCase): ChildSpec =>
    t.kind === 'worker' ? worker(t.name, machineFor(t.name), { restart: t.restart }) : supervisor(t.strategy, t.children.map(build), { name: t.name, intensity: t.intensity, periodMs: PERIOD_S * 1000 });
  const app = await startApplication(build(c.tree) as SupervisorSpec, { db: ':memory:', logger });
  let gaveUp = false;
  void app.stopped.then((r) => (gaveUp = r.reason === 'failure'));
  const names = workers(c.tree);
  for (const e of c.events) {
    if (e.op === 'fail') {
      fails.set(e.w, e.n);
      continue;
    }
    if (workerStatus(app, e.w).status !== 'running') continue;
    if (e.op === 'quit' && workersRestart(c.tree, e.w) === 'permanent') selfExit = e.w;
    await settled(app.call(e.w, { op: e.op }));
    // The reply to a normal stop comes before its supervisor acts: a call behind it waits for that.
    await settled(app.call(names[0]!, { op: 'noop' }));
    await new Promise((r) => setImmediate(r));
    if (gaveUp) break;
  }
  // OTP's trace is read before its root is shut down: so is this one.
  const result = gaveUp ? [...trace, 'gaveup'] : [...trace];
  await app.stop();
  return result;
}

function workersRestart(t: TreeCase, name: string): RestartType | undefined {
  if (t.kind === 'worker') return t.name === name ? t.restart : undefined;
  for (const c of t.children) {
    const r = workersRestart(c, name);
    if (r) return r;
  }
  return undefined;
}
