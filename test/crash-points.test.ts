/**
 * SIGKILL at the engine's named crash points (src/crash-points.ts), under the same concurrent
 * load as crash-sigkill: right after a batch's log rows commit but before any reply, inside a
 * snapshot transaction, and between the snapshot row and the log truncation. Each lands
 * deterministically, where a random kill would rarely hit; every acknowledged write survives and
 * the database recovers cleanly.
 */
import test from 'ava';
import { startApplication } from '../src/engine/application.js';
import { spawnKvChild } from './helpers/persistence-child.js';
import { childValue, kvEntries, kvTree, recoveryOf, startRecording, tempDb } from './helpers/persistence-kv.js';

for (const point of ['after-log-append', 'mid-snapshot', 'snapshot-before-truncate'] as const) {
  for (const durability of ['full', 'normal'] as const) {
    test(`SIGKILL at ${point} (${durability}): every acknowledged write survives`, async (t) => {
      const db = tempDb(t, 'ssm-crashpoint-');
      const acked = new Map<string, string>();
      // Two runs on one file: the second recovers from the first's crash, then crashes again.
      for (let round = 0; round < 2; round++) {
        const n = 3 + Math.floor(Math.random() * 5);
        const child = spawnKvChild(['load', db, durability, String(round), '64', '7'], { SSM_CRASH_POINT: `${point}:${n}` });
        const { signal } = await child.closed;
        t.is(signal, 'SIGKILL', `the crash point fired (stderr: ${child.stderr()})`);
        t.true(child.lines.includes('ready'));
        for (const line of child.lines) {
          const m = /^ack (kv[12]) (\S+)$/.exec(line);
          if (m) acked.set(m[2]!, m[1]!);
        }
        const { app, events } = await startRecording(kvTree(), { db, durability });
        try {
          const state = { kv1: new Map(await kvEntries(app, 'kv1')), kv2: new Map(await kvEntries(app, 'kv2')) };
          const lost = [...acked].filter(([k, m]) => JSON.stringify(state[m as 'kv1' | 'kv2'].get(k)) !== JSON.stringify(childValue(k)));
          t.deepEqual(lost, [], `round ${round}: acknowledged writes lost or wrong`);
          for (const m of ['kv1', 'kv2']) t.not(recoveryOf(events, m)?.path, 'older-snapshot', 'no snapshot was left corrupt');
        } finally {
          await app.stop();
        }
      }
      t.true(acked.size > 0, 'writes were acknowledged before the crashes');
      if (point === 'after-log-append') {
        // The crash came after a commit and before its replies: those writes are durable though never acknowledged.
        const app = await startApplication(kvTree(), { db, logger: false });
        const total = (await kvEntries(app, 'kv1')).length + (await kvEntries(app, 'kv2')).length;
        await app.stop();
        t.true(total > acked.size, 'the killed batch was committed but never acknowledged');
      }
    });
  }
}
