import { cbor } from '../encoding/cbor.js';
import { RecoveryError } from '../errors.js';
import { checkStepResult, type AnyMachine } from '../model/machine.js';
import { sha256 } from './checksum.js';
import type { Recovered, RecoveryReport } from './reports.js';
import type { SnapshotMeta } from './rows.js';
import type { StoreReader } from './store-reader.js';

/**
 * The one place where "restore state for machine X" happens: at start, after a crash, after a
 * failed commit, and in the CLI's `inspect --at` (with `uptoSeq`). Takes the newest snapshot
 * whose checksum verifies and that decodes, migrates it if its version differs, and replays the
 * logged requests after it, in order, discarding outputs. Never deletes anything.
 */
export function recoverState<S>(store: StoreReader, name: string, machine: AnyMachine, uptoSeq = Number.POSITIVE_INFINITY): Recovered<S> {
  const t0 = performance.now();
  const rejected: { seq: number; id: number; reason: string }[] = [];
  let base: { meta: SnapshotMeta; state: unknown } | null = null;
  for (const { meta, state: bytes } of store.newestSnapshots(name)) {
    if (meta.seq > uptoSeq || meta.rejected !== null) continue;
    if (sha256(bytes) !== meta.checksum) {
      rejected.push({ seq: meta.seq, id: meta.id, reason: 'checksum mismatch' });
      continue;
    }
    try {
      base = { meta, state: cbor.decode(bytes) };
      break;
    } catch (err) {
      rejected.push({ seq: meta.seq, id: meta.id, reason: `undecodable: ${err instanceof Error ? err.message : String(err)}` });
    }
  }
  const t1 = performance.now();

  let state: unknown;
  let seq = 0;
  if (base) {
    seq = base.meta.seq;
    state = base.state;
    if (base.meta.stateVersion !== machine.version) {
      if (!machine.migrate) {
        throw new RecoveryError(name, seq, `snapshot has state version ${base.meta.stateVersion} but the machine is version ${machine.version} and defines no migrate()`);
      }
      try {
        state = machine.migrate(state, base.meta.stateVersion);
      } catch (err) {
        throw new RecoveryError(name, seq, `migrate() from version ${base.meta.stateVersion} threw: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    }
  } else {
    state = machine.init();
  }
  const t2 = performance.now();

  let replayed = 0;
  let replayedBytes = 0;
  for (const row of store.logAfter(name, seq)) {
    if (seq >= uptoSeq) break;
    if (row.firstSeq > seq + 1) {
      throw new RecoveryError(name, seq + 1, `the request log has a gap: expected seq ${seq + 1}, next logged is ${row.firstSeq}${rejected.length ? ` (snapshots rejected: ${rejected.map((r) => `seq ${r.seq} ${r.reason}`).join('; ')})` : ''}`);
    }
    // A changed byte can still be valid CBOR: only the checksum tells it from what was acknowledged.
    if (row.checksum !== null && sha256(row.requests) !== row.checksum) {
      throw new RecoveryError(name, row.firstSeq, `log entry ${row.firstSeq}..${row.lastSeq} in database ${store.path} fails its checksum: its requests were changed after they were written; nothing was replayed from it or deleted`);
    }
    let inputs: unknown[];
    try {
      inputs = cbor.decodeMultiple(row.requests) as unknown[];
    } catch (err) {
      throw new RecoveryError(name, row.firstSeq, `log entry ${row.firstSeq}..${row.lastSeq} does not decode: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    if (!Array.isArray(inputs) || inputs.length !== row.lastSeq - row.firstSeq + 1) {
      throw new RecoveryError(name, row.firstSeq, `log entry ${row.firstSeq}..${row.lastSeq} holds ${Array.isArray(inputs) ? inputs.length : 0} requests`);
    }
    replayedBytes += row.requests.byteLength;
    for (let i = seq + 1 - row.firstSeq; i < inputs.length && seq < uptoSeq; i++) {
      try {
        const result = machine.step(inputs[i], state);
        // A normal stop asked for by this step happened once, live; replay only needs its state.
        checkStepResult(result, name);
        state = result[0];
      } catch (err) {
        throw new RecoveryError(name, row.firstSeq + i, `replay threw (steps must be deterministic): ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      seq = row.firstSeq + i;
      replayed++;
    }
  }
  // The log ends where it ends; but if a snapshot (even a rejected one) or the log says the
  // machine had reached further, what is missing was acknowledged: refuse to start short of it.
  const marks = store.seqMarks(name);
  const durable = Math.min(marks.last, uptoSeq);
  if (seq < durable) {
    throw new RecoveryError(name, seq + 1, `the request log has a gap: state can only be rebuilt up to seq ${seq} but seq ${durable} was durable${rejected.length ? ` (snapshots rejected: ${rejected.map((r) => `seq ${r.seq} ${r.reason}`).join('; ')}; the log they covered is gone)` : ''}`);
  }
  // The high-water mark is recorded at snapshots and clean closes, so it survives a lost -wal
  // that took the newer log rows with it. Refused, not warned: acknowledged writes are missing.
  const mark = Math.min(marks.durable ?? 0, uptoSeq);
  if (seq < mark) {
    throw new RecoveryError(name, seq + 1, `database ${store.path} recorded seq ${mark} as durable, but state can only be rebuilt up to seq ${seq}: committed writes are missing (was the -wal file deleted, or the .db copied without it?). Nothing was deleted. Restore the -wal file or a backup; to accept the loss, run in sqlite3: UPDATE machines SET durable_seq = NULL WHERE name = '${name.replaceAll("'", "''")}'`);
  }
  const t3 = performance.now();
  const path = !base ? 'init' : rejected.length > 0 ? 'older-snapshot' : 'snapshot';
  return {
    state: state as S,
    report: {
      path,
      snapshotSeq: base?.meta.seq ?? 0,
      snapshotVersion: base?.meta.stateVersion ?? null,
      migratedFrom: base && base.meta.stateVersion !== machine.version ? base.meta.stateVersion : null,
      snapshot: base?.meta ?? null,
      rejected,
      replayed,
      replayedBytes,
      seq,
      ms: { load: t1 - t0, migrate: t2 - t1, replay: t3 - t2 },
    },
  };
}
