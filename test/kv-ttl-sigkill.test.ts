/**
 * Removal of expired keys across SIGKILL, with real processes: the removal timer is in the
 * timers table, written in the commit of the write that set the expiry, so a process killed
 * before the keys expire (and another killed while it removes them) leaves nothing behind: the
 * next start removes every expired key, by logged requests.
 */
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { killHard, spawnChild } from './helpers/persistence-child.js';
import { tempDb } from './helpers/persistence-kv.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/kv-ttl-child.ts', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('expired keys are removed after SIGKILL before expiry and SIGKILL during removal', async (t) => {
  t.timeout(120_000);
  const db = tempDb(t);
  const n = 12_000;
  const ttlMs = 1500;
  const setter = spawnChild(FIXTURE, ['set', db, String(n), String(ttlMs)]);
  t.teardown(() => killHard(setter));
  await setter.waitFor((l) => l === 'ready', 60_000);
  const acked = Date.now();
  await killHard(setter);
  // Nothing runs while the keys expire.
  await sleep(Math.max(0, acked + ttlMs + 200 - Date.now()));
  // A run killed while it removes them (12 deliveries of at most 2000 keys each).
  const runner = spawnChild(FIXTURE, ['run', db]);
  t.teardown(() => killHard(runner));
  await runner.waitFor((l) => l === 'ready', 60_000);
  await sleep(30 + Math.random() * 60);
  await killHard(runner);
  const check = spawnChild(FIXTURE, ['check', db]);
  t.teardown(() => killHard(check));
  const line = await check.waitFor((l) => l.startsWith('state '), 60_000);
  t.deepEqual(JSON.parse(line.slice('state '.length)), { physical: 1, live: 1 }, 'every expired key removed for real; the one without expiry kept');
});
