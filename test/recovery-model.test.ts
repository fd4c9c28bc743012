/**
 * Recovery equals uninterrupted execution. Random sequences of KV operations, deliberate crashes
 * (lookup "crash"), concurrent bursts (several requests per batch), checkpoints, graceful
 * restarts and restarts whose terminate snapshot fails (so recovery must replay the log), under
 * small snapshot policies and each restart strategy: after every operation each machine's state,
 * read back through the API, equals a plain Map model, and its sequence number equals the count
 * of logged writes.
 */
import test from 'ava';
import fc from 'fast-check';
import type { App } from '../src/engine/application.js';
import type { LifecycleEvent } from '../src/engine/logger.js';
import type { Durability } from '../src/storage/store-options.js';
import type { Strategy } from '../src/model/tree.js';
import { kvEntries, kvTree, modelEntries, recoveryOf, startRecording, tempDb, workerStatus } from './helpers/persistence-kv.js';

const MACHINES = ['kv1', 'kv2'] as const;
type M = (typeof MACHINES)[number];

type Req =
  | { t: 'store'; m: M; key: string; value: unknown }
  | { t: 'delete'; m: M; key: string }
  | { t: 'lookup'; m: M; key: string }
  | { t: 'crash'; m: M };
type Op = Req | { t: 'burst'; reqs: Req[] } | { t: 'restart' } | { t: 'restartLosingSnapshot' } | { t: 'checkpoint'; m: M | null };

const machine = fc.constantFrom<M>(...MACHINES);
const key = fc.constantFrom('a', 'b', 'c', 'd');
const value = fc.oneof(
  fc.integer(),
  fc.string({ maxLength: 6 }),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
  fc.array(fc.integer({ min: -5, max: 5 }), { maxLength: 3 }),
  fc.record({ n: fc.integer(), s: fc.string({ maxLength: 3 }) }),
  fc.constant(null),
  fc.boolean(),
);
const req: fc.Arbitrary<Req> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constant('store' as const), m: machine, key, value }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('delete' as const), m: machine, key }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('lookup' as const), m: machine, key }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('crash' as const), m: machine }) },
);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: req },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('burst' as const), reqs: fc.array(req, { minLength: 2, maxLength: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('restart' as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('restartLosingSnapshot' as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('checkpoint' as const), m: fc.option(machine, { nil: null }) }) },
);
const config = fc.record({
  every: fc.integer({ min: 0, max: 5 }),
  keepSnapshots: fc.integer({ min: 1, max: 3 }),
  retainLog: fc.boolean(),
  durability: fc.constantFrom<Durability>('full', 'normal'),
  // Under rest_for_one / one_for_all a crash also restarts healthy siblings (snapshotted on the way).
  strategy: fc.constantFrom<Strategy>('one_for_one', 'rest_for_one', 'one_for_all'),
});

/** What the model says a request answers, applying it to the model. */
function applyModel(models: Record<M, Map<string, unknown>>, seqs: Record<M, number>, r: Req): { ok: true; output: unknown } | { ok: false } {
  const model = models[r.m];
  switch (r.t) {
    case 'store':
      model.set(r.key, r.value);
      seqs[r.m]++;
      return { ok: true, output: null };
    case 'delete':
      seqs[r.m]++;
      return { ok: true, output: model.delete(r.key) };
    case 'lookup':
      return { ok: true, output: model.has(r.key) ? model.get(r.key) : null };
    case 'crash':
      return { ok: false };
  }
}

function send(app: App, r: Req): Promise<unknown> {
  switch (r.t) {
    case 'store':
      return app.call(r.m, { op: 'store', key: r.key, value: r.value });
    case 'delete':
      return app.call(r.m, { op: 'delete', key: r.key });
    case 'lookup':
      return app.call(r.m, { op: 'lookup', key: r.key });
    case 'crash':
      return app.call(r.m, { op: 'lookup', key: 'crash' });
  }
}

test('recovered state equals a Map model after every operation, crash and restart', async (t) => {
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(config, fc.array(op, { minLength: 1, maxLength: 30 }), async (cfg, ops) => {
      runs++;
      const db = tempDb(t, 'ssm-model-');
      let loseSnapshots = false;
      const options = {
        db,
        durability: cfg.durability,
        snapshot: { every: cfg.every, keepSnapshots: cfg.keepSnapshots, retainLog: cfg.retainLog },
        faults: {
          beforeSnapshotCommit: () => {
            if (loseSnapshots) throw new Error('injected: snapshot lost');
          },
        },
      };
      const models: Record<M, Map<string, unknown>> = { kv1: new Map(), kv2: new Map() };
      const seqs: Record<M, number> = { kv1: 0, kv2: 0 };
      let { app, events } = await startRecording(kvTree(MACHINES, undefined, cfg.strategy), options);
      const restart = async (): Promise<LifecycleEvent[]> => {
        await app.stop();
        ({ app, events } = await startRecording(kvTree(MACHINES, undefined, cfg.strategy), options));
        return events;
      };
      const check = async (where: string): Promise<void> => {
        for (const m of MACHINES) {
          const got = await kvEntries(app, m);
          if (JSON.stringify(got, big) !== JSON.stringify(modelEntries(models[m]), big)) {
            throw new Error(`${where}: ${m} state ${JSON.stringify(got, big)} != model ${JSON.stringify(modelEntries(models[m]), big)}`);
          }
          const st = workerStatus(app, m);
          if (st.status !== 'running') throw new Error(`${where}: ${m} is ${st.status}`);
          if (st.seq !== seqs[m]) throw new Error(`${where}: ${m} seq ${st.seq} != ${seqs[m]} logged writes`);
        }
      };
      const expectResult = async (r: Req, p: Promise<unknown>, expected: ReturnType<typeof applyModel>, where: string): Promise<void> => {
        let outcome: { ok: true; output: unknown } | { ok: false; error: unknown };
        try {
          outcome = { ok: true, output: await p };
        } catch (error) {
          outcome = { ok: false, error };
        }
        if (expected.ok) {
          if (!outcome.ok) throw new Error(`${where}: ${r.t} rejected: ${String(outcome.error)}`);
          if (JSON.stringify(outcome.output, big) !== JSON.stringify(expected.output, big)) {
            throw new Error(`${where}: ${r.t} answered ${JSON.stringify(outcome.output, big)}, model ${JSON.stringify(expected.output, big)}`);
          }
        } else if (outcome.ok || (outcome.error as { code?: string }).code !== 'MACHINE_CRASHED') {
          throw new Error(`${where}: crash request did not reject with MACHINE_CRASHED`);
        }
      };
      try {
        for (const [i, o] of ops.entries()) {
          const where = `op ${i} ${o.t}`;
          switch (o.t) {
            case 'burst': {
              // Submitted in one tick: they share batches, and a crash in the middle requeues the rest.
              const promises = o.reqs.map((r) => send(app, r));
              const expected = o.reqs.map((r) => applyModel(models, seqs, r));
              for (const [j, r] of o.reqs.entries()) await expectResult(r, promises[j]!, expected[j]!, `${where}[${j}]`);
              break;
            }
            case 'restart':
            case 'restartLosingSnapshot': {
              loseSnapshots = o.t === 'restartLosingSnapshot';
              let started: LifecycleEvent[];
              try {
                started = await restart();
              } finally {
                loseSnapshots = false;
              }
              for (const m of MACHINES) {
                const rep = recoveryOf(started, m);
                if (!rep || rep.seq !== seqs[m]) throw new Error(`${where}: ${m} recovered to seq ${rep?.seq}, expected ${seqs[m]}`);
              }
              break;
            }
            case 'checkpoint':
              await app.checkpoint(o.m ?? undefined);
              break;
            default:
              await expectResult(o, send(app, o), applyModel(models, seqs, o), where);
          }
          await check(where);
        }
        // Finally, a cold restart must reproduce the same state.
        await restart();
        await check('final restart');
      } finally {
        await app.stop();
      }
    }),
    { numRuns: Number(process.env['SSM_MODEL_RUNS'] ?? 100) },
  );
  t.true(runs >= 1);
});

function big(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? `${v}n` : v;
}
