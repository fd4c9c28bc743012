import { MAX_NESTING, assertNestingWithinLimit, nestingLimitError } from '../encoding/cbor-guard.js';
import { Tag } from 'cbor-x';
import { cbor } from '../encoding/cbor.js';
import { NEEDS_CBOR, plainCopy } from '../encoding/input-copy.js';
import { DecodeError, EncodeError, describe } from '../errors.js';
import type { Pending } from './pending.js';

/** Where preparing a batch stopped: the index of a request whose machine's readOnly() threw. */
export interface Preparation {
  readonly readOnlyThrewAt: number;
  readonly error?: unknown;
}

/**
 * Gives every state-changing input of the batch its log encoding and the copy its step gets:
 * exactly what replay will see, never the caller's object, so live and recovered state cannot
 * diverge and a caller mutating its object later cannot reach into the state. Plain data is
 * copied directly and the copy encoded ({@link plainCopy}); anything else takes the CBOR round
 * trip, all such inputs decoded in one call. An input that cannot be logged gets an
 * EncodeError of its own and never reaches its machine.
 */
export function prepareInputs(batch: readonly Pending[]): Preparation {
  const parts: Uint8Array[] = [];
  const roundTrip: Pending[] = [];
  for (let i = 0; i < batch.length; i++) {
    const r = batch[i]!;
    r.logged = null;
    r.stepInput = r.input;
    if (r.target.status !== 'running') continue;
    let readOnly: boolean;
    try {
      readOnly = r.target.machine.readOnly(r.input);
    } catch (error) {
      decodeRoundTrips(roundTrip, parts);
      return { readOnlyThrewAt: i, error };
    }
    if (readOnly) continue;
    let copy: unknown;
    try {
      copy = plainCopy(r.input);
      if (copy !== NEEDS_CBOR) {
        // A plain copy is at most 64 levels deep: within the nesting limit by construction.
        r.logged = cbor.encode(copy);
        r.stepInput = copy;
        continue;
      }
      r.logged = cbor.encode(r.input);
      assertNestingWithinLimit(r.logged);
    } catch (err) {
      r.logged = null;
      r.error = err instanceof DecodeError ? err : exceedsNesting(r.input) ? nestingLimitError() : new EncodeError(`input for ${r.target.name} is not encodable as CBOR: ${describe(err)}`, { cause: err });
      continue;
    }
    parts.push(r.logged);
    roundTrip.push(r);
  }
  decodeRoundTrips(roundTrip, parts);
  return { readOnlyThrewAt: -1 };
}

function decodeRoundTrips(roundTrip: readonly Pending[], parts: readonly Uint8Array[]): void {
  if (parts.length === 0) return;
  let copies: unknown[] | null = null;
  try {
    copies = cbor.decodeMultiple(parts.length === 1 ? parts[0]! : Buffer.concat(parts)) as unknown[];
  } catch {
    // Some input encodes into something the decoder refuses (over its size limits): find
    // which, one at a time. Logging it would make the log unreplayable.
  }
  for (let k = 0; k < roundTrip.length; k++) {
    const r = roundTrip[k]!;
    if (copies) {
      r.stepInput = copies[k];
      continue;
    }
    try {
      r.stepInput = cbor.decode(r.logged!);
    } catch (err) {
      r.logged = null;
      r.error = new EncodeError(`input for ${r.target.name} does not survive the CBOR round trip (replay could not decode it): ${describe(err)}`, { cause: err });
    }
  }
}

/** Whether arrays, objects, Maps, Sets and Tags nest deeper than the limit (or cycle). Iterative. */
function exceedsNesting(value: unknown): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null || ArrayBuffer.isView(v)) continue;
    if (depth >= MAX_NESTING) return true;
    const children = v instanceof Map ? [...v.keys(), ...v.values()] : v instanceof Set ? [...v] : Array.isArray(v) ? v : v instanceof Tag ? [v.value] : Object.values(v);
    for (const c of children) stack.push([c, depth + 1]);
  }
  return false;
}
