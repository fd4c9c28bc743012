import test from 'ava';
import { startApplication } from '../src/engine/application.js';
import { MachineCrashedError } from '../src/errors.js';
import { defineMachine } from '../src/model/machine.js';
import { supervisor, worker } from '../src/model/tree.js';

type State = { items: string[] };

// A step that corrupts its state in place before throwing: the memory the supervisor must discard.
const corrupting = defineMachine<State, { add: string } | { poison: true } | { get: true }, string[]>({
  init: () => ({ items: [] }),
  step: (input, state) => {
    if ('get' in input) return [state, [...state.items]];
    if ('poison' in input) {
      state.items.push('CORRUPT');
      throw new Error('poisoned after mutating');
    }
    state.items.push(input.add);
    return [state, [...state.items]];
  },
  readOnly: (input) => 'get' in input,
});

test('a policy snapshot due in the batch where a step crashed never captures the crashed memory', async (t) => {
  const app = await startApplication(supervisor('one_for_one', [worker('m', corrupting)], { intensity: 10 }), { db: ':memory:', logger: false, snapshot: { every: 1, maxTimeShare: 1 } });
  try {
    // Same tick, so the same batch: a good write makes a snapshot due, then a step corrupts and throws.
    const ok = app.call('m', { add: 'a' });
    const bad = app.call('m', { poison: true });
    t.deepEqual(await ok, ['a']);
    await t.throwsAsync(bad, { instanceOf: MachineCrashedError });
    t.deepEqual(await app.call('m', { get: true }), ['a']);
    // And the state recovered from storage (snapshot + log) after another restart is clean too.
    await t.throwsAsync(app.call('m', { poison: true }), { instanceOf: MachineCrashedError });
    t.deepEqual(await app.call('m', { get: true }), ['a']);
  } finally {
    await app.stop();
  }
});
