import { describe } from '../errors.js';
import type { RecoveryReport, TableIntegrity } from '../storage/reports.js';

/** Lifecycle events, delivered to the `logger` option of {@link startApplication}. */
export type LifecycleEvent =
  | { readonly type: 'started'; readonly machine: string; readonly recovery: RecoveryReport }
  | { readonly type: 'crashed'; readonly machine: string; readonly error: unknown }
  | { readonly type: 'terminated'; readonly machine: string; readonly reason: 'stop' | 'restart' | 'crash' | 'escalation' | 'temporary' | 'abort' | 'normal' }
  | { readonly type: 'restarting'; readonly supervisor: string; readonly strategy: string; readonly machines: readonly string[] }
  | { readonly type: 'escalated'; readonly supervisor: string; readonly intensity: number; readonly periodMs: number; readonly error: unknown }
  | { readonly type: 'hook_timeout'; readonly machine: string; readonly hook: 'onStart' | 'onTerminate'; readonly ms: number }
  | { readonly type: 'hook_failed'; readonly machine: string; readonly hook: 'onStart' | 'onTerminate'; readonly error: unknown }
  | { readonly type: 'snapshot_failed'; readonly machine: string; readonly error: unknown }
  | { readonly type: 'storage_failed'; readonly machines: readonly string[]; readonly error: unknown }
  | { readonly type: 'integrity_failed'; readonly database: string; readonly problems: readonly TableIntegrity[] }
  | { readonly type: 'timers_failed'; readonly error: unknown }
  | { readonly type: 'held'; readonly machine: string; readonly runs: number; readonly windowMs: number }
  | { readonly type: 'backoff'; readonly supervisor: string; readonly machines: readonly string[]; readonly delayMs: number }
  | { readonly type: 'application_stopped'; readonly reason: string };

export type Logger = (event: LifecycleEvent) => void;

function recoveryText(r: RecoveryReport): string {
  if (r.path === 'init' && r.replayed === 0) return 'fresh state';
  const migrated = r.migratedFrom !== null ? `, migrated from state version ${r.migratedFrom}` : '';
  const from = r.path === 'init' ? 'init' : `snapshot @${r.snapshotSeq}${migrated}${r.path === 'older-snapshot' ? ` (newer rejected: ${r.rejected.map((x) => x.reason).join(', ')})` : ''}`;
  const ms = r.ms.load + r.ms.migrate + r.ms.replay;
  return `recovered from ${from} + ${r.replayed} replayed, seq ${r.seq}, ${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
}

/** One concise line per event. */
export function formatEvent(e: LifecycleEvent): string {
  switch (e.type) {
    case 'started':
      return `${e.machine} started (${recoveryText(e.recovery)})`;
    case 'crashed':
      return `${e.machine} threw: ${describe(e.error)}`;
    case 'terminated':
      return `${e.machine} terminated (${e.reason})`;
    case 'restarting':
      return `${e.supervisor} (${e.strategy}) restarting ${e.machines.join(', ')}`;
    case 'escalated':
      return `${e.supervisor} gave up: more than ${e.intensity} restart(s) in ${e.periodMs} ms; escalating`;
    case 'hook_timeout':
      return `${e.machine} ${e.hook} overran its ${e.ms} ms grace time and was abandoned`;
    case 'hook_failed':
      return `${e.machine} ${e.hook} threw: ${describe(e.error)}`;
    case 'snapshot_failed':
      return `${e.machine} snapshot failed: ${describe(e.error)}`;
    case 'storage_failed':
      return `commit failed, batch rejected and ${e.machines.join(', ') || 'no machines'} restored from storage: ${describe(e.error)}`;
    case 'integrity_failed':
      return `DATABASE DAMAGED: ${e.database} failed PRAGMA quick_check (${e.problems.map((p) => `${p.table ?? 'file'}: ${p.problems.slice(0, 2).join('; ')}`).join(' | ')}); run ssm verify, and restore a backup`;
    case 'timers_failed':
      return `timers: ${describe(e.error)}`;
    case 'backoff':
      return `${e.supervisor} restarts ${e.machines.join(', ')} in ${e.delayMs} ms (backoff)`;
    case 'held':
      return `${e.machine} HELD BACK: it crashed in ${e.runs} runs of the application within ${e.windowMs} ms; the rest of the tree serves; run ssm release ${e.machine} once it is fixed`;
    case 'application_stopped':
      return `application stopped: ${e.reason}`;
  }
}

/** The default logger: concise lines on stderr. */
export const stderrLogger: Logger = (e) => {
  process.stderr.write(`[ssm] ${formatEvent(e)}\n`);
};

export const silentLogger: Logger = () => {};
