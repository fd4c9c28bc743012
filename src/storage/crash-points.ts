/**
 * Named points inside the engine where a fault test can kill the process with SIGKILL, to prove
 * that no acknowledged write is lost wherever a crash lands. Armed only by the environment
 * variable `SSM_CRASH_POINT=<name>[:<n>]` (crash on the n-th time the point is reached, default
 * 1); unset, a point costs one comparison.
 */
export type CrashPointName =
  /** The batch's log rows are committed, no reply released yet. */
  | 'after-log-append'
  /** Inside the snapshot transaction, the snapshot row written, not committed. */
  | 'mid-snapshot'
  /** Inside the snapshot transaction, after the snapshot row, before the log truncation. */
  | 'snapshot-before-truncate'
  /** Inside the schema migration transaction, a migration's SQL run, not committed. */
  | 'mid-migration';

const spec = process.env['SSM_CRASH_POINT'];
const [armedName, armedCount] = spec ? [spec.split(':')[0], Number(spec.split(':')[1] ?? 1)] : [null, 0];
let remaining = armedCount;

export function crashPoint(name: CrashPointName): void {
  if (armedName !== name) return;
  if (--remaining > 0) return;
  process.kill(process.pid, 'SIGKILL');
}
