import type { Database, Statement } from 'better-sqlite3';
import type { HeldMachine } from './reports.js';
import { asStorageError } from './sqlite.js';

/** Rows of `crash_history` kept per machine: enough for any window, bounded whatever the crash rate. */
const KEEP_PER_MACHINE = 1000;

/**
 * The crash record that outlives the process (tables `crash_history` and `held_machines`):
 * what makes a crash loop across process starts visible, and held back.
 */
export class CrashHistory {
  private readonly q: Record<'insert' | 'trim' | 'runs' | 'held' | 'hold' | 'release' | 'listHeld', Statement>;

  constructor(private readonly db: Database, private readonly path: string) {
    const p = (sql: string): Statement => db.prepare(sql);
    this.q = {
      insert: p('INSERT INTO crash_history (machine, run_id, kind, error, crashed_at, crashed_ms) VALUES (?, ?, ?, ?, ?, ?)'),
      trim: p('DELETE FROM crash_history WHERE machine = ? AND id <= (SELECT id FROM crash_history WHERE machine = ? ORDER BY id DESC LIMIT 1 OFFSET ?)'),
      runs: p(`SELECT count(DISTINCT run_id) FROM crash_history WHERE machine = ? AND crashed_ms >= ?
               AND crashed_ms > coalesce((SELECT released_ms FROM held_machines WHERE machine = ?), -1)`).pluck(),
      held: p('SELECT machine, held_at AS heldAt, runs, window_ms AS windowMs, last_error AS lastError FROM held_machines WHERE machine = ? AND released_at IS NULL'),
      hold: p('INSERT OR REPLACE INTO held_machines (machine, held_at, runs, window_ms, last_error) VALUES (?, ?, ?, ?, ?)'),
      release: p('UPDATE held_machines SET released_at = ?, released_ms = ? WHERE machine = ? AND released_at IS NULL'),
      listHeld: p('SELECT machine, held_at AS heldAt, runs, window_ms AS windowMs, last_error AS lastError FROM held_machines WHERE released_at IS NULL ORDER BY machine'),
    };
  }

  /** Records a crash of `machine` in run `runId`; returns in how many runs it crashed since `sinceMs` (this one included). */
  record(machine: string, runId: string, kind: 'crash' | 'start', error: string, nowMs: number, sinceMs: number): number {
    return asStorageError(`recording a crash of ${machine}`, () =>
      this.db.transaction(() => {
        this.q.insert.run(machine, runId, kind, error, new Date(nowMs).toISOString(), nowMs);
        this.q.trim.run(machine, machine, KEEP_PER_MACHINE);
        return this.q.runs.get(machine, sinceMs, machine) as number;
      })(), this.path);
  }

  /** The hold on `machine`, if it is held back. */
  held(machine: string): HeldMachine | undefined {
    return this.q.held.get(machine) as HeldMachine | undefined;
  }

  /** Every machine held back, by name. */
  listHeld(): HeldMachine[] {
    return this.q.listHeld.all() as HeldMachine[];
  }

  hold(machine: string, runs: number, windowMs: number, lastError: string, nowMs: number): void {
    asStorageError(`holding back ${machine}`, () => this.q.hold.run(machine, new Date(nowMs).toISOString(), runs, windowMs, lastError), this.path);
  }

  /** Releases `machine`: its earlier crashes no longer count. False if it was not held. */
  release(machine: string, nowMs: number): boolean {
    return asStorageError(`releasing ${machine}`, () => this.q.release.run(new Date(nowMs).toISOString(), nowMs, machine).changes > 0, this.path);
  }
}
