import test from 'ava';
import { startApplication } from '../src/engine/application.js';
import { MachineCrashedError, MachineStoppedError } from '../src/errors.js';
import { kvMachine } from '../src/kv/kv-machine.js';
import type { LifecycleEvent } from '../src/engine/logger.js';
import { supervisor, worker } from '../src/model/tree.js';

test('a temporary sibling caught in a one_for_all restart is terminated and not started again (OTP)', async (t) => {
  const events: string[] = [];
  const logger = (e: LifecycleEvent): void => {
    if (e.type === 'started' || e.type === 'terminated') events.push(`${e.type}:${e.machine}${e.type === 'terminated' ? `:${e.reason}` : ''}`);
  };
  const kv = kvMachine({ deliberateCrash: true });
  const app = await startApplication(supervisor('one_for_all', [worker('a', kv), worker('tmp', kv, { restart: 'temporary' }), worker('b', kv)], { intensity: 5 }), { db: ':memory:', logger });
  try {
    await app.call('tmp', { op: 'store', key: 'k', value: 1 });
    events.length = 0;
    await t.throwsAsync(app.call('a', { op: 'lookup', key: 'crash' }), { instanceOf: MachineCrashedError });
    t.deepEqual(events, ['terminated:b:restart', 'terminated:tmp:temporary', 'terminated:a:crash', 'started:a', 'started:b']);
    await t.throwsAsync(app.call('tmp', { op: 'lookup', key: 'k' }), { instanceOf: MachineStoppedError });
    t.is(await app.call('b', { op: 'size' }), 0);
  } finally {
    await app.stop();
  }
});
