/**
 * Counters of one application, cheap enough to update on the hot path, rendered in the
 * Prometheus text format by {@link renderPrometheus}.
 */

/** Cumulative histogram with fixed bucket bounds. */
export class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Array<number>(bounds.length).fill(0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.bounds.length; i++) {
      if (v <= this.bounds[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }
}

export class Metrics {
  calls = 0;
  /** Errors returned to callers, by error code. */
  readonly errors = new Map<string, number>();
  readonly batchSize = new Histogram([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]);
  readonly commitSeconds = new Histogram([0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1]);
  readonly snapshotSeconds = new Histogram([0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]);
  restarts = 0;
  snapshots = 0;
  loggedRequests = 0;
  crashes = 0;
  /** Calls answered from an idempotency key's stored reply instead of being applied again. */
  idempotentReplays = 0;
  /** Restarts delayed by a worker's backoff. */
  restartBackoffs = 0;
  /** Durable timers whose input was delivered (committed). */
  timersFired = 0;
  /** How late timers are delivered: from due time to the step. */
  readonly timerLagSeconds = new Histogram([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 60, 3600]);
  /** Entities woken (rebuilt from their snapshot and log) and put to sleep. */
  wakes = 0;
  sleeps = 0;
  /** How long waking an entity takes: its restore and its onStart hook. */
  readonly wakeSeconds = new Histogram([0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1]);

  error(code: string): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }
}

function histogram(name: string, help: string, h: Histogram): string[] {
  const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
  let cumulative = 0;
  h.bounds.forEach((b, i) => {
    cumulative += h.counts[i]!;
    lines.push(`${name}_bucket{le="${b}"} ${cumulative}`);
  });
  lines.push(`${name}_bucket{le="+Inf"} ${h.count}`, `${name}_sum ${h.sum}`, `${name}_count ${h.count}`);
  return lines;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Prometheus exposition text for the metrics plus gauges read at scrape time. */
export function renderPrometheus(m: Metrics, gauges: { queueDepth: number; queueCapacity: number; storageFailing: boolean; timersPending: number; machines: readonly { name: string; status: string; seq: number; restarts: number }[]; families?: readonly { name: string; awake: number }[] }): string {
  const lines: string[] = [
    '# HELP ssm_calls_total Requests accepted into the queue.',
    '# TYPE ssm_calls_total counter',
    `ssm_calls_total ${m.calls}`,
    '# HELP ssm_errors_total Errors returned to callers, by error code.',
    '# TYPE ssm_errors_total counter',
    ...[...m.errors].map(([code, n]) => `ssm_errors_total{code="${escapeLabel(code)}"} ${n}`),
    '# HELP ssm_logged_requests_total State-changing requests committed to the request log.',
    '# TYPE ssm_logged_requests_total counter',
    `ssm_logged_requests_total ${m.loggedRequests}`,
    '# HELP ssm_crashes_total Steps that threw.',
    '# TYPE ssm_crashes_total counter',
    `ssm_crashes_total ${m.crashes}`,
    '# HELP ssm_restarts_total Machine restarts by supervisors.',
    '# TYPE ssm_restarts_total counter',
    `ssm_restarts_total ${m.restarts}`,
    '# HELP ssm_idempotent_replays_total Calls answered from the stored reply of their idempotency key, not applied again.',
    '# TYPE ssm_idempotent_replays_total counter',
    `ssm_idempotent_replays_total ${m.idempotentReplays}`,
    '# HELP ssm_restart_backoffs_total Restarts delayed by a worker\'s backoff.',
    '# TYPE ssm_restart_backoffs_total counter',
    `ssm_restart_backoffs_total ${m.restartBackoffs}`,
    '# HELP ssm_timers_fired_total Durable timers delivered (their input committed).',
    '# TYPE ssm_timers_fired_total counter',
    `ssm_timers_fired_total ${m.timersFired}`,
    '# HELP ssm_timers_pending Durable timers waiting in the timers table.',
    '# TYPE ssm_timers_pending gauge',
    `ssm_timers_pending ${gauges.timersPending}`,
    ...histogram('ssm_timer_lag_seconds', 'How late a durable timer is delivered (due time to step).', m.timerLagSeconds),
    '# HELP ssm_snapshots_total Snapshots written.',
    '# TYPE ssm_snapshots_total counter',
    `ssm_snapshots_total ${m.snapshots}`,
    '# HELP ssm_queue_depth Requests waiting in the queue.',
    '# TYPE ssm_queue_depth gauge',
    `ssm_queue_depth ${gauges.queueDepth}`,
    '# HELP ssm_queue_capacity Capacity of the request queue.',
    '# TYPE ssm_queue_capacity gauge',
    `ssm_queue_capacity ${gauges.queueCapacity}`,
    '# HELP ssm_storage_failing 1 while storage refuses writes (writes fail fast with StorageError until a probe succeeds).',
    '# TYPE ssm_storage_failing gauge',
    `ssm_storage_failing ${gauges.storageFailing ? 1 : 0}`,
    ...histogram('ssm_batch_size', 'Requests per batch (between two commit points).', m.batchSize),
    ...histogram('ssm_commit_seconds', 'Latency of the group commit of one batch.', m.commitSeconds),
    ...histogram('ssm_snapshot_seconds', 'Duration of one snapshot (encode and write).', m.snapshotSeconds),
    '# HELP ssm_machine_seq Last durable request sequence number per machine.',
    '# TYPE ssm_machine_seq gauge',
    ...gauges.machines.map((x) => `ssm_machine_seq{machine="${escapeLabel(x.name)}"} ${x.seq}`),
    '# HELP ssm_machine_up 1 if the machine is running.',
    '# TYPE ssm_machine_up gauge',
    ...gauges.machines.map((x) => `ssm_machine_up{machine="${escapeLabel(x.name)}"} ${x.status === 'running' ? 1 : 0}`),
    '# HELP ssm_machine_restarts Restarts per machine since the application started.',
    '# TYPE ssm_machine_restarts gauge',
    ...gauges.machines.map((x) => `ssm_machine_restarts{machine="${escapeLabel(x.name)}"} ${x.restarts}`),
    '# HELP ssm_entity_wakes_total Entities woken from their snapshot and log.',
    '# TYPE ssm_entity_wakes_total counter',
    `ssm_entity_wakes_total ${m.wakes}`,
    '# HELP ssm_entity_sleeps_total Entities put to sleep (out of memory).',
    '# TYPE ssm_entity_sleeps_total counter',
    `ssm_entity_sleeps_total ${m.sleeps}`,
    ...histogram('ssm_entity_wake_seconds', 'Latency of waking one entity (restore and onStart).', m.wakeSeconds),
    '# HELP ssm_entities_awake Entities in memory, per family.',
    '# TYPE ssm_entities_awake gauge',
    ...(gauges.families ?? []).map((f) => `ssm_entities_awake{family="${escapeLabel(f.name)}"} ${f.awake}`),
  ];
  return lines.join('\n') + '\n';
}
