import { defineMachine } from '../model/machine.js';
import { isLive } from './kv-expiry.js';
import { kvMachine, kvStepWithExpiry, type KvInput, type KvState } from './kv-machine.js';

/**
 * {@link kvMachine} with one difference: a lookup answers `undefined` for a missing key, so that
 * a stored `null` stays distinct. Inputs, state and log format are the same, so `ssm inspect`
 * reads both alike. The machine of {@link openKV}'s store and of each of its partitions.
 */
export function embeddedKvMachine(options: { shards?: number } = {}) {
  const base = kvMachine(options);
  return defineMachine<KvState, KvInput, unknown>({
    ...base,
    step: (input, state) => (input.op === 'lookup' ? [state, isLive(state, input.key, input.now) ? state.get(input.key) : undefined] : kvStepWithExpiry(input, state)),
  });
}
