import { assertNestingWithinLimit } from '../encoding/cbor-guard.js';
import { cbor, decodeCbor } from '../encoding/cbor.js';
import { ConfigError, EncodeError, IdempotencyKeyReusedError, SsmError, StorageError, describe } from '../errors.js';
import { sha256 } from '../storage/checksum.js';
import type { IdempotencyRecord, IdempotencyRetention, IdempotencyRow } from '../storage/rows.js';
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

/** Where keys committed in earlier batches are found. */
export interface IdempotencyLookup {
  findIdempotencyKey(machine: string, key: string, notBefore: string): IdempotencyRecord | undefined;
}

/** How often (ms) a commit also removes expired keys. */
const EXPIRY_EVERY_MS = 1000;

/**
 * Exactly-once for retried calls, one batch at a time: a keyed request whose key is already
 * recorded (earlier in this batch, or committed before) is answered with the recorded reply and
 * neither stepped nor logged; a new one is recorded for the batch's commit, in the same
 * transaction as its log row. Batches are sequential, so a retry arriving while its first request
 * is still queued is met after that request was stepped: it finds the key, or (the first crashed,
 * timed out while queued, or its commit failed) nothing was applied and the retry is stepped.
 */
export class Idempotency {
  private readonly inBatch = new Map<string, IdempotencyRecord>();
  private rows: IdempotencyRow[] = [];
  private notBefore = '';
  private lastExpiry = 0;

  constructor(
    private readonly lookup: IdempotencyLookup,
    private readonly retention: { readonly retainMs: number; readonly maxKeys: number },
    private readonly metrics: Metrics,
  ) {}

  /** Starts a batch. */
  begin(): void {
    if (this.inBatch.size > 0) this.inBatch.clear();
    if (this.rows.length > 0) this.rows = [];
    this.notBefore = '';
  }

  /**
   * Answers `r` from its key's record if there is one (setting `output` or `error`, and
   * clearing `logged` so it is not logged again): true when `r` must not be stepped.
   */
  answered(r: Pending): boolean {
    const key = r.idempotencyKey;
    if (key === null || r.logged === null) return false;
    const machine = r.target.name;
    r.inputSha256 = sha256(r.fingerprint ?? r.logged);
    let seen: IdempotencyRecord | undefined;
    try {
      seen = this.inBatch.get(`${machine}\0${key}`) ?? this.lookup.findIdempotencyKey(machine, key, this.cutoff());
    } catch (err) {
      r.logged = null;
      r.error = err instanceof SsmError ? err : new StorageError(describe(err), { cause: err });
      return true;
    }
    if (!seen) return false;
    r.logged = null;
    if (seen.inputSha256 !== r.inputSha256) {
      r.error = new IdempotencyKeyReusedError(machine, key);
      return true;
    }
    this.metrics.idempotentReplays++;
    if (seen.reply === null) {
      r.error = new EncodeError(`the call with idempotency key ${JSON.stringify(key)} on ${machine} was applied once (seq ${seen.seq}), but its output was not encodable, so no reply was stored`);
      return true;
    }
    try {
      r.output = decodeCbor(seen.reply);
    } catch (err) {
      r.error = new StorageError(`the stored reply of idempotency key ${JSON.stringify(key)} on ${machine} is unreadable: ${describe(err)}`, { cause: err });
    }
    return true;
  }

  /** Records a stepped, logged keyed request (its seq just assigned) for this batch's commit. */
  record(r: Pending, seq: number): void {
    const key = r.idempotencyKey;
    if (key === null) return;
    let reply: Uint8Array | null;
    try {
      reply = cbor.encode(r.output);
      assertNestingWithinLimit(reply);
    } catch {
      reply = null;
    }
    const rec: IdempotencyRow = { machine: r.target.name, key, seq, inputSha256: r.inputSha256, reply };
    this.inBatch.set(`${rec.machine}\0${key}`, rec);
    this.rows.push(rec);
  }

  /** What this batch's commit writes: its keys, and (about once a second) a bounded expiry. */
  forCommit(): { keys: readonly IdempotencyRow[]; retention: IdempotencyRetention | null } {
    const now = Date.now();
    if (now - this.lastExpiry < EXPIRY_EVERY_MS && this.rows.length === 0) return { keys: this.rows, retention: null };
    this.lastExpiry = now;
    return { keys: this.rows, retention: { before: new Date(now - this.retention.retainMs).toISOString(), maxKeys: this.retention.maxKeys } };
  }

  /** Keys committed before this instant are expired: treated as absent, then removed. */
  private cutoff(): string {
    if (this.notBefore === '') this.notBefore = new Date(Date.now() - this.retention.retainMs).toISOString();
    return this.notBefore;
  }
}
