/**
 * The system under test: one kv-store worker under a one_for_one supervisor, plus a fast
 * builder that writes snapshots and request-log rows straight into a database.
 */
import { startApplication, type App } from '../../src/engine/application.js';
import type { ApplicationOptions } from '../../src/engine/options.js';
import { cbor } from '../../src/encoding/cbor.js';
import { KV_STATE_VERSION, kvMachine } from '../../src/kv/kv-machine.js';
import type { RecoveryReport } from '../../src/storage/reports.js';
import { ShardedMap } from '../../src/encoding/sharded-map.js';
import type { LogGroup } from '../../src/storage/rows.js';
import { Store } from '../../src/storage/store.js';
import { supervisor, worker } from '../../src/model/tree.js';
import { valueFor } from './common.js';

export const MACHINE = 'kv';

export function kvTree() {
  return supervisor('one_for_one', [worker(MACHINE, kvMachine({ deliberateCrash: true }))]);
}

/** Starts the kv application; resolves with the app, the wall time to ready and the recovery report. */
export async function startKv(db: string, options: ApplicationOptions = {}): Promise<{ app: App; ms: number; report: RecoveryReport }> {
  let report: RecoveryReport | undefined;
  const t0 = performance.now();
  const app = await startApplication(kvTree(), {
    db,
    ...options,
    logger: (e) => {
      if (e.type === 'started' && e.machine === MACHINE) report = e.recovery;
    },
  });
  const ms = performance.now() - t0;
  return { app, ms, report: report! };
}

export const storeInput = (i: number, prefix = 'k'): { op: 'store'; key: string; value: unknown } => ({ op: 'store', key: `${prefix}${i}`, value: valueFor(i) });

/**
 * Writes a database the way the engine would have left it: a snapshot of `stateKeys` keys
 * (k0..k{n-1}) at seq = stateKeys, then `logRequests` further store requests as request_log rows
 * of `perRow` requests each (the engine writes one row per machine per batch, at most maxBatch
 * = 512 requests). Uses the engine's own Store.writeSnapshot / Store.appendBatch, inside one
 * transaction, so the format is exactly the engine's; only the group commit per batch is skipped.
 */
export function buildDb(path: string, stateKeys: number, logRequests: number, perRow = 512): { snapshotBytes: number; logBytes: number } {
  const store = Store.open(path, { durability: 'normal' });
  let snapshotBytes = 0;
  let logBytes = 0;
  try {
    store.registerMachines([{ name: MACHINE, version: KV_STATE_VERSION }]);
    if (stateKeys > 0) {
      const m = new ShardedMap<unknown>();
      for (let i = 0; i < stateKeys; i++) m.set(`k${i}`, valueFor(i));
      const bytes = cbor.encode(m);
      snapshotBytes = bytes.byteLength;
      store.writeSnapshot(MACHINE, stateKeys, KV_STATE_VERSION, bytes, 'checkpoint', 2, false);
    }
    let seq = stateKeys;
    store.db.transaction(() => {
      for (let done = 0; done < logRequests; ) {
        const n = Math.min(perRow, logRequests - done);
        const parts: Uint8Array[] = [];
        // Keys continue after the snapshot's, so the state grows by one key per request.
        for (let j = 0; j < n; j++) parts.push(cbor.encode(storeInput(seq + 1 + j)));
        const requests = Buffer.concat(parts);
        logBytes += requests.byteLength;
        const g: LogGroup = { machine: MACHINE, firstSeq: seq + 1, lastSeq: seq + n, count: n, requests };
        store.appendBatch([g]);
        seq += n;
        done += n;
      }
    })();
  } finally {
    store.close();
  }
  return { snapshotBytes, logBytes };
}
