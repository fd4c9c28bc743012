import { MachineStoppedError, RecoveryError, StartError, describe } from '../errors.js';
import { runHook } from './hooks.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { CrashLoopGuard } from './crash-loop.js';
import type { Persistence } from './persistence.js';
import { RestartBackoffs, nextBackoff } from './restart-backoff.js';
import { planRestart, planRetry, type RestartDecision, type SupervisorWindow } from './restart-plan.js';
import { isAlive, present, workersOf, type EntityFamilyNode, type RuntimeNode, type SupervisorNode, type WorkerNode } from './runtime-tree.js';
import type { EntityRuntime } from './entities.js';
import { EntityCrashes } from './entity-supervision.js';

/** `abort`: a failed start is being undone; nothing is written, so the database stays as found. */
type StopReason = 'stop' | 'restart' | 'crash' | 'escalation' | 'temporary' | 'abort' | 'normal';

/**
 * The supervisor behaviour at run time: starting and stopping subtrees in order, and applying
 * restart strategies and intensity when a child fails. Decisions come from the pure
 * {@link planRestart}; this class carries them out.
 */
export class Supervision {
  private readonly backoffs: RestartBackoffs;
  private entities: EntityRuntime | null = null;
  private entityCrashes: EntityCrashes | null = null;

  constructor(
    private readonly persistence: Persistence,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly crashLoop: CrashLoopGuard,
    /** Called when the root supervisor gives up. */
    private readonly onRootFailure: (error: unknown) => Promise<void>,
    /** Runs `fn` under the loop's lock after `ms` (a delayed restart); returns its cancel. */
    later: (ms: number, fn: () => Promise<void>) => () => void,
    /** Monotonic: a wall-clock step must not distort restart intensity. */
    private readonly now: () => number = () => performance.now(),
  ) {
    this.backoffs = new RestartBackoffs(persistence, later);
  }

  /** The families of the tree, supervised here: started and stopped with their parents, their crashes counted. */
  superviseEntities(entities: EntityRuntime): void {
    this.entities = entities;
    this.entityCrashes = new EntityCrashes(entities, this.persistence, this.metrics, this.log, this.now, async (f: EntityFamilyNode, error: unknown) => {
      await this.stop(f, 'escalation');
      f.status = 'failed';
      await this.childFailed(f.parent, f.index, error);
    });
  }

  /** Starts `node` depth-first, left to right. Throws (e.g. RecoveryError) leaving started ones running: the caller decides (retry, undo). */
  async start(node: RuntimeNode): Promise<void> {
    if (node.kind === 'entities') return this.entities!.startFamily(node);
    if (node.kind === 'supervisor') {
      node.status = 'running';
      node.restartTimes = [];
      for (const child of node.children) await this.start(child);
      return;
    }
    const w = node;
    w.held = this.crashLoop.held(w) ?? null;
    if (w.held) {
      // Not started at all: its state stays on disk, untouched, for whoever fixes it.
      w.status = 'held';
      w.lastError = w.held.lastError;
      this.persistence.setStatus(w, 'held');
      return;
    }
    w.status = 'starting';
    w.normalExit = false;
    let report;
    try {
      report = this.persistence.restore(w);
    } catch (err) {
      // Held at once if this failure makes a crash loop: in memory as on disk (a release's restart).
      w.held = this.crashLoop.crashed(w, 'start', err) ?? null;
      w.status = w.held ? 'held' : 'failed';
      w.lastError = describe(err);
      this.persistence.setStatus(w, w.status, 0, w.lastError);
      // The failure must say which machine it was: a RecoveryError already does.
      throw err instanceof RecoveryError ? err : new StartError(w.name, err);
    }
    if (w.machine.onStart) await runHook(w, 'onStart', this.log);
    w.status = 'running';
    w.startedAt = this.now();
    this.persistence.setStatus(w, 'running');
    this.log({ type: 'started', machine: w.name, recovery: report });
  }

  /** Stops `node` in reverse start order. A crashed worker is not snapshotted. */
  async stop(node: RuntimeNode, reason: StopReason): Promise<void> {
    if (node.kind === 'entities') return this.entities!.stopFamily(node, reason === 'abort' ? 'abort' : 'stop');
    if (node.kind === 'supervisor') {
      for (let i = node.children.length - 1; i >= 0; i--) await this.stop(node.children[i]!, reason);
      if (node.status !== 'failed') node.status = 'stopped';
      return;
    }
    const w = node;
    if (w.status === 'backoff') {
      // Nothing in memory to snapshot or terminate: it ended at its crash.
      this.backoffs.end(w);
      w.status = 'stopped';
      if (reason !== 'abort') this.persistence.setStatus(w, 'stopped');
      return;
    }
    if (w.status === 'stopped' || w.status === 'failed' || w.status === 'held') return;
    const corrupt = w.status === 'crashed';
    if (!corrupt && reason !== 'abort') await this.persistence.tryCheckpoint(w, reason === 'stop' || reason === 'normal' ? 'terminate' : 'restart');
    if (w.machine.onTerminate) await runHook(w, 'onTerminate', this.log);
    w.state = undefined;
    w.status = 'stopped';
    if (reason !== 'abort') this.persistence.setStatus(w, corrupt ? 'crashed' : 'stopped');
    this.log({ type: 'terminated', machine: w.name, reason: corrupt ? 'crash' : reason });
  }

  /** A step of `w` threw: its memory is corrupt. Apply its supervisor's strategy. */
  async crashed(w: WorkerNode, error: unknown): Promise<void> {
    if (w.family) return this.entityCrashes!.crashed(w, error);
    w.status = 'crashed';
    w.lastError = describe(error);
    this.metrics.crashes++;
    this.log({ type: 'crashed', machine: w.name, error });
    this.crashLoop.crashed(w, 'crash', error);
    await this.childFailed(w.parent, w.index, error, nextBackoff(w, this.now() - w.startedAt));
  }

  /**
   * A step of `w` asked to stop normally; its reply is out and its state committed. As OTP's
   * do_restart: a permanent child is restarted like after a crash (and counted), but from the
   * snapshot taken as it stops, not from a corrupt memory; a transient or temporary one is
   * stopped with a snapshot and stays stopped.
   */
  async exited(w: WorkerNode): Promise<void> {
    // An entity that stops normally goes to sleep: its next request wakes it.
    if (w.family) return this.entities!.sleepNow(w);
    if (w.restart === 'permanent') {
      await this.childFailed(w.parent, w.index, new MachineStoppedError(w.name));
      return;
    }
    await this.stop(w, 'normal');
    w.normalExit = true;
  }

  /**
   * Starts `w` again after its hold was released, if it is held back or its start failed; throws
   * StartError if it fails to start. Under rest_for_one the running siblings after it started
   * without it: they are restarted after it, as a restart of `w` would (temporary ones are left
   * running), and started again even if it fails, as they ran without it before.
   */
  async release(w: WorkerNode): Promise<void> {
    if (w.status !== 'held' && w.status !== 'failed') return;
    const after = w.parent.strategy === 'rest_for_one' ? w.parent.children.slice(w.index + 1).filter((c) => isAlive(c) && !(c.kind === 'worker' && c.restart === 'temporary')) : [];
    for (const c of [...after].reverse()) await this.stop(c, 'restart');
    w.status = 'stopped';
    await this.start(w).finally(async () => {
      for (const c of after) await this.start(c);
    });
  }

  /** Restarts (after a failed commit) the given workers from storage; their memory is ahead of the disk. */
  reloadFromStorage(workers: Iterable<WorkerNode>): void {
    for (const w of workers) {
      try {
        this.persistence.restore(w);
      } catch (err) {
        // The disk is still the truth; the crash path will retry through the supervisor.
        w.status = 'crashed';
        w.lastError = describe(err);
        // An entity leaves memory: its next request wakes it from disk.
        if (w.family) this.entities!.forget(w);
      }
    }
  }

  /** What the pure restart planning reads of `sup`, now. */
  private windowOf(sup: SupervisorNode): SupervisorWindow {
    return { strategy: sup.strategy, childCount: sup.children.length, restartTimes: sup.restartTimes, intensity: sup.intensity, periodMs: sup.periodMs, now: this.now() };
  }

  /** `delayMs`: the failed child's restart backoff (0: at once, as OTP). */
  private async childFailed(sup: SupervisorNode, index: number, error: unknown, delayMs = 0): Promise<void> {
    const failed = sup.children[index]!;
    const { decision, restartTimes } = planRestart({
      ...this.windowOf(sup),
      failed: index,
      failedRestart: failed.kind === 'worker' ? failed.restart : 'permanent',
      childRestart: sup.children.map((c) => (c.kind === 'worker' ? c.restart : 'permanent')),
      alive: sup.children.map((c, i) => i !== index && present(c)),
    });
    sup.restartTimes = restartTimes;
    if (decision.action === 'drop') {
      await this.stop(failed, 'temporary');
      return;
    }
    if (delayMs > 0 && decision.action === 'restart') {
      await this.restartLater(sup, decision, index, error, delayMs);
      return;
    }
    await this.restartUntilStarted(sup, decision, index, error);
  }

  /** Carries out a restart decision, trying again (as OTP's try_again_restart) while a start fails; escalates past the intensity. */
  private async restartUntilStarted(sup: SupervisorNode, first: RestartDecision, index: number, error: unknown): Promise<void> {
    let decision = first;
    let restartTimes: number[];
    let crashed = index;
    while (decision.action === 'restart') {
      const startFailed = await this.restartChildren(sup, decision, crashed);
      if (!startFailed) {
        sup.status = 'running';
        return;
      }
      // A child that cannot start does not fail its supervisor at once: as OTP's
      // try_again_restart, the restart is tried again, each attempt counted against the
      // intensity, so only a start that keeps failing escalates.
      error = startFailed.error;
      crashed = startFailed.at;
      // Not at once: a worker with backoff that failed to start (status kept) waits its next delay.
      const failedWorker = workersOf(sup.children[crashed]!).find((w) => w.status === 'failed');
      const delayMs = failedWorker ? nextBackoff(failedWorker, 0) : 0;
      // Let timers and I/O run between attempts, as OTP's cast to itself lets messages in.
      if (delayMs === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      ({ decision, restartTimes } = planRetry({
        ...this.windowOf(sup),
        failed: crashed,
        pending: decision.start,
        alive: sup.children.map((c, i) => i !== crashed && isAlive(c)),
      }));
      sup.restartTimes = restartTimes;
      if (delayMs > 0 && decision.action === 'restart') return this.restartLater(sup, decision, crashed, error, delayMs);
    }
    await this.escalate(sup, error);
  }

  /**
   * A restart with backoff: the children to stop are stopped now, those to start wait `delayMs`
   * (status `backoff`; their requests park on `restarted` or are refused, per `whileWaiting`)
   * while the loop serves every other machine. The intensity counted this restart already, at
   * the crash, as OTP counts it. A stop, or a restart of the same children by a sibling's crash,
   * ends the wait.
   */
  private async restartLater(sup: SupervisorNode, decision: RestartDecision & { action: 'restart' }, crashed: number, error: unknown, delayMs: number): Promise<void> {
    await this.stopForRestart(sup, decision.stop, crashed);
    const workers = decision.start.flatMap((i) => workersOf(sup.children[i]!));
    sup.status = 'restarting';
    this.metrics.restartBackoffs++;
    this.log({ type: 'backoff', supervisor: sup.name, machines: workers.map((w) => w.name), delayMs });
    this.backoffs.wait(workers, delayMs, async (due) => {
      const start = decision.start.filter((i) => workersOf(sup.children[i]!).some((w) => due.includes(w)));
      if (start.length > 0) await this.restartUntilStarted(sup, { ...decision, stop: [], start }, crashed, error);
    });
  }

  /** Ends every backoff wait, and those begun later (a crash while the stop drains) at once: `ended` gets their workers, now stopped. */
  endBackoffs(ended: (workers: readonly WorkerNode[]) => void): void {
    this.backoffs.closeAll(ended);
  }

  /** Stops the children `stop` of `sup` for a restart (a temporary sibling for good). */
  private async stopForRestart(sup: SupervisorNode, stop: readonly number[], crashed: number): Promise<void> {
    for (const i of stop) {
      const child = sup.children[i]!;
      await this.stop(child, child.kind === 'worker' && child.restart === 'temporary' && i !== crashed ? 'temporary' : 'restart');
    }
  }

  /** One restart attempt: stops `decision.stop`, starts `decision.start`. Returns the child whose start threw (its partly started subtree stopped again), or null when all started. */
  private async restartChildren(sup: SupervisorNode, decision: { stop: readonly number[]; start: readonly number[] }, crashed: number): Promise<{ at: number; error: unknown } | null> {
    const nodes = decision.start.map((i) => sup.children[i]!);
    sup.status = 'restarting';
    this.log({ type: 'restarting', supervisor: sup.name, strategy: sup.strategy, machines: nodes.flatMap(workersOf).map((w) => w.name) });
    await this.stopForRestart(sup, decision.stop, crashed);
    for (const [k, node] of nodes.entries()) {
      for (const w of workersOf(node)) {
        w.restarts++;
        this.metrics.restarts++;
        this.persistence.setStatus(w, 'restarting', 1);
      }
      try {
        await this.start(node);
      } catch (error) {
        // A child supervisor may have started some of its children: as in OTP, a supervisor
        // whose start fails terminates the children it did start.
        await this.stop(node, 'restart');
        return { at: decision.start[k]!, error };
      }
    }
    return null;
  }

  private async escalate(sup: SupervisorNode, error: unknown): Promise<void> {
    this.log({ type: 'escalated', supervisor: sup.name, intensity: sup.intensity, periodMs: sup.periodMs, error });
    await this.stop(sup, 'escalation');
    sup.status = 'failed';
    if (sup.parent) await this.childFailed(sup.parent, sup.index, error);
    else await this.onRootFailure(error);
  }
}
