import { assertNestingWithinLimit } from '../encoding/cbor-guard.js';
import { cbor } from '../encoding/cbor.js';
import { describe } from '../errors.js';
import type { TimerCommand } from '../model/machine.js';
import { identifierProblem } from './identifier.js';

/** The latest instant a Date can hold (ms since the epoch): due times are clamped to it. */
const MAX_DATE_MS = 8.64e15;

/** A checked timer command: the due time fixed, the input encoded as it will be stored. */
export type PreparedTimer = { readonly kind: 'set'; readonly timer: string; readonly dueMs: number; readonly input: Uint8Array } | { readonly kind: 'cancel'; readonly timer: string };

/**
 * Checks a step's timer commands and fixes their due times against `nowMs` (the step's batch
 * time, outside the step: the step itself never reads the clock). Throws TypeError, which is a
 * crash of the step like any other malformed result: nothing of the request is committed.
 * Pure but for the clock value it is given.
 */
export function prepareTimerCommands(machine: string, commands: readonly TimerCommand[], nowMs: number): PreparedTimer[] {
  return commands.map((c, i) => {
    const where = `timer command ${i} of ${machine}`;
    if (c === null || typeof c !== 'object') throw new TypeError(`${where} must come from setTimer() or cancelTimer()`);
    if ('cancel' in c) {
      const problem = identifierProblem('a timer id', c.cancel);
      if (problem) throw new TypeError(`${where}: ${problem}`);
      return { kind: 'cancel', timer: c.cancel };
    }
    const problem = identifierProblem('a timer id', (c as { timer?: unknown }).timer);
    if (problem) throw new TypeError(`${where}: ${problem}`);
    let dueMs: number;
    if ('at' in c) {
      if (typeof c.at !== 'number' || !Number.isFinite(c.at)) throw new TypeError(`${where}: "at" must be a finite time in ms since the epoch (or a valid Date)`);
      dueMs = c.at;
    } else if ('afterMs' in c) {
      if (typeof c.afterMs !== 'number' || !(c.afterMs >= 0) || !Number.isFinite(c.afterMs)) throw new TypeError(`${where}: "afterMs" must be a finite number >= 0`);
      dueMs = nowMs + c.afterMs;
    } else {
      throw new TypeError(`${where} needs "at" or "afterMs"`);
    }
    let input: Uint8Array;
    try {
      input = cbor.encode(c.input);
      assertNestingWithinLimit(input);
    } catch (err) {
      throw new TypeError(`${where}: its input is not encodable as CBOR: ${describe(err)}`);
    }
    return { kind: 'set', timer: c.timer, dueMs: Math.min(Math.max(Math.floor(dueMs), 0), MAX_DATE_MS), input };
  });
}
