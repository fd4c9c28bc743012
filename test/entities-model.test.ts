/**
 * Model-based property test of entities (fast-check): random calls to random keys, crashes,
 * deletes, idle sleeps, LRU evictions (maxActive 3), checkpoints and restarts of the whole application,
 * checked against a plain in-memory Map after every command and across restarts.
 */
import test from 'ava';
import fc from 'fast-check';
import { startApplication, type App } from '../src/engine/application.js';
import { MachineCrashedError } from '../src/errors.js';
import { entities } from '../src/model/entities.js';
import { supervisor, worker } from '../src/model/tree.js';
import { counterMachine } from './fixtures/entity-machines.js';
import { tempDb } from './helpers/persistence-kv.js';

interface Model {
  counters: Map<string, number>;
}
interface Real {
  app: App;
  readonly db: string;
}

const machine = counterMachine();
const tree = () => supervisor('one_for_one', [worker('fixed', machine), entities('account', machine, { maxActive: 3, idleMs: 10, intensity: 1_000_000 })], { intensity: 1_000_000, periodMs: 1000 });
const open = (db: string) => startApplication(tree(), { db, logger: false, snapshot: { every: 3 } });
const KEYS = ['a', 'b', 'c', 'd', 'e/1', 'e/2', 'ü'];
const key = fc.constantFrom(...KEYS);

class Add implements fc.AsyncCommand<Model, Real> {
  constructor(readonly key: string, readonly by: number) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const want = (m.counters.get(this.key) ?? 0) + this.by;
    const got = await r.app.call<number>(`account/${this.key}`, { op: 'add', by: this.by });
    m.counters.set(this.key, want);
    if (got !== want) throw new Error(`add ${this.key}: got ${got}, model ${want}`);
  }
  toString = () => `add(${this.key}, ${this.by})`;
}

class Get implements fc.AsyncCommand<Model, Real> {
  constructor(readonly key: string) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const got = await r.app.call<number>(`account/${this.key}`, { op: 'get' });
    if (got !== (m.counters.get(this.key) ?? 0)) throw new Error(`get ${this.key}: got ${got}, model ${m.counters.get(this.key) ?? 0}`);
  }
  toString = () => `get(${this.key})`;
}

class Crash implements fc.AsyncCommand<Model, Real> {
  constructor(readonly key: string) {}
  check = () => true;
  async run(_m: Model, r: Real): Promise<void> {
    const err = await r.app.call(`account/${this.key}`, { op: 'boom' }).then(
      () => null,
      (e: unknown) => e,
    );
    if (!(err instanceof MachineCrashedError)) throw new Error(`boom ${this.key}: expected MachineCrashedError, got ${String(err)}`);
  }
  toString = () => `crash(${this.key})`;
}

class Delete implements fc.AsyncCommand<Model, Real> {
  constructor(readonly key: string) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const got = await r.app.call<number>(`account/${this.key}`, { op: 'delete' });
    if (got !== (m.counters.get(this.key) ?? 0)) throw new Error(`delete ${this.key}: got ${got}, model ${m.counters.get(this.key) ?? 0}`);
    m.counters.delete(this.key);
  }
  toString = () => `delete(${this.key})`;
}

class Idle implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(_m: Model, r: Real): Promise<void> {
    await new Promise((res) => setTimeout(res, 60));
    const s = r.app.status();
    const fam = s.kind === 'supervisor' ? s.children.find((c) => c.kind === 'entities') : undefined;
    if (fam?.kind === 'entities' && fam.awake !== 0) throw new Error(`after idleMs, ${fam.awake} entities still awake`);
  }
  toString = () => 'idle';
}

class Concurrent implements fc.AsyncCommand<Model, Real> {
  constructor(readonly adds: readonly (readonly [string, number])[]) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    // Issued together: one or few batches over many entities; per key, in order.
    const replies = await Promise.all(this.adds.map(([k, by]) => r.app.call<number>(`account/${k}`, { op: 'add', by })));
    this.adds.forEach(([k, by], i) => {
      const want = (m.counters.get(k) ?? 0) + by;
      m.counters.set(k, want);
      if (replies[i] !== want) throw new Error(`concurrent add ${k}: got ${replies[i]}, model ${want}`);
    });
  }
  toString = () => `concurrent(${this.adds.map(([k, b]) => `${k}+${b}`).join(' ')})`;
}

class Restart implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    await r.app.stop();
    r.app = await open(r.db);
    const listed = new Map((await r.app.entities('account', { limit: 1000 })).map((e) => [e.key, e]));
    for (const [k, n] of m.counters) {
      if (n === 0) continue;
      if (!listed.has(k)) throw new Error(`${k} (written) not listed after restart`);
    }
    for (const k of listed.keys()) if (!m.counters.has(k)) throw new Error(`${k} listed after restart but deleted (or never written)`);
  }
  toString = () => 'restart';
}

test('entities behave as a plain map of counters through calls, crashes, sleeps, evictions and restarts', async (t) => {
  const commands = [
    fc.tuple(key, fc.integer({ min: 1, max: 9 })).map(([k, by]) => new Add(k, by)),
    key.map((k) => new Get(k)),
    key.map((k) => new Crash(k)),
    key.map((k) => new Delete(k)),
    fc.constant(new Idle()),
    fc.array(fc.tuple(key, fc.integer({ min: 1, max: 9 })), { minLength: 2, maxLength: 12 }).map((a) => new Concurrent(a)),
    fc.constant(new Restart()),
  ];
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fc.commands(commands, { maxCommands: 25 }), async (cmds) => {
      const db = tempDb(t, 'ssm-ent-model-');
      const real: Real = { app: await open(db), db };
      try {
        const model: Model = { counters: new Map() };
        await fc.asyncModelRun(() => ({ model, real }), cmds);
        // Finally, every counter survives one more restart, as the model has it.
        await real.app.stop();
        real.app = await open(db);
        for (const k of KEYS) {
          const got = await real.app.call<number>(`account/${k}`, { op: 'get' });
          if (got !== (model.counters.get(k) ?? 0)) throw new Error(`after the final restart ${k} is ${got}, model ${model.counters.get(k) ?? 0}`);
        }
        runs++;
      } finally {
        await real.app.stop();
      }
    }),
    { numRuns: Number(process.env['SSM_MODEL_RUNS'] ?? 40) },
  );
  t.is(runs, Number(process.env['SSM_MODEL_RUNS'] ?? 40));
});
