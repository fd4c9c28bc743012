import { StorageError, describe } from '../errors.js';

/** What {@link StorageHealth.report} says; `app.health().storage`, `/healthz` and `/metrics` show it. */
export type StorageHealthReport =
  | { readonly status: 'ok' }
  | { readonly status: 'failing'; readonly since: string; readonly lastError: string; readonly refusedWrites: number };

/** First wait before a distrusted probe may be retried by a real batch; doubles up to {@link MAX_BACKOFF_MS}. */
export const MIN_BACKOFF_MS = 250;
export const MAX_BACKOFF_MS = 1000;

/**
 * Whether storage takes writes, as the engine has seen it (issue 18.5). Pure: the caller passes
 * the time and the probe. Why: after a refused commit every machine stepped in that batch must
 * be reloaded from disk (its memory is ahead of the disk), about 0.5 s for 300k keys on the one
 * event loop; retrying every batch against a full disk reloaded it again and again and stalled
 * every other machine. So, once a commit fails, writes are refused before they are stepped
 * until a probe (a cheap write transaction) succeeds, and no machine needs reloading meanwhile.
 *
 * A probe can succeed where a commit still fails (a fault the probe does not meet). Then the
 * probe is no longer trusted for this outage: writes are refused for a backoff (250 ms, doubling
 * to 1 s), after which one real batch is let through as the probe. A machine is thus reloaded
 * once per outage when the probe tells the truth, and at most once per backoff when it does not.
 */
export class StorageHealth {
  #failing = false;
  #since = 0;
  #lastError: unknown = null;
  #refused = 0;
  /** A probe succeeded and no commit has yet confirmed it. */
  #probed = false;
  /** The probe lied once in this outage: only real batches count, after the backoff. */
  #distrust = false;
  #backoff = MIN_BACKOFF_MS;
  #nextTry = 0;

  get failing(): boolean {
    return this.#failing;
  }

  /** A commit failed (`now`: Date.now()). */
  commitFailed(error: unknown, now: number): void {
    if (!this.#failing && !this.#probed) {
      this.#since = now;
      this.#refused = 0;
      this.#backoff = MIN_BACKOFF_MS;
    } else if (this.#probed || this.#distrust) {
      // A probe said yes and the commit said no: the probe cannot be trusted in this outage.
      this.#distrust = true;
      this.#nextTry = now + this.#backoff;
      this.#backoff = Math.min(this.#backoff * 2, MAX_BACKOFF_MS);
    }
    this.#failing = true;
    this.#probed = false;
    this.#lastError = error;
  }

  /** A commit succeeded: the outage, if any, is over. */
  commitSucceeded(): void {
    this.#failing = false;
    this.#probed = false;
    this.#distrust = false;
    this.#backoff = MIN_BACKOFF_MS;
  }

  /**
   * Whether a batch with writes may step them now. While failing, runs `probe` (which throws
   * when storage still refuses writes) unless the probe is distrusted, in which case the batch
   * itself is the probe once the backoff has passed.
   */
  mayWrite(now: number, probe: () => void): boolean {
    if (!this.#failing) return true;
    if (this.#distrust) return now >= this.#nextTry;
    return this.probe(probe);
  }

  /** Runs a probe (also from a timer, so health recovers without writes); returns whether it passed. */
  probe(probe: () => void): boolean {
    if (!this.#failing) return true;
    try {
      probe();
    } catch (err) {
      this.#lastError = err;
      return false;
    }
    if (this.#distrust) {
      // Not believed, but worth a real try at the next batch.
      this.#nextTry = 0;
      return false;
    }
    this.#failing = false;
    this.#probed = true;
    return true;
  }

  /** The error a write refused without being stepped gets. */
  refusal(): StorageError {
    this.#refused++;
    return new StorageError(`storage is failing since ${new Date(this.#since).toISOString()} (${describe(this.#lastError)}); writes are refused until it takes writes again`, { cause: this.#lastError });
  }

  report(): StorageHealthReport {
    if (!this.#failing) return { status: 'ok' };
    return { status: 'failing', since: new Date(this.#since).toISOString(), lastError: describe(this.#lastError), refusedWrites: this.#refused };
  }
}
