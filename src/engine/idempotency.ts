import * as crypto from 'node:crypto';
import { assertNestingWithinLimit } from '../encoding/cbor-guard.js';
import { cbor, decodeCbor } from '../encoding/cbor.js';
import { ConfigError, EncodeError, IdempotencyKeyReusedError, SsmError, StorageError, describe } from '../errors.js';
import { keyFingerprint } from '../encoding/key-fingerprint.js';
import type { IdempotencyIndexRow } from '../storage/idempotency-records.js';
import type { IdempotencyBatchRow, StoredIdempotencyBatch } from '../storage/rows.js';
import { IdempotencyIndex } from './idempotency-index.js';
import type { Metrics } from './metrics.js';
import { MAX_IDENTIFIER_BYTES, identifierProblem } from './identifier.js';
import type { Pending } from './pending.js';

/** Longest idempotency key, in bytes of UTF-8. */
export const MAX_IDEMPOTENCY_KEY_BYTES = MAX_IDENTIFIER_BYTES;

/** Checks a caller's idempotency key; throws ConfigError saying what is wrong with it. */
export function checkIdempotencyKey(key: unknown): string {
  const problem = identifierProblem('idempotencyKey', key);
  if (problem !== null) throw new ConfigError(problem);
  return key as string;
}

/** Where the keys are stored (`IdempotencyRecords`). */
export interface IdempotencyStore {
  read(ids: readonly number[]): StoredIdempotencyBatch[];
  scan(): IdempotencyIndexRow[];
}

/** How often (ms) a commit also removes keys past their age. */
const EXPIRY_EVERY_MS = 1000;

/** The first 16 bytes of sha256 of a logged input: one-shot where Node has it (20.12 on), several times cheaper. */
const inputHash: (bytes: Uint8Array) => Uint8Array =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? (bytes) => (crypto as unknown as { hash(alg: string, data: Uint8Array, enc: 'buffer'): Buffer }).hash('sha256', bytes, 'buffer').subarray(0, HASH_BYTES)
    : (bytes) => crypto.createHash('sha256').update(bytes).digest().subarray(0, HASH_BYTES);
const HASH_BYTES = 16;

/** Where a key's reply is. */
type Reply =
  /** Stepped earlier in this batch: its output, encoded when answered. */
  | { readonly kind: 'output'; readonly output: unknown }
  /** Element `index` of a committed row's replies. */
  | { readonly kind: 'stored'; readonly replies: Uint8Array; readonly index: number }
  /** A row migrated from version 7: the reply's own CBOR. */
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  /** The output was not encodable: applied once, no reply kept. */
  | null;

/** What a key recorded. */
interface KeyRecord {
  readonly seq: number;
  /** 16 bytes of the input's sha256, or (rows of version 7) its whole sha256 as hex. */
  readonly hash: Uint8Array | string;
  readonly reply: Reply;
}

/** One machine's keys of the batch being stepped: its row of the commit. */
interface Building {
  readonly firstSeq: number;
  lastSeq: number;
  readonly keys: string[];
  readonly seqs: number[];
  readonly outputs: unknown[];
  readonly hashes: Uint8Array[];
  readonly fingerprints: number[];
}

/**
 * Exactly-once for retried calls, one batch at a time: a keyed request whose key is already
 * recorded (earlier in this batch, or committed before) is answered with the recorded reply and
 * neither stepped nor logged; a new one is recorded for the batch's commit, in the same
 * transaction as its log row. Batches are sequential, so a retry arriving while its first request
 * is still queued is met after that request was stepped: it finds the key, or (the first crashed,
 * timed out while queued, or its commit failed) nothing was applied and the retry is stepped.
 * Keys are found through an index of fingerprints in memory ({@link IdempotencyIndex}), built
 * from the table at start: a new key reads nothing from the database.
 */
export class Idempotency {
  private readonly index = new IdempotencyIndex();
  private readonly inBatch = new Map<string, KeyRecord>();
  /** The records committed before this batch of its keyed requests, read at its start. */
  private readonly found = new Map<string, KeyRecord>();
  private lookupError: SsmError | null = null;
  private readonly building = new Map<string, Building>();
  private rows: IdempotencyBatchRow[] = [];
  private nextId: number;
  private lastExpiry = 0;
  /** Rows up to this id are past retention and not yet removed from the table. */
  private expireThrough: number | null = null;

  constructor(
    private readonly store: IdempotencyStore,
    private readonly retention: { readonly retainMs: number; readonly maxKeys: number },
    private readonly metrics: Metrics,
  ) {
    for (const row of store.scan()) this.index.add(row.id, Date.parse(row.createdAt), storedFingerprints(row));
    this.nextId = this.index.lastId + 1;
  }

  /** Starts a batch: reads the rows that may hold its keys, all at once. */
  begin(batch: readonly Pending[]): void {
    if (this.inBatch.size > 0) this.inBatch.clear();
    if (this.found.size > 0) this.found.clear();
    if (this.building.size > 0) this.building.clear();
    if (this.rows.length > 0) this.rows = [];
    this.lookupError = null;
    if (this.index.size === 0) return;
    let ids: Set<number> | null = null;
    let wanted: Set<string> | null = null;
    for (const r of batch) {
      if (r.idempotencyKey === null || r.logged === null) continue;
      const candidates = this.index.candidates(keyFingerprint(r.target.name, r.idempotencyKey));
      if (candidates.length === 0) continue;
      ids ??= new Set();
      for (const id of candidates) ids.add(id);
      (wanted ??= new Set()).add(`${r.target.name}\0${r.idempotencyKey}`);
    }
    if (ids === null || wanted === null) return;
    try {
      this.findCommitted([...ids].sort((a, b) => a - b), wanted);
    } catch (err) {
      this.lookupError = err instanceof SsmError ? err : new StorageError(describe(err), { cause: err });
    }
  }

  /**
   * Answers `r` from its key's record if there is one (setting `output` or `error`, and
   * clearing `logged` so it is not logged again): true when `r` must not be stepped.
   */
  answered(r: Pending): boolean {
    const key = r.idempotencyKey;
    if (key === null || r.logged === null) return false;
    const machine = r.target.name;
    const input = r.fingerprint ?? r.logged;
    r.inputHash = inputHash(input);
    if (this.lookupError !== null) {
      r.logged = null;
      r.error = this.lookupError;
      return true;
    }
    const id = `${machine}\0${key}`;
    const seen = this.inBatch.get(id) ?? this.found.get(id);
    if (!seen) return false;
    r.logged = null;
    const same = typeof seen.hash === 'string' ? seen.hash === crypto.createHash('sha256').update(input).digest('hex') : Buffer.from(seen.hash).equals(r.inputHash);
    if (!same) {
      r.error = new IdempotencyKeyReusedError(machine, key);
      return true;
    }
    this.metrics.idempotentReplays++;
    const notEncodable = () => new EncodeError(`the call with idempotency key ${JSON.stringify(key)} on ${machine} was applied once (seq ${seen.seq}), but its output was not encodable, so no reply was stored`);
    const reply = seen.reply;
    if (reply === null) {
      r.error = notEncodable();
      return true;
    }
    if (reply.kind === 'output') {
      // The same reply as a retry after the commit would get: a decoded copy.
      try {
        const bytes = cbor.encode(reply.output);
        assertNestingWithinLimit(bytes);
        r.output = decodeCbor(bytes);
      } catch {
        r.error = notEncodable();
      }
      return true;
    }
    try {
      r.output = reply.kind === 'bytes' ? decodeCbor(reply.bytes) : (decodeCbor(reply.replies) as unknown[])[reply.index];
    } catch (err) {
      r.error = new StorageError(`the stored reply of idempotency key ${JSON.stringify(key)} on ${machine} is unreadable: ${describe(err)}`, { cause: err });
    }
    return true;
  }

  /** Records a stepped, logged keyed request (its seq just assigned) for this batch's commit. */
  record(r: Pending, seq: number): void {
    const key = r.idempotencyKey;
    if (key === null || r.inputHash === null) return;
    const machine = r.target.name;
    this.inBatch.set(`${machine}\0${key}`, { seq, hash: r.inputHash, reply: { kind: 'output', output: r.output } });
    let b = this.building.get(machine);
    if (!b) this.building.set(machine, (b = { firstSeq: seq, lastSeq: seq, keys: [], seqs: [], outputs: [], hashes: [], fingerprints: [] }));
    b.lastSeq = seq;
    b.keys.push(key);
    b.seqs.push(seq);
    b.outputs.push(r.output);
    b.hashes.push(r.inputHash);
    b.fingerprints.push(keyFingerprint(machine, key));
  }

  /** What this batch's commit writes: a row per machine with keys, and which rows retention removes. */
  forCommit(): { keys: readonly IdempotencyBatchRow[]; expireThrough: number | null } {
    let adding = 0;
    for (const [machine, b] of this.building) {
      this.rows.push(batchRow(this.nextId++, machine, b));
      adding += b.keys.length;
    }
    const now = Date.now();
    if (adding > 0 || now - this.lastExpiry >= EXPIRY_EVERY_MS) {
      this.lastExpiry = now;
      // Room for this batch's keys within maxKeys; past their age, keys are treated as absent
      // on reading anyway.
      const through = this.index.expire(now - this.retention.retainMs, Math.max(0, this.retention.maxKeys - adding));
      if (through !== null) this.expireThrough = through;
    }
    return { keys: this.rows, expireThrough: this.expireThrough };
  }

  /** The batch's commit succeeded: its keys are found from now on. */
  committed(): void {
    const now = Date.now();
    for (const row of this.rows) this.index.add(row.id, now, Uint32Array.from(this.building.get(row.machine)!.fingerprints));
    this.expireThrough = null;
  }

  /** Reads the rows of `ids` (ascending) and keeps the newest unexpired record of each wanted key. */
  private findCommitted(ids: readonly number[], wanted: ReadonlySet<string>): void {
    const notBefore = Date.now() - this.retention.retainMs;
    for (const row of this.store.read(ids)) {
      if (Date.parse(row.createdAt) < notBefore) continue;
      const entries = JSON.parse(row.entries) as [string, number, (string | number | null)?, (string | null)?][];
      for (let i = 0; i < entries.length; i++) {
        const [key, seq, third, fourth] = entries[i]!;
        const id = `${row.machine}\0${key}`;
        if (!wanted.has(id)) continue;
        if (row.hashes === null) {
          // Version 7: [key, seq, sha256 hex, reply hex or null].
          this.found.set(id, { seq, hash: String(third), reply: typeof fourth === 'string' ? { kind: 'bytes', bytes: Buffer.from(fourth, 'hex') } : null });
        } else {
          const hash = row.hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES);
          this.found.set(id, { seq, hash, reply: third === 0 || row.replies === null ? null : { kind: 'stored', replies: row.replies, index: i } });
        }
      }
    }
  }
}

/** The row of one machine's keys: replies encoded once for the whole batch. */
function batchRow(id: number, machine: string, b: Building): IdempotencyBatchRow {
  const n = b.keys.length;
  const kept = encodeReplies(b.outputs);
  const entries: string[] = new Array(n);
  for (let i = 0; i < n; i++) entries[i] = `[${JSON.stringify(b.keys[i])},${b.seqs[i]}${kept.notEncodable?.has(i) ? ',0' : ''}]`;
  const fingerprints = Buffer.allocUnsafe(4 * n);
  for (let i = 0; i < n; i++) fingerprints.writeUInt32LE(b.fingerprints[i]!, 4 * i);
  const hashes = Buffer.allocUnsafe(HASH_BYTES * n);
  for (let i = 0; i < n; i++) hashes.set(b.hashes[i]!, HASH_BYTES * i);
  return { id, machine, firstSeq: b.firstSeq, lastSeq: b.lastSeq, count: n, entries: `[${entries.join(',')}]`, fingerprints, hashes, replies: kept.replies };
}

/**
 * CBOR of the outputs as one array; an output that is not encodable (or nested past the limit)
 * is kept as null and listed, found by encoding them one by one only when the whole fails.
 */
function encodeReplies(outputs: readonly unknown[]): { replies: Uint8Array; notEncodable?: Set<number> } {
  try {
    const replies = cbor.encode(outputs);
    assertNestingWithinLimit(replies);
    return { replies };
  } catch {
    const notEncodable = new Set<number>();
    const safe = outputs.map((o, i) => {
      try {
        assertNestingWithinLimit(cbor.encode(o));
        return o;
      } catch {
        notEncodable.add(i);
        return null;
      }
    });
    return { replies: cbor.encode(safe), notEncodable };
  }
}

/** A stored row's fingerprints; computed from its entries for rows migrated without them. */
function storedFingerprints(row: IdempotencyIndexRow): Uint32Array {
  if (row.fingerprints !== null) {
    const b = Buffer.from(row.fingerprints.buffer, row.fingerprints.byteOffset, row.fingerprints.byteLength);
    const out = new Uint32Array(b.byteLength >>> 2);
    for (let i = 0; i < out.length; i++) out[i] = b.readUInt32LE(4 * i);
    return out;
  }
  const entries = JSON.parse(row.entries ?? '[]') as [string][];
  return Uint32Array.from(entries, ([key]) => keyFingerprint(row.machine, key));
}
