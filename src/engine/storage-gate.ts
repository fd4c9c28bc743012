import type { StorageError } from '../errors.js';
import type { Pending } from './pending.js';
import type { Persistence } from './persistence.js';
import { MIN_BACKOFF_MS, type StorageHealth } from './storage-health.js';

/** Bytes a probe writes at least: more than a page, so it needs new pages as log rows do. */
const MIN_PROBE_BYTES = 16 * 1024;
const MAX_PROBE_BYTES = 2 * 1024 * 1024;

/**
 * The batch's door to storage while it refuses writes (issue 18.5): refuses writes before they
 * are stepped, and probes storage (with writes, and by timer) until a probe write succeeds.
 * The rule of when to probe and what to answer is {@link StorageHealth}'s; this carries it out.
 */
export class StorageGate {
  constructor(
    private readonly health: StorageHealth,
    private readonly persistence: Persistence,
    private readonly isEnded: () => boolean,
  ) {}

  /** A commit was refused: storage is failing from now on, and is probed by timer. */
  commitFailed(error: StorageError): void {
    this.health.commitFailed(error, Date.now());
    this.probeLater();
  }

  commitSucceeded(): void {
    this.health.commitSucceeded();
  }

  /** The probe of {@link StorageHealth}: a write transaction of about `bytes` that leaves nothing. */
  private probe(bytes: number): () => void {
    return () => this.persistence.probe(Math.min(Math.max(bytes, MIN_PROBE_BYTES), MAX_PROBE_BYTES));
  }

  /**
   * While storage is failing, probes it every backoff without waiting for a write, so that
   * health (and `/healthz`) recovers on its own once space returns. Between batches only: the
   * probe is one synchronous transaction, and batches are synchronous up to their hand-off.
   */
  private probeLater(): void {
    if (this.probeTimer) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = null;
      if (this.isEnded() || !this.health.failing) return;
      this.health.probe(this.probe(0));
      if (this.health.failing) this.probeLater();
    }, MIN_BACKOFF_MS);
    this.probeTimer.unref();
  }

  private probeTimer: ReturnType<typeof setTimeout> | null = null;

  /**
   * Refuses, without stepping them, the writes of a batch while storage refuses writes: their
   * machines then need no reload, and reads (and other machines) keep their normal latency.
   */
  refuseWrites(batch: Pending[]): void {
    if (!this.health.failing) return;
    let bytes = 0;
    for (const r of batch) if (r.logged && r.error === undefined) bytes += r.logged.byteLength;
    if (bytes === 0 || this.health.mayWrite(Date.now(), this.probe(bytes))) return;
    for (const r of batch) {
      if (!r.logged || r.error !== undefined) continue;
      r.logged = null;
      r.error = this.health.refusal();
    }
  }
}
