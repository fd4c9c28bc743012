import { ConfigError } from '../errors.js';

/**
 * When to checkpoint a machine's state: a pure function of counters, so the policy is testable
 * without a disk.
 */

export interface SnapshotPolicy {
  /**
   * Snapshot after this many logged requests since the last snapshot. Default 100,000. 0 disables.
   * A snapshot costs time proportional to the whole state (about 0.7 s per million small keys
   * here) while replay costs time per request (about 1.4 us). Under a light load this bounds
   * the replay after a crash (100,000 requests: about 0.15 s); under a heavy one
   * {@link maxTimeShare} may defer it, and only {@link everyBytes} bounds the replay.
   */
  every?: number;
  /** Snapshot when the oldest unsnapshotted request is this old (ms). Default off. */
  everyMs?: number;
  /** Snapshot after this many bytes of log since the last snapshot. Default 64 MiB. 0 disables. */
  everyBytes?: number;
  /**
   * Most of the time snapshots may take, as a share of wall time, in (0, 1]. Default 0.1.
   * A snapshot costs time proportional to the whole state, and every machine's steps wait
   * for it (there is one event loop); under a heavy write load on a large state, snapshotting
   * every `every` requests would otherwise spend a quarter of the time or more snapshotting.
   * So after snapshots that took d ms in all (of any machine, for any reason), the `every` and
   * `everyMs` triggers of every machine wait until d × (1/share − 1) ms have passed (with the
   * default, 9 d); a deferred snapshot is taken then, even if no request arrives meanwhile.
   * `everyBytes` never waits: it is the bound on how much log a recovery may have to replay.
   * 1 turns the throttle off.
   */
  maxTimeShare?: number;
  /** Snapshots kept per machine (older ones are fall-backs if the newest is corrupt). Default 2. */
  keepSnapshots?: number;
  /** Keep log entries already covered by snapshots (for `ssm inspect --at`). Default false. */
  retainLog?: boolean;
}

export type ResolvedSnapshotPolicy = Required<SnapshotPolicy>;

export const DEFAULT_SNAPSHOT_POLICY: ResolvedSnapshotPolicy = {
  every: 100_000,
  everyMs: 0,
  everyBytes: 64 * 1024 * 1024,
  maxTimeShare: 0.1,
  keepSnapshots: 2,
  retainLog: false,
};

export function resolveSnapshotPolicy(p: SnapshotPolicy = {}): ResolvedSnapshotPolicy {
  const r = { ...DEFAULT_SNAPSHOT_POLICY, ...Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)) };
  for (const k of ['every', 'everyMs', 'everyBytes'] as const) {
    if (!(Number.isFinite(r[k]) && r[k] >= 0)) throw new ConfigError(`snapshot.${k} must be a number >= 0`);
  }
  if (!Number.isInteger(r.keepSnapshots) || r.keepSnapshots < 1) throw new ConfigError('snapshot.keepSnapshots must be an integer >= 1');
  if (!(r.maxTimeShare > 0 && r.maxTimeShare <= 1)) throw new ConfigError('snapshot.maxTimeShare must be a number in (0, 1]');
  return r;
}

/** Log growth since the machine's latest snapshot. */
export interface LogGrowth {
  readonly requests: number;
  readonly bytes: number;
  /** When the first request after the latest snapshot was logged (monotonic ms, performance.now()), or null. */
  readonly firstAt: number | null;
}

/**
 * When the throttle lets count and age triggers fire again, after a snapshot that ended at
 * `endedAt` and took `ms`. Each snapshot uses up ms / maxTimeShare of wall time, counted from
 * its start or from the end of the previous quiet period, whichever is later, so snapshots
 * taken back to back (one per machine, say) add up. All times are monotonic ms.
 */
export function quietUntil(policy: ResolvedSnapshotPolicy, previous: number, endedAt: number, ms: number): number {
  return Math.max(previous, endedAt - ms) + ms / policy.maxTimeShare;
}

/** What the policy says about a machine now. */
export type SnapshotVerdict = 'due' | 'deferred' | 'not-due';

/**
 * `due`: snapshot now; `deferred`: a count or age trigger fired but the throttle holds it until
 * `quiet`; `not-due`: nothing fired. `now`, `quiet` and `growth.firstAt` are monotonic ms.
 */
export function snapshotVerdict(policy: ResolvedSnapshotPolicy, growth: LogGrowth, now: number, quiet = 0): SnapshotVerdict {
  if (growth.requests === 0) return 'not-due';
  if (policy.everyBytes > 0 && growth.bytes >= policy.everyBytes) return 'due';
  const fired = (policy.every > 0 && growth.requests >= policy.every) || (policy.everyMs > 0 && growth.firstAt !== null && now - growth.firstAt >= policy.everyMs);
  if (!fired) return 'not-due';
  return now < quiet ? 'deferred' : 'due';
}

