import test from 'ava';
import { startApplication } from '../src/engine/application.js';
import { ConfigError } from '../src/errors.js';
import { supervisor, type SupervisorSpec } from '../src/model/tree.js';
import { Recorder } from './helpers/core-fixtures.js';

/**
 * Invalid supervisor flags and children are ConfigErrors, as OTP's check_flags/check_childspec
 * refuse them (validIntensity, validPeriod: integers, period > 0; `{invalid_child_spec, X}`),
 * never a raw TypeError or a window that silently never forgets.
 */

const badFlags: Array<[string, Record<string, unknown>]> = [
  ['periodMs Infinity', { periodMs: Infinity }],
  ['periodMs NaN', { periodMs: NaN }],
  ['periodMs non-integer', { periodMs: 1.5 }],
  ['periodMs 0', { periodMs: 0 }],
  ['periodMs negative', { periodMs: -5 }],
  ['periodMs a string', { periodMs: '5000' }],
  ['intensity negative', { intensity: -1 }],
  ['intensity non-integer', { intensity: 0.5 }],
  ['intensity Infinity', { intensity: Infinity }],
  ['intensity a string', { intensity: '1' }],
];

for (const [what, flags] of badFlags) {
  test(`supervisor flags: ${what} is a ConfigError`, (t) => {
    t.throws(() => supervisor('one_for_one', [], flags as never), { instanceOf: ConfigError });
  });
}

test('supervisor options that are not an object are a ConfigError', (t) => {
  t.throws(() => supervisor('one_for_one', [], null as never), { instanceOf: ConfigError });
});

test("a child that is not a spec is a ConfigError (OTP's invalid_child_spec), not a TypeError", (t) => {
  for (const child of ['child4', null, 42, {}, { kind: 'supervisor' }, { kind: 'process' }]) {
    const err = t.throws(() => supervisor('one_for_one', [child as never]), { instanceOf: ConfigError });
    t.regex(err!.message, /supervisor child 0 is not a child spec/);
  }
});

test('a hand-built tree with a child that is not a spec is a ConfigError at start', async (t) => {
  const rec = new Recorder();
  const tree = { kind: 'supervisor', name: undefined, strategy: 'one_for_one', children: [rec.worker('a'), 'child4'], intensity: 1, periodMs: 5000 } as unknown as SupervisorSpec;
  await t.throwsAsync(startApplication(tree, { db: ':memory:', logger: false }), { instanceOf: ConfigError });
  t.deepEqual(rec.hooks(), [], 'nothing was started');
});

test('valid flags at the edges are accepted', (t) => {
  t.is(supervisor('one_for_one', [], { intensity: 0, periodMs: 1 }).periodMs, 1);
  t.is(supervisor('one_for_one', []).intensity, 1);
  t.is(supervisor('one_for_one', []).periodMs, 5000);
});
