import { decodeCbor } from '../encoding/cbor.js';
import { toJson } from '../encoding/json.js';
import { stateEntries } from '../encoding/snapshot-encoding.js';
import type { EntryChange, ReadableState } from '../storage/rows.js';
import type { Pending } from './pending.js';
import type { AnyMachine } from '../model/machine.js';

/** Largest state (in entries) rendered whole into `machine_states` at a snapshot: rendering is synchronous. */
export const MAX_RENDERED_ENTRIES = 10_000;

/**
 * The readable tables' part of a batch (see migrations/006_readable_state.sql): each logged
 * input as JSON for its log row, and for machines with an {@link EntryProjection} the rows of
 * `kv_entries` its step changed, valued right after that step (a later crash in the batch
 * leaves the state unusable, never these). Derived data only: recovery never reads it.
 */
export class ReadableBatch {
  private readonly changed = new Map<string, EntryChange>();
  private readonly touchedMachines = new Map<string, number>();
  private pendingKeys: readonly string[] | null = null;
  private pendingJson: string | null = null;

  /** Starts a batch. */
  begin(): void {
    if (this.changed.size > 0) this.changed.clear();
    if (this.touchedMachines.size > 0) this.touchedMachines.clear();
  }

  /** Before `r`'s step: its input as JSON and the keys it may change, read before the step can touch the input. */
  before(r: Pending): void {
    this.pendingJson = null;
    this.pendingKeys = null;
    const w = r.target;
    if (!w.readable || r.logged === null) return;
    this.pendingJson = toJson(r.stepInput);
    const projection = w.machine.entries;
    if (projection) this.pendingKeys = [...projection.keys(r.stepInput, w.state)];
  }

  /** After `r`'s step succeeded with seq `seq`: its JSON for the log row (null if readable tables are off for it). */
  after(r: Pending, seq: number): string | null {
    const w = r.target;
    const projection = w.machine.entries;
    if (projection && this.pendingKeys) {
      for (const key of this.pendingKeys) {
        const v = projection.value(w.state, key);
        this.changed.set(`${w.name}\0${key}`, { machine: w.name, key, value: v === undefined ? null : toJson(v), seq });
      }
      this.touchedMachines.set(w.name, seq);
    }
    return this.pendingJson;
  }

  get entries(): readonly EntryChange[] {
    return this.changed.size === 0 ? NONE : [...this.changed.values()];
  }

  get entriesSeq(): readonly { machine: string; seq: number }[] {
    return this.touchedMachines.size === 0 ? NONE_SEQ : [...this.touchedMachines].map(([machine, seq]) => ({ machine, seq }));
  }
}

const NONE: readonly EntryChange[] = Object.freeze([]);
const NONE_SEQ: readonly { machine: string; seq: number }[] = Object.freeze([]);

/** What `machine_states` gets for `machine`'s `state` at a snapshot. */
export function renderedState(machine: AnyMachine, state: unknown): ReadableState {
  if (machine.entries) return { state: null, note: 'one row per key in kv_entries' };
  const n = Array.isArray(state) ? state.length : stateEntries(state);
  if (n > MAX_RENDERED_ENTRIES) return { state: null, note: `${n} entries: too large to render at every snapshot; see ssm inspect` };
  try {
    return { state: toJson(state), note: null };
  } catch (err) {
    return { state: null, note: `not renderable as JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** `machine`'s `kv_entries` rows for its whole `state` (for a rebuild). */
export function* renderedEntries(machine: AnyMachine, state: unknown): Generator<readonly [string, string]> {
  const projection = machine.entries;
  if (!projection) return;
  for (const [key, value] of projection.all(state)) yield [key, toJson(value)];
}

/** A logged input's CBOR as JSON for the readable tables (null: none, or not decodable). */
export function inputAsJson(input: Uint8Array | null): string | null {
  if (input === null) return null;
  try {
    return toJson(decodeCbor(input));
  } catch {
    return null;
  }
}
