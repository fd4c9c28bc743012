import type { EntityRuntime } from './entities.js';
import type { EventLoop } from './event-loop.js';
import type { WorkerNode } from './runtime-tree.js';
import type { StorageHealth } from './storage-health.js';
import type { Timers } from './timers.js';
import type { renderPrometheus } from './metrics.js';

/** The gauges of `App.prometheus()`, read at scrape time (`timers` null once the application ended). */
export function gaugesOf(loop: EventLoop<WorkerNode>, storage: StorageHealth, timers: Timers | null, order: readonly WorkerNode[], entities: EntityRuntime): Parameters<typeof renderPrometheus>[1] {
  return {
    queueDepth: loop.depth,
    queueCapacity: loop.capacity,
    storageFailing: storage.failing,
    timersPending: timers ? timers.pendingCount() : 0,
    machines: order.map((w) => ({ name: w.name, status: w.status, seq: w.seq, restarts: w.restarts })),
    families: [...entities.all()].map((f) => ({ name: f.name, awake: f.awake.size })),
  };
}
