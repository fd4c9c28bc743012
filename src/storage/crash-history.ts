import type { Database, Statement } from 'better-sqlite3';
import type { HeldMachine } from './reports.js';
import { asStorageError } from './sqlite.js';

/**
 * Rows of `crash_history` older than the crash-loop window kept per machine, for whoever
 * investigates (README, Inspecting the database). Rows inside the window are all kept, whatever
 * their number: dropping some could drop a whole run and hide a crash loop. Their number is
 * bounded by the restart intensity: each recorded crash is a restart counted against it.
 */
const KEEP_PER_MACHINE = 1000;

type Query = 'insert' | 'trim' | 'runs' | 'held' | 'hold' | 'release' | 'listHeld';

/**
 * The crash record that outlives the process (tables `crash_history` and `held_machines`):
 * what makes a crash loop across process starts visible, and held back.
 */
export class CrashHistory {
  private readonly sql: Record<Query, string> = {
    insert: 'INSERT INTO crash_history (machine, run_id, kind, error, crashed_at, crashed_ms) VALUES (?, ?, ?, ?, ?, ?)',
    // Only outside the window (crashed_ms < since), and never the newest rows: ids only grow.
    trim: 'DELETE FROM crash_history WHERE machine = ? AND crashed_ms < ? AND id <= (SELECT id FROM crash_history WHERE machine = ? ORDER BY id DESC LIMIT 1 OFFSET ?)',
    // A crash stamped after now (the clock stepped back since) counts as recent; those up to
    // the release (by id, not time: see migration 010) no longer count.
    runs: `SELECT count(DISTINCT run_id) FROM crash_history WHERE machine = ? AND crashed_ms >= ?
           AND id > coalesce((SELECT released_id FROM held_machines WHERE machine = ?), 0)`,
    held: 'SELECT machine, held_at AS heldAt, runs, window_ms AS windowMs, last_error AS lastError FROM held_machines WHERE machine = ? AND released_at IS NULL',
    hold: 'INSERT OR REPLACE INTO held_machines (machine, held_at, runs, window_ms, last_error) VALUES (?, ?, ?, ?, ?)',
    release: 'UPDATE held_machines SET released_at = ?, released_ms = ?, released_id = (SELECT coalesce(max(id), 0) FROM crash_history) WHERE machine = ? AND released_at IS NULL',
    listHeld: 'SELECT machine, held_at AS heldAt, runs, window_ms AS windowMs, last_error AS lastError FROM held_machines WHERE released_at IS NULL ORDER BY machine',
  };
  private readonly prepared = new Map<Query, Statement>();

  constructor(private readonly db: Database, private readonly path: string) {}

  /** Prepared at first use: `ssm release` lists holds read-only in a database of an older schema (no released_id), which must not fail on a writer's statement. */
  private q(name: Query): Statement {
    let stmt = this.prepared.get(name);
    if (!stmt) this.prepared.set(name, (stmt = this.db.prepare(this.sql[name])));
    return stmt;
  }

  /** Records a crash of `machine` in run `runId`; returns in how many runs it crashed since `sinceMs` (this one included). */
  record(machine: string, runId: string, kind: 'crash' | 'start', error: string, nowMs: number, sinceMs: number): number {
    return asStorageError(`recording a crash of ${machine}`, () =>
      this.db.transaction(() => {
        this.q('insert').run(machine, runId, kind, error, new Date(nowMs).toISOString(), nowMs);
        this.q('trim').run(machine, sinceMs, machine, KEEP_PER_MACHINE);
        return this.q('runs').pluck().get(machine, sinceMs, machine) as number;
      })(), this.path);
  }

  /** The hold on `machine`, if it is held back. */
  held(machine: string): HeldMachine | undefined {
    return this.q('held').get(machine) as HeldMachine | undefined;
  }

  /** Every machine held back, by name. */
  listHeld(): HeldMachine[] {
    return this.q('listHeld').all() as HeldMachine[];
  }

  hold(machine: string, runs: number, windowMs: number, lastError: string, nowMs: number): void {
    asStorageError(`holding back ${machine}`, () => this.q('hold').run(machine, new Date(nowMs).toISOString(), runs, windowMs, lastError), this.path);
  }

  /** Releases `machine`: its earlier crashes no longer count. False if it was not held. */
  release(machine: string, nowMs: number): boolean {
    return asStorageError(`releasing ${machine}`, () => this.q('release').run(new Date(nowMs).toISOString(), nowMs, machine).changes > 0, this.path);
  }
}
