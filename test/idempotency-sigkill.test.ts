/**
 * Exactly once across SIGKILLs (issue 16.1), with a real `ssm serve` and real HTTP: clients
 * retry every increment blindly, with its idempotency key, until they get a reply, while the
 * server is SIGKILLed and restarted under them. The counter must end at exactly one application
 * of each increment: a lost write would leave it lower, a double application higher.
 */
import test from 'ava';
import { join } from 'node:path';
import { tempDir } from './fixtures/serve-helpers.js';
import { spawnServe, type ServeProcess } from './helpers/serve-process.js';

const WRITES = 400;
const CLIENTS = 16;
const KILLS = 4;

test('clients retrying blindly with idempotency keys across SIGKILLs: every increment applied exactly once', async (t) => {
  t.timeout(120_000);
  const db = join(tempDir(t), 'exactly-once.db');
  let server: ServeProcess | null = null;
  let url = '';
  const startServer = async (): Promise<void> => {
    server = await spawnServe(t, ['--db', db, '--port', '0'], /listening on (http:\/\/\S+)/);
    url = server.ready[1]!;
  };
  await startServer();

  const replies = new Map<number, string>();
  let attempts = 0;
  const increment = async (id: number, key: string): Promise<string> => {
    for (;;) {
      attempts++;
      try {
        const res = await fetch(`${url}/v1/machines/kv1/call`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', 'Idempotency-Key': key },
          body: JSON.stringify({ op: 'incrBy', key: 'counter', by: 1 }),
          signal: AbortSignal.timeout(5000),
        });
        const body = await res.text();
        if (res.status === 200) return body;
        t.true(res.status === 503, `only "unavailable" may be retried, got ${res.status} ${body} for write ${id}`);
      } catch {
        // Connection refused or reset while the server is down: retry, blindly.
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  let next = 0;
  const client = async (): Promise<void> => {
    for (let id = next++; id < WRITES; id = next++) {
      const key = `write-${id}`;
      const reply = await increment(id, key);
      replies.set(id, reply);
      // A retry of an acknowledged write (the client did not see the reply, say): same reply, no effect.
      if (id % 10 === 0) t.is(await increment(id, key), reply, `retry of write ${id}`);
    }
  };
  const killer = async (): Promise<void> => {
    for (let k = 0; k < KILLS; k++) {
      await new Promise((r) => setTimeout(r, 300 + Math.random() * 400));
      const s = server!;
      s.child.kill('SIGKILL');
      await s.exited;
      await startServer();
    }
  };
  await Promise.all([killer(), ...Array.from({ length: CLIENTS }, client)]);
  t.is(replies.size, WRITES);
  // Each increment's reply is the counter right after it: all different, exactly 1..WRITES.
  const values = [...replies.values()].map((r) => Number((JSON.parse(r) as { value: string }).value)).sort((a, b) => a - b);
  t.deepEqual(values, Array.from({ length: WRITES }, (_, i) => i + 1), 'every increment applied once, in some order');
  const read = await fetch(`${url}/v1/machines/kv1/call`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ op: 'incrBy', key: 'counter', by: 0 }) });
  t.is((JSON.parse(await read.text()) as { value: string }).value, String(WRITES));
  t.log(`${WRITES} increments, ${attempts} attempts, ${KILLS} SIGKILLs`);
});
