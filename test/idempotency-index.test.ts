/**
 * The in-memory index of idempotency keys (issue 16.1), against a plain model: every retained
 * key's record is among its candidates (no false negative, whatever the collisions, removals and
 * growth), and retention forgets whole records, oldest first, by age and by count.
 */
import test from 'ava';
import fc from 'fast-check';
import { IdempotencyIndex } from '../src/engine/idempotency-index.js';
import { keyFingerprint } from '../src/encoding/key-fingerprint.js';

test('model: no retained key is ever missed; forgotten records leave no candidate', (t) => {
  fc.assert(
    fc.property(
      // Fingerprints from a tiny range force long probe runs and many collisions.
      fc.array(fc.oneof(fc.record({ add: fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 30 }), at: fc.integer({ min: 0, max: 100 }) }), fc.record({ before: fc.integer({ min: 0, max: 100 }), max: fc.integer({ min: 0, max: 200 }) })), { maxLength: 60 }),
      (ops) => {
        const index = new IdempotencyIndex();
        const model: { id: number; at: number; fps: number[] }[] = [];
        let id = 0;
        for (const op of ops) {
          if ('add' in op) {
            id++;
            index.add(id, op.at, Uint32Array.from(op.add));
            model.push({ id, at: op.at, fps: op.add });
          } else {
            let last: number | null = null;
            let keys = model.reduce((n, r) => n + r.fps.length, 0);
            while (model.length > 0 && (model[0]!.at < op.before || keys > op.max)) {
              keys -= model[0]!.fps.length;
              last = model.shift()!.id;
            }
            if (index.expire(op.before, op.max) !== last) return false;
          }
          if (index.size !== model.reduce((n, r) => n + r.fps.length, 0)) return false;
          for (let fp = 0; fp <= 40; fp++) {
            const want = model.flatMap((r) => r.fps.filter((f) => f === fp).map(() => r.id)).sort((a, b) => a - b);
            const got = [...index.candidates(fp)].sort((a, b) => a - b);
            if (JSON.stringify(want) !== JSON.stringify(got)) return false;
          }
        }
        return true;
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});

test('grows past its first table without losing keys, and keeps about 20 bytes a key', (t) => {
  const index = new IdempotencyIndex();
  const n = 200_000;
  for (let r = 0; r < n / 250; r++) index.add(r + 1, 0, Uint32Array.from({ length: 250 }, (_, i) => keyFingerprint('kv', `key-${r * 250 + i}`)));
  t.is(index.size, n);
  for (let i = 0; i < n; i += 997) t.true(index.candidates(keyFingerprint('kv', `key-${i}`)).includes(Math.floor(i / 250) + 1), `key-${i}`);
  let falsePositives = 0;
  for (let i = 0; i < 10_000; i++) falsePositives += index.candidates(keyFingerprint('kv', `absent-${i}`)).length;
  t.true(falsePositives < 5, `${falsePositives} false candidates in 10k lookups of absent keys`);
});

test('the fingerprint is stored, so it is fixed: machine and key are separated', (t) => {
  t.is(keyFingerprint('kv', 'order-1'), keyFingerprint('kv', 'order-1'));
  t.not(keyFingerprint('ab', 'c'), keyFingerprint('a', 'bc'));
  // Pinned values: a change here would make every stored fingerprint wrong.
  t.deepEqual([keyFingerprint('kv', 'order-1'), keyFingerprint('kv1', 'é'), keyFingerprint('a', '')], [1692637550, 4235075676, 2448022055]);
});
