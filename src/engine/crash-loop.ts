import { randomUUID } from 'node:crypto';
import { describe } from '../errors.js';
import type { CrashHistory } from '../storage/crash-history.js';
import type { HeldMachine } from '../storage/reports.js';
import type { Logger } from './logger.js';
import type { ResolvedCrashLoop } from './options.js';
import type { WorkerNode } from './runtime-tree.js';

/** Whether crashes in `runs` distinct runs within the window make a crash loop (the pure rule). */
export function isCrashLoop(runs: number, policy: NonNullable<ResolvedCrashLoop>): boolean {
  return runs >= policy.runs;
}

/**
 * Crash loops across process starts. Restart intensity lives in memory: a machine that crashes
 * on every start makes a process manager restart the whole process for ever, each run within
 * intensity. Every crash is recorded with this run's id; a machine that crashed in
 * `policy.runs` runs within `policy.windowMs` is held back at its next start (this run's
 * restarts included) while the rest of the tree serves, until it is released.
 */
export class CrashLoopGuard {
  /** This run of the application: crashes of one run count once. */
  readonly runId = randomUUID();

  constructor(
    private readonly history: CrashHistory,
    private readonly policy: ResolvedCrashLoop,
    private readonly log: Logger,
    private readonly clock: () => number = Date.now,
  ) {}

  /** The hold on `w`, if it must not start. */
  held(w: WorkerNode): HeldMachine | undefined {
    return this.policy ? this.history.held(w.name) : undefined;
  }

  /**
   * Records a crash of `w` (a step threw, or its start failed); holds it back if that makes a
   * crash loop, and returns the hold then (so the caller can show it held at once). Never throws.
   */
  crashed(w: WorkerNode, kind: 'crash' | 'start', error: unknown): HeldMachine | undefined {
    if (!this.policy) return undefined;
    const now = this.clock();
    try {
      const runs = this.history.record(w.name, this.runId, kind, describe(error), now, now - this.policy.windowMs);
      if (!isCrashLoop(runs, this.policy)) return undefined;
      this.history.hold(w.name, runs, this.policy.windowMs, describe(error), now);
      this.log({ type: 'held', machine: w.name, runs, windowMs: this.policy.windowMs });
      return this.history.held(w.name);
    } catch {
      // The record is a safeguard: a full disk must not turn a crash into something worse.
      return undefined;
    }
  }
}
