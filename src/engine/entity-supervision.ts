import { describe } from '../errors.js';
import type { EntityRuntime } from './entities.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { Persistence } from './persistence.js';
import { recordRestart } from './restart-plan.js';
import type { EntityFamilyNode, WorkerNode } from './runtime-tree.js';

/**
 * A family as the supervisor of its entities: a crashed entity is rebuilt from disk (or, if
 * temporary, left out of memory), alone, each crash counted against the family's own
 * intensity; past it the family fails and its parent supervisor decides (`familyFailed`).
 */
export class EntityCrashes {
  constructor(
    private readonly entities: EntityRuntime,
    private readonly persistence: Persistence,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly familyFailed: (f: EntityFamilyNode, error: unknown) => Promise<void>,
  ) {}

  /** A step of entity `w` threw (under the loop's lock). */
  async crashed(w: WorkerNode, error: unknown): Promise<void> {
    const f = w.family!;
    w.status = 'crashed';
    w.lastError = describe(error);
    this.metrics.crashes++;
    f.crashedKeys.add(w.key);
    this.log({ type: 'crashed', machine: w.name, error });
    // Its registry row (if it has one) counts the crash; its status column stays 'entity'.
    this.persistence.setStatus(w, 'entity', 1, w.lastError);
    const { times, exceeded } = recordRestart(f.restartTimes, this.now(), f.spec.intensity, f.spec.periodMs);
    f.restartTimes = times;
    if (exceeded) {
      this.log({ type: 'escalated', supervisor: f.name, intensity: f.spec.intensity, periodMs: f.spec.periodMs, error });
      await this.familyFailed(f, error);
      return;
    }
    if (f.spec.restart === 'temporary') {
      await this.entities.drop(w);
      return;
    }
    try {
      await this.entities.restart(w);
    } catch (err) {
      // Out of memory again; its next request tries to wake it from disk.
      this.log({ type: 'crashed', machine: w.name, error: err });
    }
  }
}
