import { checkInBackground, type BackgroundCheck, type IntegrityStatus } from '../storage/background-check.js';
import type { Logger } from './logger.js';
import type { StorageHealthReport } from './storage-health.js';

/** What {@link App.health} answers. */
export interface HealthReport {
  /**
   * `stopped` once the application has stopped; `degraded` while storage refuses writes (reads
   * still served) or when the start-up integrity check found damage.
   */
  readonly status: 'ok' | 'degraded' | 'stopped';
  readonly storage: StorageHealthReport;
  /** The start-up `PRAGMA quick_check`, run in a worker thread while the application serves. */
  readonly integrity: IntegrityStatus;
}

/** The application's status from its parts: stopped wins, then any damage or refused writes make it degraded. */
export function healthOf(ended: boolean, storage: StorageHealthReport, integrity: IntegrityStatus): HealthReport {
  return { status: ended ? 'stopped' : storage.status === 'ok' && integrity.state !== 'failed' ? 'ok' : 'degraded', storage, integrity };
}

/** Starts the integrity check of the database at `path` in a worker thread (none in memory); damage is logged loudly. */
export function watchIntegrity(path: string, log: Logger): BackgroundCheck | null {
  if (path === ':memory:') return null;
  return checkInBackground(path, (s) => {
    if (s.state === 'failed') log({ type: 'integrity_failed', database: path, problems: s.problems });
  });
}
