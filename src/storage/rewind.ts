import type { Database } from 'better-sqlite3';
import { cbor } from '../encoding/cbor.js';
import { StorageError } from '../errors.js';
import { sha256 } from './checksum.js';

/** What rewinding a machine removed. */
export interface RewindReport {
  readonly machine: string;
  /** The seq the machine now ends at. */
  readonly seq: number;
  /** The seq it ended at before. */
  readonly from: number;
  readonly snapshotsRemoved: number;
  readonly requestsRemoved: number;
  readonly keysRemoved: number;
  readonly timersRemoved: number;
}

/**
 * Rewinds one machine of a database to `seq`, in one transaction: its snapshots after `seq` and
 * its logged requests after `seq` are removed (a log row across `seq` is cut there, with a new
 * checksum), as are idempotency keys and timers set by the removed requests, and its durable mark
 * is set to `seq`. Its next recovery is then its state as of `seq`. Refused (StorageError,
 * nothing changed) when what is kept cannot rebuild it: `seq` beyond its last, or no snapshot at
 * or before `seq` and a log that no longer reaches back to seq 1. Timers that fired after `seq`
 * cannot be brought back (their rows are gone); other machines are untouched. Meant for a copy
 * (`ssm restore`), never the live database.
 */
export function rewindMachine(db: Database, machine: string, seq: number): RewindReport {
  return db.transaction((): RewindReport => {
    const last = db.prepare(`SELECT max(coalesce((SELECT max(last_seq) FROM request_log WHERE machine = @m), 0), coalesce((SELECT max(seq) FROM snapshots WHERE machine = @m), 0))`).pluck().get({ m: machine }) as number;
    if (seq > last) throw new StorageError(`${machine} ends at seq ${last}: cannot restore it to seq ${seq}`);
    const base = db.prepare('SELECT max(seq) FROM snapshots WHERE machine = ? AND seq <= ? AND rejected IS NULL').pluck().get(machine, seq) as number | null;
    const firstLogged = db.prepare('SELECT min(first_seq) FROM request_log WHERE machine = ?').pluck().get(machine) as number | null;
    const from = base ?? 0;
    if (seq > from && (firstLogged === null || firstLogged > from + 1)) {
      throw new StorageError(`${machine} cannot be rebuilt as of seq ${seq}: ${base === null ? 'no snapshot at or before it' : `its snapshot at seq ${base}`} and a log that starts at seq ${firstLogged ?? 'none'} (keep more: snapshot.retainLog, or ssm compact --keep)`);
    }
    const snapshotsRemoved = db.prepare('DELETE FROM snapshots WHERE machine = ? AND seq > ?').run(machine, seq).changes;
    let requestsRemoved = 0;
    const across = db.prepare('SELECT id, first_seq AS firstSeq, last_seq AS lastSeq, requests FROM request_log WHERE machine = ? AND first_seq <= ? AND last_seq > ?').get(machine, seq, seq) as { id: number; firstSeq: number; lastSeq: number; requests: Uint8Array } | undefined;
    if (across) {
      const kept = (cbor.decodeMultiple(across.requests) as unknown[]).slice(0, seq - across.firstSeq + 1);
      const blob = Buffer.concat(kept.map((r) => cbor.encode(r)));
      db.prepare('UPDATE request_log SET last_seq = ?, count = ?, size = ?, requests = ?, checksum = ? WHERE id = ?').run(seq, kept.length, blob.byteLength, blob, sha256(blob), across.id);
      requestsRemoved += across.lastSeq - seq;
    }
    requestsRemoved += (db.prepare('SELECT coalesce(sum(count), 0) FROM request_log WHERE machine = ? AND first_seq > ?').pluck().get(machine, seq) as number);
    db.prepare('DELETE FROM request_log WHERE machine = ? AND first_seq > ?').run(machine, seq);
    const keysRemoved = rewindIdempotencyKeys(db, machine, seq);
    const timersRemoved = db.prepare('DELETE FROM timers WHERE machine = ? AND set_seq > ?').run(machine, seq).changes;
    db.prepare('UPDATE machines SET durable_seq = ? WHERE name = ?').run(seq, machine);
    return { machine, seq, from: last, snapshotsRemoved, requestsRemoved, keysRemoved, timersRemoved };
  }).immediate();
}

/** Removes the idempotency keys of `machine`'s requests after `seq`; returns how many. */
function rewindIdempotencyKeys(db: Database, machine: string, seq: number): number {
  let removed = 0;
  const rows = db.prepare('SELECT id, entries FROM idempotency_records WHERE machine = ? AND last_seq > ?').all(machine, seq) as { id: number; entries: string }[];
  for (const row of rows) {
    const entries = JSON.parse(row.entries) as [string, number, ...unknown[]][];
    const kept = entries.filter((e) => e[1] <= seq);
    removed += entries.length - kept.length;
    if (kept.length === 0) db.prepare('DELETE FROM idempotency_records WHERE id = ?').run(row.id);
    // Fingerprints NULL: the engine computes them from the entries at start.
    else db.prepare('UPDATE idempotency_records SET entries = ?, count = ?, first_seq = ?, last_seq = ?, fingerprints = NULL WHERE id = ?').run(JSON.stringify(kept), kept.length, Math.min(...kept.map((e) => e[1])), Math.max(...kept.map((e) => e[1])), row.id);
  }
  return removed;
}
