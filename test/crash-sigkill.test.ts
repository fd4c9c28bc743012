/**
 * Nothing acknowledged is ever lost, even to SIGKILL. A child process keeps 64 store calls in
 * flight (with a small snapshot policy, so snapshots and log truncation happen under load) and
 * prints every acknowledged write; the test kills it with SIGKILL at a random moment, reopens the
 * database, and checks that every acknowledged write is there with its value, for round after
 * round on the same file, in both durability modes.
 */
import test, { type ExecutionContext } from 'ava';
import { startApplication } from '../src/engine/application.js';
import type { Durability } from '../src/storage/store-options.js';
import { killHard, spawnKvChild } from './helpers/persistence-child.js';
import { childValue, kvEntries, kvTree, tempDb, workerStatus } from './helpers/persistence-kv.js';

const ROUNDS = Number(process.env['SSM_KILL_ROUNDS'] ?? 10);
const CONCURRENCY = 64;

async function killRounds(t: ExecutionContext, durability: Durability): Promise<void> {
  const db = tempDb(t, `ssm-kill-${durability}-`);
  /** Every write acknowledged in any round so far: machine -> keys. */
  const acked = { kv1: new Set<string>(), kv2: new Set<string>() };
  let killedMidLoad = 0;
  for (let round = 0; round < ROUNDS; round++) {
    // Snapshot policy varies per round so kills land in commits, snapshot writes and truncations.
    const every = [0, 7, 50, 500][round % 4]!;
    const child = spawnKvChild(['load', db, durability, String(round), String(CONCURRENCY), String(every)]);
    await child.waitFor((l) => l === 'ready');
    await child.waitFor((l) => l.startsWith('ack '));
    await new Promise((r) => setTimeout(r, 20 + Math.floor(Math.random() * 300)));
    await killHard(child);
    const { signal } = await child.closed;
    t.is(signal, 'SIGKILL', `round ${round}: the child must die by SIGKILL, not exit on its own (stderr: ${child.stderr()})`);

    let thisRound = 0;
    for (const line of child.lines) {
      const m = /^ack (kv[12]) (\S+)$/.exec(line);
      if (!m) continue;
      acked[m[1] as 'kv1' | 'kv2'].add(m[2]!);
      thisRound++;
    }
    if (thisRound > 0) killedMidLoad++;

    // Reopen in this process: recovery must produce every acknowledged write.
    const app = await startApplication(kvTree(), { db, durability, logger: false });
    try {
      for (const machine of ['kv1', 'kv2'] as const) {
        const state = new Map(await kvEntries(app, machine));
        const missing = [...acked[machine]].filter((k) => !state.has(k));
        t.deepEqual(missing, [], `round ${round} (${durability}): acknowledged writes of ${machine} lost after SIGKILL`);
        const wrong = [...acked[machine]].filter((k) => JSON.stringify(state.get(k)) !== JSON.stringify(childValue(k)));
        t.deepEqual(wrong, [], `round ${round}: acknowledged writes of ${machine} with a wrong value`);
        // Unacknowledged writes may have made it too, but nothing the child never sent.
        const alien = [...state].filter(([k, v]) => !/^r\d+:\d+$/.test(k) || JSON.stringify(v) !== JSON.stringify(childValue(k)));
        t.deepEqual(alien, [], `round ${round}: ${machine} holds entries nobody wrote`);
        t.true(workerStatus(app, machine).seq >= acked[machine].size, 'seq counts at least the acknowledged writes');
      }
    } finally {
      await app.stop();
    }
  }
  t.is(killedMidLoad, ROUNDS, 'every round was killed with writes acknowledged');
  t.true(acked.kv1.size + acked.kv2.size > ROUNDS * CONCURRENCY, 'the load was concurrent and substantial');
}

test('SIGKILL under 64 concurrent writers loses no acknowledged write (durability full)', (t) => killRounds(t, 'full'));
test('SIGKILL under 64 concurrent writers loses no acknowledged write (durability normal)', (t) => killRounds(t, 'normal'));
