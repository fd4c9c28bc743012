/**
 * SIGKILL under load with entities: a real child process keeps 64 callers on random entities of
 * a family (maxActive 40, so entities wake and sleep all the time, with their snapshots) and a
 * fixed machine; it is killed with SIGKILL at a random moment, round after round on the same
 * file, and every acknowledged reply (a counter value) must be there after the restart.
 */
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { startApplication } from '../src/engine/application.js';
import { entities } from '../src/model/entities.js';
import { supervisor, worker } from '../src/model/tree.js';
import { counterMachine } from './fixtures/entity-machines.js';
import { killHard, spawnChild } from './helpers/persistence-child.js';
import { tempDb } from './helpers/persistence-kv.js';

const ROUNDS = Number(process.env['SSM_KILL_ROUNDS'] ?? 6);
const FIXTURE = fileURLToPath(new URL('./fixtures/entity-child.ts', import.meta.url));

test('SIGKILL under 64 callers on random entities loses no acknowledged write of any entity', async (t) => {
  const db = tempDb(t, 'ssm-ent-kill-');
  /** The highest acknowledged counter value per machine, over every round so far. */
  const acked = new Map<string, number>();
  let total = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const child = spawnChild(FIXTURE, [db, '64', '400', String([5, 1, 50][round % 3])]);
    await child.waitFor((l) => l === 'ready');
    await child.waitFor((l) => l.startsWith('ack '));
    await new Promise((r) => setTimeout(r, 100 + Math.floor(Math.random() * 400)));
    await killHard(child);
    const { signal } = await child.closed;
    t.is(signal, 'SIGKILL', `round ${round}: stderr ${child.stderr()}`);
    const errors = child.lines.filter((l) => l.startsWith('err '));
    t.deepEqual(errors, [], `round ${round}: no call failed before the kill`);
    let thisRound = 0;
    for (const line of child.lines) {
      const m = /^ack (\S+) (\d+)$/.exec(line);
      if (!m) continue;
      acked.set(m[1]!, Math.max(acked.get(m[1]!) ?? 0, Number(m[2])));
      thisRound++;
    }
    total += thisRound;
    t.true(thisRound > 0, `round ${round} was killed with writes acknowledged`);
    const machine = counterMachine();
    const app = await startApplication(supervisor('one_for_one', [worker('fixed', machine), entities('account', machine, { maxActive: 40 })]), { db, logger: false });
    try {
      const lost: string[] = [];
      for (const [name, n] of acked) {
        const now = await app.call<number>(name, { op: 'get' });
        if (now < n) lost.push(`${name}: ${now} < acknowledged ${n}`);
      }
      t.deepEqual(lost, [], `round ${round}: acknowledged writes lost after SIGKILL`);
      const listed = new Set<string>();
      let after = '';
      for (;;) {
        const page = await app.entities('account', { after, limit: 1000 });
        for (const e of page) listed.add(`account/${e.key}`);
        if (page.length < 1000) break;
        after = page.at(-1)!.key;
      }
      const unlisted = [...acked.keys()].filter((n) => n.startsWith('account/') && !listed.has(n));
      t.deepEqual(unlisted, [], 'every entity with an acknowledged write is registered');
    } finally {
      await app.stop();
    }
  }
  t.true(total > ROUNDS * 64, `the load was concurrent and substantial (${total} acknowledged)`);
  t.true([...acked.keys()].filter((k) => k.startsWith('account/')).length > 100, 'many entities were written');
});
