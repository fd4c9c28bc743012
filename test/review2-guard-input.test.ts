/**
 * Review 2: the KV `guard` (what WATCH puts on EXEC's batch, also accepted over HTTP) is only
 * read on a top-level batch. Put on any other op, or on an op inside a batch, it is silently
 * dropped and the write applies unguarded: a client that sends
 * {"op":"store","key":"k","value":2,"guard":[{"key":"k","present":false}]} believes it wrote
 * only if k was absent, and overwrote k. A guard it cannot honour should be a DECODE_ERROR.
 */
import test, { type ExecutionContext } from 'ava';
import { startApplication } from '../src/engine/application.js';
import { DecodeError } from '../src/errors.js';
import { kvMachine } from '../src/kv/kv-machine.js';
import { supervisor, worker } from '../src/model/tree.js';

async function app(t: ExecutionContext) {
  const a = await startApplication(supervisor('one_for_one', [worker('kv', kvMachine())]), { db: ':memory:', logger: false });
  t.teardown(() => a.stop());
  await a.callValue('kv', { op: 'store', key: 'k', value: 1 });
  return a;
}

test('a guard on a single write op is refused, not ignored', async (t) => {
  const a = await app(t);
  await t.throwsAsync(a.callValue('kv', { op: 'store', key: 'k', value: 2, guard: [{ key: 'k', present: false }] }), { instanceOf: DecodeError });
  t.is(await a.callValue('kv', { op: 'lookup', key: 'k' }), 1, 'k was overwritten although the guard (k absent) did not hold');
});

test('a guard on an op inside a batch is refused, not ignored', async (t) => {
  const a = await app(t);
  await t.throwsAsync(a.callValue('kv', { op: 'batch', ops: [{ op: 'store', key: 'k', value: 3, guard: [{ key: 'k', present: false }] }] }), { instanceOf: DecodeError });
  t.is(await a.callValue('kv', { op: 'lookup', key: 'k' }), 1);
});
