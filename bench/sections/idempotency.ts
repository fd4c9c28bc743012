/**
 * Section: what idempotency keys cost (issue 16.1). Durable KV writes at 256 callers, each with
 * its own idempotency key (a lookup before the step, the key and its reply written in the
 * batch's commit), against the same load without keys, in alternating pairs in one run.
 */
import { randomUUID } from 'node:crypto';
import { fmt, printTable, writeResult, type Profile } from '../lib/common.js';
import { alternatingPairs, kvWriteLoad } from '../lib/paired.js';

const CALLERS = 256;
const PAIRS = 3;

export async function runIdempotency(profile: Profile): Promise<Record<string, unknown>> {
  // A new random key per write, as clients send them (UUIDs): every write stores its key, and
  // keys arrive in no order (sequential keys would flatter any index kept in key order).
  const keyed = () => ({ idempotencyKey: randomUUID() });
  const r = await alternatingPairs('keyed vs unkeyed', PAIRS, () => kvWriteLoad('idem-keyed', {}, CALLERS, profile.seconds, keyed), () => kvWriteLoad('idem-plain', {}, CALLERS, profile.seconds));
  const cost = 1 - r.ratio;
  printTable(
    `idempotency keys: durable writes at ${CALLERS} callers (median of ${PAIRS} alternating pairs)`,
    [
      ['case', 'with a key each', 'without keys', 'ratio', 'cost', 'target'],
      ['writes/s', fmt(r.a), fmt(r.b), r.ratio.toFixed(2), `${(cost * 100).toFixed(0)}%`, '<= 15%'],
    ],
    ['with: each write carries a new random idempotency key (a UUID), looked up before its step and stored with its reply in the same commit'],
  );
  writeResult('idempotency', profile, { callers: CALLERS, pairs: r.pairs.map((p) => ({ keyed: p.a, plain: p.b })), keyed: r.a, plain: r.b, ratio: r.ratio, cost });
  return { ratio: r.ratio, cost };
}
