/**
 * Storage health (issue 18.5): a full disk with a large state must not stall everything. Before,
 * every refused batch reloaded the stepped machine from disk on the one event loop (~0.5 s for
 * 300k keys), so reads of an unrelated machine took 550 ms at p50. Now, after a refused commit,
 * writes are refused at once (StorageError, never stepped) until a probe write succeeds: the big
 * machine is reloaded once per outage, reads elsewhere keep their latency, `/healthz` and
 * `/metrics` say storage is failing, and once space returns writes succeed and nothing
 * acknowledged is lost. Disk full is real: `PRAGMA max_page_count` on the app's connection.
 */
import test from 'ava';
import { StorageError } from '../src/errors.js';
import { serve } from '../src/http/server.js';
import { MAX_BACKOFF_MS, MIN_BACKOFF_MS, StorageHealth } from '../src/engine/storage-health.js';
import { DiskLimit, outcome } from './helpers/faults-util.js';
import { kvEntries, kvTree, startRecording, tempDb } from './helpers/persistence-kv.js';

const BIG_KEYS = 150_000;

/** The first difference between a machine's entries and the model (ava's deepEqual is too slow for 150k entries). */
function difference(entries: [string, unknown][], model: ReadonlyMap<string, unknown>): string | null {
  if (entries.length !== model.size) return `${entries.length} entries, ${model.size} acknowledged`;
  for (const [k, v] of entries) if (!model.has(k) || model.get(k) !== v) return `key ${k}: ${String(v)} vs ${String(model.get(k))}`;
  return null;
}

function p50(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function timed<T>(p: () => Promise<T>): Promise<{ ms: number; r: Awaited<ReturnType<typeof outcome<T>>> }> {
  const t0 = performance.now();
  const r = await outcome(p());
  return { ms: performance.now() - t0, r };
}

test('disk full with a 150k-key machine: writes fail fast, the big machine reloads once, reads of another machine stay fast, healthz and metrics report it; writes resume when space returns', async (t) => {
  const db = tempDb(t, 'ssm-health-');
  const limit = new DiskLimit();
  const { app, events } = await startRecording(kvTree(['big', 'small']), { db, faults: { onOpen: limit.onOpen }, snapshot: { every: 0 } });
  t.teardown(() => app.stop());
  const acked = new Map<string, Map<string, unknown>>([['big', new Map()], ['small', new Map()]]);
  const store = async (m: string, key: string, value: unknown): Promise<void> => {
    await app.call(m, { op: 'store', key, value });
    acked.get(m)!.set(key, value);
  };
  for (let i = 0; i < BIG_KEYS; i += 1000) await Promise.all(Array.from({ length: 1000 }, (_, j) => store('big', `k${i + j}`, i + j)));
  for (let i = 0; i < 20; i++) await store('small', `s${i}`, i);
  await app.checkpoint();
  const http = await serve({ app, port: 0 });
  t.teardown(() => http.close({ graceMs: 100 }));
  const healthy = await (await fetch(`${http.url}/healthz`)).json();
  t.like(healthy, { status: 'ok', storage: 'ok' });
  t.true(['checking', 'ok'].includes(healthy.integrity.state), JSON.stringify(healthy));

  limit.fill(0);
  const first = await timed(() => app.call('big', { op: 'store', key: 'during', value: 'x'.repeat(64 * 1024) }));
  t.true(!first.r.ok && first.r.error instanceof StorageError, 'the first write meets the full disk');
  t.log(`first refused write (commit fails, big machine reloaded): ${first.ms.toFixed(0)} ms`);
  t.is(app.health().storage.status, 'failing');
  t.is(app.health().status, 'degraded');

  const writes: number[] = [];
  const reads: number[] = [];
  for (let i = 0; i < 100; i++) {
    const [w, r] = await Promise.all([
      timed(() => app.call('big', { op: 'store', key: `during${i}`, value: 'y'.repeat(20_000) })),
      timed(() => app.call('small', { op: 'lookup', key: `s${i % 20}` })),
    ]);
    t.true(!w.r.ok && w.r.error instanceof StorageError, `write ${i} refused with StorageError`);
    t.true(r.r.ok && r.r.value === i % 20, `read ${i} served`);
    writes.push(w.ms);
    reads.push(r.ms);
    // A write to the small machine too: refused without a reload of anything.
    t.false((await outcome(app.call('small', { op: 'store', key: `x${i}`, value: 'z'.repeat(20_000) }))).ok);
  }
  t.log(`during the outage: refused write p50 ${p50(writes).toFixed(2)} ms, read of another machine p50 ${p50(reads).toFixed(2)} ms`);
  t.true(p50(reads) < 50, `reads of another machine stay fast (p50 ${p50(reads).toFixed(1)} ms)`);
  t.true(p50(writes) < 50, `writes fail fast (p50 ${p50(writes).toFixed(1)} ms)`);
  const reloads = events.filter((e) => e.type === 'storage_failed' && e.machines.includes('big')).length;
  t.is(reloads, 1, 'the big machine was reloaded once in the outage');
  t.is(await app.call('big', { op: 'size' }), BIG_KEYS, 'the big machine still holds exactly what was acknowledged');

  const hz = (await (await fetch(`${http.url}/healthz`)).json()) as Record<string, unknown>;
  t.is(hz['status'], 'degraded');
  t.is(hz['storage'], 'failing');
  t.regex(String(hz['error']), /SQLITE_FULL|full/i);
  t.true(typeof hz['since'] === 'string');
  t.regex(app.prometheus(), /^ssm_storage_failing 1$/m);

  // Space returns: the timer probe notices without any write.
  limit.free();
  const t0 = performance.now();
  while (app.health().storage.status !== 'ok' && performance.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 20));
  t.is(app.health().storage.status, 'ok', 'health recovers on its own once space returns');
  t.regex(app.prometheus(), /^ssm_storage_failing 0$/m);
  await store('big', 'after', 'A');
  await store('small', 'after', 'B');
  for (const [m, model] of acked) t.is(difference(await kvEntries(app, m), model), null, `${m} holds exactly the acknowledged writes`);
  await http.close({ graceMs: 100 });
  await app.stop();
  const { app: again } = await startRecording(kvTree(['big', 'small']), { db });
  t.teardown(() => again.stop());
  for (const [m, model] of acked) t.is(difference(await kvEntries(again, m), model), null, `${m} after a restart`);
});

test('StorageHealth: a probe that succeeds where commits still fail is distrusted, with backoff; a commit ends the outage', (t) => {
  const h = new StorageHealth();
  const ok = (): void => {};
  const fail = (): void => {
    throw new StorageError('full');
  };
  t.true(h.mayWrite(0, fail), 'healthy: no probe');
  h.commitFailed(new StorageError('SQLITE_FULL'), 1000);
  t.false(h.mayWrite(1001, fail), 'failing probe: writes refused');
  t.true(h.mayWrite(1002, ok), 'probe passes: writes stepped');
  h.commitFailed(new StorageError('SQLITE_IOERR'), 1003); // the probe lied
  t.false(h.mayWrite(1004, ok), 'distrusted: refused within the backoff even though the probe passes');
  t.true(h.mayWrite(1003 + MIN_BACKOFF_MS, fail), 'after the backoff a real batch is the probe');
  h.commitFailed(new StorageError('SQLITE_IOERR'), 2000);
  t.false(h.mayWrite(2000 + MIN_BACKOFF_MS, ok), 'the backoff doubled');
  t.true(h.mayWrite(2000 + 2 * MIN_BACKOFF_MS, ok));
  for (let i = 0; i < 10; i++) h.commitFailed(new StorageError('x'), 10_000);
  t.true(h.mayWrite(10_000 + MAX_BACKOFF_MS, ok), 'bounded by the maximum backoff');
  const report = h.report();
  t.is(report.status, 'failing');
  t.is(report.status === 'failing' && report.since, new Date(1000).toISOString(), 'one outage since the first failure');
  h.commitSucceeded();
  t.deepEqual(h.report(), { status: 'ok' });
  t.true(h.mayWrite(0, fail));
});
