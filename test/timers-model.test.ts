/**
 * Model-based test of durable timers (issue 16.2): random sets (near and far), re-sets, cancels,
 * waits, machine crashes and application restarts, against a model of what must fire. Time is
 * real, so where a cancel races a due timer the model accepts either outcome, and only there.
 */
import test from 'ava';
import fc from 'fast-check';
import Database from 'better-sqlite3';
import { startApplication, type App } from '../src/engine/application.js';
import { timerTree } from './fixtures/timer-machine.js';
import { tempDb } from './helpers/persistence-kv.js';

type Op = { op: 'set'; id: string; afterMs: number } | { op: 'far'; id: string } | { op: 'cancel'; id: string } | { op: 'wait'; ms: number } | { op: 'crash' } | { op: 'restart' };

const id = fc.constantFrom('a', 'b', 'c', 'd');
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('set' as const), id, afterMs: fc.integer({ min: 0, max: 60 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('far' as const), id }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('cancel' as const), id }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 40 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'crash' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'restart' as const }) },
);

interface Token {
  readonly token: string;
  /** Earliest instant it can be due (its set call's start plus its delay). */
  readonly earliestDue: number;
  /** When a later set or cancel of its id was certainly committed (its call resolved), if any. */
  supersededBy?: number;
  readonly far: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function query(db: string, sql: string, ...args: unknown[]): unknown {
  const raw = new Database(db, { readonly: true });
  try {
    return raw.prepare(sql).pluck().get(...args);
  } finally {
    raw.close();
  }
}

test('timers against a model: each live timer fires once, a timer superseded before its due time never fires', async (t) => {
  t.timeout(110_000);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 20 }), async (ops) => {
      const db = tempDb(t);
      let app: App = await startApplication(timerTree(), { db, logger: false });
      const tokens: Token[] = [];
      const live = new Map<string, Token>();
      try {
        for (const o of ops) {
          const started = Date.now();
          if (o.op === 'set' || o.op === 'far') {
            const token = `${o.id}:${run}:${tokens.length}`;
            const afterMs = o.op === 'far' ? 600_000 : o.afterMs;
            await app.call('t', { set: o.id, afterMs, token });
            const prev = live.get(o.id);
            if (prev) prev.supersededBy = Date.now();
            const tok: Token = { token, earliestDue: started + afterMs, far: o.op === 'far' };
            tokens.push(tok);
            live.set(o.id, tok);
          } else if (o.op === 'cancel') {
            await app.call('t', { cancel: o.id });
            const prev = live.get(o.id);
            if (prev) prev.supersededBy = Date.now();
            live.delete(o.id);
          } else if (o.op === 'wait') {
            await sleep(o.ms);
          } else if (o.op === 'crash') {
            await app.call('t', { fire: 'x', id: 'x', crash: true }).catch(() => undefined);
          } else {
            await app.stop();
            app = await startApplication(timerTree(), { db, logger: false });
          }
        }
        // Drain: every near timer is due within 60 ms of its set.
        await sleep(150);
        const near = () => query(db, 'SELECT count(*) FROM timers WHERE due_ms < ?', Date.now() + 100_000) as number;
        for (let i = 0; i < 100 && near() > 0; i++) await sleep(20);
        const fired = (await app.call('t', { fired: true })) as string[];
        const twice = fired.filter((x, i) => fired.indexOf(x) !== i);
        if (twice.length > 0) throw new Error(`fired twice: ${twice.join(' ')}`);
        const set = new Set(tokens.map((x) => x.token));
        for (const x of fired) if (!set.has(x)) throw new Error(`fired ${x}, never set`);
        for (const x of tokens) {
          const didFire = fired.includes(x.token);
          const isLive = [...live.values()].includes(x);
          if (x.far && didFire) throw new Error(`far timer ${x.token} fired`);
          if (isLive && !x.far && !didFire) throw new Error(`live timer ${x.token} never fired`);
          if (x.supersededBy !== undefined && x.supersededBy < x.earliestDue && didFire) throw new Error(`${x.token} fired though superseded before it was due`);
        }
        const pending = query(db, 'SELECT json_group_array(timer) FROM (SELECT timer FROM timers ORDER BY timer)') as string;
        const farLive = [...live.entries()].filter(([, x]) => x.far).map(([k]) => k).sort();
        if (pending !== JSON.stringify(farLive)) throw new Error(`pending ${pending}, expected ${JSON.stringify(farLive)}`);
      } finally {
        run++;
        await app.stop();
      }
    }),
    { numRuns: 25, interruptAfterTimeLimit: 90_000 },
  );
  t.pass(`${run} runs`);
});
