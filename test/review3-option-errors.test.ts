/**
 * Review 3: bad openKV options. `openKV(path, null)` throws a bare TypeError from destructuring
 * ("Cannot destructure property 'partitions' of 'options' as it is null") instead of a
 * ConfigError; and a layout option of the wrong type is shown by String(), so
 * `partitions: '4'` is refused with "must be an integer from 1 to 4096, got 4", and
 * `warm: 'true'` with "must be a boolean, got true": the message hides what is wrong.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { ConfigError } from '../src/errors.js';
import { openKV } from '../src/kv/open-kv.js';
import { tempDb } from './helpers/persistence-kv.js';

test('openKV(path, null) is refused with ConfigError, and nothing is made', async (t) => {
  const db = tempDb(t);
  await t.throwsAsync(openKV(db, null as never), { instanceOf: ConfigError, message: /options/ });
  t.false(existsSync(db));
});

test('a layout option of the wrong type is named as such in the message', async (t) => {
  const db = tempDb(t);
  await t.throwsAsync(openKV(db, { partitions: '4' as never }), { instanceOf: ConfigError, message: /got "4"|got a string|got string/ });
  await t.throwsAsync(openKV(db, { partitions: 4, warm: 'true' as never }), { instanceOf: ConfigError, message: /got "true"|got a string|got string/ });
  await t.throwsAsync(openKV(db, { partitions: 4, partitionIdleMs: '5' as never }), { instanceOf: ConfigError, message: /got "5"|got a string|got string/ });
});
