import assert from 'node:assert/strict';
import test from 'ava';
import fc from 'fast-check';
import { startApplication } from '../src/engine/application.js';
import { MachineCrashedError } from '../src/errors.js';
import { supervisor, type ChildSpec, type Strategy } from '../src/model/tree.js';
import { Recorder, workerStatus } from './helpers/core-fixtures.js';

/**
 * Model-based test of the whole runtime: random strategies, a random intensity for the inner
 * supervisor, and random sequences of crashes and increments fired at once. A small model
 * predicts which machines are stopped and started, in which order, and every counter; the real
 * application must agree exactly.
 */

type ModelNode =
  | { kind: 'worker'; name: string; parent: ModelSup | null; index: number }
  | ModelSup;
interface ModelSup {
  kind: 'sup';
  strategy: Strategy;
  intensity: number;
  children: ModelNode[];
  parent: ModelSup | null;
  index: number;
  /** Restarts charged in the current window (the period is longer than any run). */
  charged: number;
}

const WORKERS = ['w0', 'w1', 'w2', 'w3', 'w4'];

/** root<rootStrategy>[w0, sub<subStrategy, subIntensity>[w1, w2, w3], w4] */
function buildModel(rootStrategy: Strategy, subStrategy: Strategy, subIntensity: number): { root: ModelSup; byName: Map<string, ModelNode & { kind: 'worker' }> } {
  const root: ModelSup = { kind: 'sup', strategy: rootStrategy, intensity: 1000, children: [], parent: null, index: 0, charged: 0 };
  const sub: ModelSup = { kind: 'sup', strategy: subStrategy, intensity: subIntensity, children: [], parent: root, index: 1, charged: 0 };
  const w = (name: string, parent: ModelSup, index: number) => ({ kind: 'worker' as const, name, parent, index });
  sub.children = [w('w1', sub, 0), w('w2', sub, 1), w('w3', sub, 2)];
  root.children = [w('w0', root, 0), sub, w('w4', root, 2)];
  const byName = new Map<string, ModelNode & { kind: 'worker' }>();
  const visit = (n: ModelNode): void => {
    if (n.kind === 'worker') byName.set(n.name, n);
    else n.children.forEach(visit);
  };
  visit(root);
  return { root, byName };
}

const workersIn = (n: ModelNode): string[] => (n.kind === 'worker' ? [n.name] : n.children.flatMap(workersIn));
const supsIn = (n: ModelNode): ModelSup[] => (n.kind === 'worker' ? [] : [n, ...n.children.flatMap(supsIn)]);

function affected(strategy: Strategy, count: number, failed: number): number[] {
  const all = [...Array(count).keys()];
  return strategy === 'one_for_one' ? [failed] : strategy === 'one_for_all' ? all : all.filter((i) => i >= failed);
}

/** Applies one crash of `name` to the model, appending the expected hook calls to `trace`. */
function modelCrash(root: ModelSup, byName: Map<string, ModelNode & { kind: 'worker' }>, name: string, trace: string[], running: Set<string>, restarts: Map<string, number>): void {
  const crashedOne = byName.get(name)!;
  // The crashed worker's onTerminate still runs when it is stopped: it is "not yet stopped".
  let sup = crashedOne.parent!;
  let failed = crashedOne.index;
  for (;;) {
    sup.charged++;
    if (sup.charged > sup.intensity) {
      // Escalate: stop all of sup's workers in reverse, then the parent deals with sup.
      for (const w of workersIn(sup).reverse()) if (running.has(w)) (trace.push(`stop:${w}`), running.delete(w));
      assert.ok(sup.parent, 'the model never lets the root give up');
      failed = sup.index;
      sup = sup.parent;
      continue;
    }
    const nodes = affected(sup.strategy, sup.children.length, failed).map((i) => sup.children[i]!);
    const names = nodes.flatMap(workersIn);
    for (const w of [...names].reverse()) if (running.has(w)) (trace.push(`stop:${w}`), running.delete(w));
    for (const w of names) {
      trace.push(`start:${w}`);
      running.add(w);
      restarts.set(w, (restarts.get(w) ?? 0) + 1);
    }
    for (const s of nodes.flatMap(supsIn)) s.charged = 0;
    return;
  }
}

const strategyArb = fc.constantFrom<Strategy>('one_for_one', 'one_for_all', 'rest_for_one');
const commandArb = fc.record({ kind: fc.constantFrom('crash', 'inc', 'inc'), target: fc.constantFrom(...WORKERS) });

test('model: random crash sequences restart exactly the predicted machines, in the predicted order, losing nothing', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      strategyArb,
      strategyArb,
      fc.integer({ min: 0, max: 3 }),
      fc.array(commandArb, { minLength: 1, maxLength: 14 }),
      fc.boolean(),
      async (rootStrategy, subStrategy, subIntensity, commands, concurrent) => {
        const rec = new Recorder();
        const spec: ChildSpec[] = [
          rec.worker('w0'),
          supervisor(subStrategy, [rec.worker('w1'), rec.worker('w2'), rec.worker('w3')], { name: 'sub', intensity: subIntensity, periodMs: 3_600_000 }),
          rec.worker('w4'),
        ];
        const app = await startApplication(supervisor(rootStrategy, spec, { name: 'root', intensity: 1000, periodMs: 3_600_000 }), { db: ':memory:', logger: rec.logger });
        try {
          const mark = rec.trace.length;
          const { root, byName } = buildModel(rootStrategy, subStrategy, subIntensity);
          const expectedTrace: string[] = [];
          const running = new Set(WORKERS);
          const restarts = new Map<string, number>();
          const counts = new Map<string, number>();
          const expectedOutputs: unknown[] = [];
          for (const c of commands) {
            if (c.kind === 'crash') {
              modelCrash(root, byName, c.target, expectedTrace, running, restarts);
              expectedOutputs.push('crashed');
            } else {
              counts.set(c.target, (counts.get(c.target) ?? 0) + 1);
              expectedOutputs.push(counts.get(c.target));
            }
          }
          const send = (c: (typeof commands)[number]) =>
            app.call(c.target, { op: c.kind }).then(
              (v) => v,
              (e: unknown) => {
                assert.ok(e instanceof MachineCrashedError, `unexpected ${String(e)}`);
                assert.equal(e.machine, c.target);
                return 'crashed';
              },
            );
          let outputs: unknown[];
          if (concurrent) outputs = await Promise.all(commands.map(send));
          else {
            outputs = [];
            for (const c of commands) outputs.push(await send(c));
          }
          assert.deepEqual(outputs, expectedOutputs, 'every reply, in order');
          assert.deepEqual(rec.hooks(mark), expectedTrace, 'stop/start hook sequence');
          for (const w of WORKERS) {
            assert.equal(workerStatus(app, w).restarts, restarts.get(w) ?? 0, `restarts of ${w}`);
            assert.equal(await app.call(w, { op: 'count' }), counts.get(w) ?? 0, `counter of ${w}`);
            assert.equal(workerStatus(app, w).status, 'running');
          }
          assert.equal((await Promise.race([app.stopped, Promise.resolve('running')])), 'running');
        } finally {
          await app.stop();
        }
      },
    ),
    { numRuns: 150 },
  );
  t.pass();
});
