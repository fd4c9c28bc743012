import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runDemo } from '../src/kv/demo.js';

/** The seed's scenario, as printed by `ssm demo`. */

function tmpDb(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ssm-core-demo-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'demo.db');
}

async function demoLines(db: string): Promise<string[]> {
  const lines: string[] = [];
  await runDemo({ db, print: (l) => lines.push(l) });
  return lines;
}

/** Lines strictly between the first line matching `from` and the next one matching `to`. */
function between(lines: string[], from: RegExp, to: RegExp): string[] {
  const i = lines.findIndex((l) => from.test(l));
  const j = lines.findIndex((l, k) => k > i && to.test(l));
  return i < 0 || j < 0 ? [] : lines.slice(i + 1, j);
}

test('the demo prints the seed scenario: kv2 crashes, rest_for_one restarts kv2 and kv3 but not kv1, x survives', async (t) => {
  const lines = await demoLines(tmpDb(t));
  const text = lines.join('\n');
  t.true(lines.includes('[ssm] kv2 threw: divide by zero'), text);
  t.true(lines.includes('[ssm] kv_group (rest_for_one) restarting kv2, kv3'), text);
  t.true(lines.includes('Left MachineCrashedError: kv2 crashed: divide by zero'), text);

  // Between the crash and its reply: kv3 then kv2 terminate, kv2 then kv3 start; kv1 is not touched.
  const restart = between(lines, /kv2 threw: divide by zero/, /^Left MachineCrashedError/);
  t.deepEqual(
    restart.filter((l) => /^KV store (starting|terminating)/.test(l)),
    ['KV store terminating: kv3', 'KV store terminating: kv2', 'KV store starting: kv2', 'KV store starting: kv3'],
  );
  t.false(restart.some((l) => /kv1/.test(l)), 'kv1 keeps running');
  t.is(lines.filter((l) => l === 'KV store starting: kv1').length, 1);

  // The calls and their results, in order.
  const calls = lines.filter((l) => /^(Calling kv2|Right|Left)/.test(l));
  t.deepEqual(calls, [
    'Calling kv2: Store "x" 1',
    'Calling kv2: Lookup "x"',
    'Right "Result (Just 1)"',
    'Calling kv2: Lookup "crash"',
    'Left MachineCrashedError: kv2 crashed: divide by zero',
    'Calling kv2: Lookup "x"',
    'Right "Result (Just 1)"',
    'Calling kv2: Lookup "y"',
    'Right "Result (Nothing)"',
  ]);
  // Orderly shutdown, in reverse start order.
  t.deepEqual(
    lines.filter((l) => l.startsWith('KV store terminating')).slice(-3),
    ['KV store terminating: kv3', 'KV store terminating: kv2', 'KV store terminating: kv1'],
  );
  t.is(lines.at(-1), '[ssm] application stopped: normal');
});

test('a second demo run on the same database starts from the first run\'s data', async (t) => {
  const db = tmpDb(t);
  const first = await demoLines(db);
  t.true(first.includes('[ssm] kv2 started (fresh state)'), first.join('\n'));
  const second = await demoLines(db);
  const text = second.join('\n');
  const kv2Start = second.find((l) => l.startsWith('[ssm] kv2 started'));
  t.truthy(kv2Start, text);
  t.notRegex(kv2Start!, /fresh state/);
  t.regex(kv2Start!, /recovered from .*seq [1-9]/);
  // After the crash of the second run kv2 is rebuilt from snapshot + replayed log: seq grows past the first run's.
  const restarted = second.filter((l) => l.startsWith('[ssm] kv2 started'))[1];
  t.truthy(restarted, text);
  t.regex(restarted!, /recovered from .*replayed, seq 2/);
  t.true(second.includes('Right "Result (Just 1)"'));
});
