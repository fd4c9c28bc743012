import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { caseArb, erlangCase, runHere, type Case } from './helpers/otp-model.js';

/**
 * Differential test against a real Erlang/OTP supervisor (issue 12): random trees (strategies,
 * intensities 0-3, restart types, depth up to 4) and random crashes, normal stops and failing
 * starts run both here and in OTP (test/otp/sup_diff.escript); the sequences of starts and
 * supervisor-initiated terminations, and whether the root gave up, must be equal.
 */

const CASES = Number(process.env.OTP_DIFF_CASES ?? 200);
const SEED = Number(process.env.OTP_DIFF_SEED ?? 20261201);
const escript = spawnSync('escript', ['-s', '/dev/null'], { encoding: 'utf8' });
const haveErlang = escript.error === undefined;

if (!haveErlang) {
  console.error('\n!!! otp-differential: `escript` not found: install erlang-base (.ci/run does). The differential test against OTP is SKIPPED. !!!\n');
}

function runOtp(cases: readonly Case[]): Map<number, string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ssm-otp-'));
  try {
    const file = join(dir, 'cases.terms');
    writeFileSync(file, cases.map((c, i) => erlangCase(i, c)).join('\n') + '\n');
    const r = spawnSync('escript', [new URL('./otp/sup_diff.escript', import.meta.url).pathname, file], { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`sup_diff.escript failed: ${r.stderr}`);
    const out = new Map<number, string[]>();
    let current: string[] = [];
    for (const line of r.stdout.split('\n')) {
      const m = /^case (\d+)$/.exec(line);
      if (m) out.set(Number(m[1]), (current = []));
      else if (line !== 'end' && line !== '') current.push(line);
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

(haveErlang ? test : test.skip)(`${CASES} random trees and event sequences behave as in Erlang/OTP's supervisor`, async (t) => {
  t.timeout(180_000);
  const cases = fc.sample(caseArb, { numRuns: CASES, seed: SEED });
  const otp = runOtp(cases);
  t.is(otp.size, cases.length, 'OTP ran every case');
  let gaveUp = 0;
  for (const [i, c] of cases.entries()) {
    const here = await runHere(c);
    if (here.at(-1) === 'gaveup') gaveUp++;
    t.deepEqual(here, otp.get(i), `case ${i}: ${erlangCase(i, c)}`);
    if (JSON.stringify(here) !== JSON.stringify(otp.get(i))) break;
  }
  t.log(`${cases.length} cases, root gave up in ${gaveUp}`);
  t.true(gaveUp > 0 && gaveUp < cases.length, 'the cases cover both surviving and giving up');
});
