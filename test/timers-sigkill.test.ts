/**
 * Durable timers across SIGKILL (issue 16.2), with real processes: timers are set, then the
 * process is killed while they fire, again and again. Every acknowledged timer fires exactly
 * once (its last setting; a cancelled one never), whatever was killed when.
 */
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { killHard, spawnChild } from './helpers/persistence-child.js';
import { tempDb } from './helpers/persistence-kv.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/timer-child.ts', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('timers set and firing under repeated SIGKILLs: each acknowledged one fires exactly once, cancelled ones never', async (t) => {
  t.timeout(120_000);
  const db = tempDb(t);
  const setter = spawnChild(FIXTURE, ['set', db, '400', '2000']);
  t.teardown(() => killHard(setter));
  await setter.waitFor((l) => l === 'ready');
  await sleep(400 + Math.random() * 400);
  await killHard(setter);
  const acked = new Map<string, string | null>(); // id -> the token it must fire with (null: cancelled)
  const unsure = new Set<string>(); // set, reset or cancelled without an ack: either outcome
  for (const line of setter.lines) {
    const [what, id] = line.split(' ') as [string, string];
    if (what === 'ack') acked.set(id, id);
    if (what === 'ack-reset') acked.set(id, `${id}'`);
    if (what === 'ack-cancel') acked.set(id, null);
  }
  // The request after the last ack may have been committed without its ack being printed.
  const lastAck = Math.max(-1, ...[...acked.keys()].map((id) => Number(id.slice(1))));
  unsure.add(`t${lastAck}`).add(`t${lastAck + 1}`);
  t.true(acked.size > 5, `only ${acked.size} timers set before the kill`);
  for (let k = 0; k < 3; k++) {
    const runner = spawnChild(FIXTURE, ['run', db]);
    t.teardown(() => killHard(runner));
    await runner.waitFor((l) => l === 'ready');
    await sleep(100 + Math.random() * 300);
    await killHard(runner);
  }
  const drain = spawnChild(FIXTURE, ['drain', db]);
  t.teardown(() => killHard(drain));
  const line = await drain.waitFor((l) => l.startsWith('fired '), 60_000);
  const fired = JSON.parse(line.slice('fired '.length)) as string[];
  const twice = fired.filter((token, i) => fired.indexOf(token) !== i);
  t.deepEqual(twice.slice(0, 10), [], 'no timer fired twice');
  const byId = new Map(fired.map((token) => [token.replace(/'$/, ''), token]));
  for (const [id, token] of acked) {
    if (unsure.has(id)) continue;
    t.is(byId.get(id) ?? null, token, `timer ${id}`);
  }
  for (const id of byId.keys()) t.true(acked.has(id) || unsure.has(id), `fired ${id}, which was never set`);
  t.log(`${acked.size} timers acknowledged, ${fired.length} fired, over 4 SIGKILLs`);
});
