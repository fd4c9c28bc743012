/**
 * SIGKILL of a partitioned KV store under load, with real processes: a child keeps 32 writers on
 * a store of 16 partitions (sets, single-partition batches, deletes, overwrites of counters,
 * with partitions snapshotting, and in some rounds sleeping and waking); it is killed with
 * SIGKILL at a random moment (in some rounds while it is still warming its partitions), round
 * after round on the same file. After each kill the store is reopened, and every acknowledged
 * write must be there, every acknowledged delete gone, and every batch all or nothing, acked or not.
 */
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { openKV } from '../src/kv/open-kv.js';
import { killHard, spawnChild } from './helpers/persistence-child.js';
import { tempDb } from './helpers/persistence-kv.js';
import { valueOf } from './helpers/kv-partitions-value.js';

const ROUNDS = Number(process.env['SSM_KILL_ROUNDS'] ?? 4);
const FIXTURE = fileURLToPath(new URL('./fixtures/kv-partitions-child.ts', import.meta.url));

test('SIGKILL under 32 writers on 16 partitions loses no acknowledged write, and no batch is applied in part', async (t) => {
  t.timeout(120_000);
  const db = tempDb(t, 'ssm-kvp-kill-');
  const present = new Set<string>();
  const deleted = new Set<string>();
  const counters = new Map<string, number>();
  const batches: [string, string][] = [];
  let total = 0;
  let killedWarming = 0;
  for (let round = 0; round < ROUNDS; round++) {
    // Round 1 dies while the reopened store is warming; rounds 2 and 3 put idle partitions to sleep.
    const idle = round % 2 === 0 ? 'Infinity' : '30';
    const child = spawnChild(FIXTURE, [db, String(round), '32', String([20, 5, 200][round % 3]), idle]);
    t.teardown(() => killHard(child));
    await child.waitFor((l) => l === 'ready', 60_000);
    // Killed by progress, not by the clock, so a loaded machine still gets a substantial round:
    // round 1 soon after its first acknowledged batch, the others after 100 acks and a random delay.
    await child.waitFor((l) => l.startsWith('ack batch'), 60_000);
    let acks = 0;
    if (round !== 1) await child.waitFor((l) => l.startsWith('ack ') && ++acks >= 100, 60_000);
    await new Promise((r) => setTimeout(r, round === 1 ? Math.random() * 20 : Math.random() * 400));
    await killHard(child);
    t.is((await child.closed).signal, 'SIGKILL', `round ${round}: ${child.stderr()}`);
    t.deepEqual(child.lines.filter((l) => l.startsWith('err ')), [], `round ${round}: no write failed before the kill`);
    if (!child.lines.includes('warm')) killedWarming++;
    for (const line of child.lines) {
      const [kind, what, a, b] = line.split(' ');
      if (kind === 'try' && what === 'batch') batches.push([a!, b!]);
      // A delete sent but not acknowledged may or may not have been applied: its key may be either way.
      if (kind === 'try' && what === 'del') present.delete(a!);
      if (kind !== 'ack') continue;
      total++;
      if (what === 'set') present.add(a!);
      if (what === 'batch') present.add(a!).add(b!);
      if (what === 'del') {
        present.delete(a!);
        deleted.add(a!);
      }
      if (what === 'cnt') counters.set(a!, Math.max(counters.get(a!) ?? -1, Number(b)));
    }
    const kv = await openKV(db, { partitions: 16, warm: round % 2 === 0 });
    try {
      const lost: string[] = [];
      for (const key of present) {
        const v = await kv.get(key);
        if (JSON.stringify(v) !== JSON.stringify(valueOf(key))) lost.push(`${key}: ${JSON.stringify(v)}`);
      }
      t.deepEqual(lost, [], `round ${round}: acknowledged writes lost`);
      const back: string[] = [];
      for (const key of deleted) if (await kv.has(key)) back.push(key);
      t.deepEqual(back, [], `round ${round}: acknowledged deletes undone`);
      const behind: string[] = [];
      for (const [key, n] of counters) {
        const v = (await kv.get(key)) as number;
        if (!(v >= n)) behind.push(`${key}: ${v} < ${n}`);
      }
      t.deepEqual(behind, [], `round ${round}: counters behind their acknowledged value`);
      const halves: string[] = [];
      for (const [a, b] of batches) if ((await kv.has(a)) !== (await kv.has(b)) && !deleted.has(a)) halves.push(`${a} ${b}`);
      t.deepEqual(halves, [], `round ${round}: batches applied in part`);
      t.is(await kv.size(), (await kv.entries()).length);
    } finally {
      await kv.close();
    }
  }
  t.log(`${total} acknowledged writes, ${batches.length} batches tried, ${present.size} keys checked, ${killedWarming} of ${ROUNDS} kills before warming was done`);
  t.true(total > ROUNDS * 32, `the load was concurrent and substantial (${total} acknowledged)`);
  t.true(batches.length >= ROUNDS, 'batches were under way in every round');
});
