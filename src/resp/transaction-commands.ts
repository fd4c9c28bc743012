/**
 * MULTI, EXEC, DISCARD, WATCH, UNWATCH: a transaction over the selected KV machine. The
 * commands after MULTI are not run but queued (each answered +QUEUED) as their plans (one KV
 * request each, see string-commands.ts); EXEC sends them all as ONE `batch` request of that
 * machine, so they are applied atomically, in order, in one step and one log entry, durable
 * before the reply, and answers the array of their replies. As in Redis, a command refused at
 * queueing time (unknown, wrong arity, bad syntax, or one that is not a key-value command of one
 * request, such as KEYS, SCAN, SELECT, INFO) makes EXEC answer EXECABORT and apply nothing; an
 * error at run time (INCR of a non-integer) is that command's reply, and the others still apply.
 *
 * WATCH k... reads a digest of what the keys hold; EXEC's batch then carries them as its `guard`
 * and applies nothing (answering nil) if any changed meanwhile: optimistic locking, checked in the
 * same step as the transaction.
 */
import { MAX_KEYS_PER_OP } from '../kv/kv-ops.js';
import { array, error, NIL_ARRAY, OK, simple, type Reply } from './encoder.js';
import { errorReply, type Session } from './session.js';
import { ReplyError, keyOf, type Handler, type Plan, type Planner } from './string-commands.js';

const QUEUED = simple('QUEUED');

/** Commands that act at once inside MULTI instead of being queued. */
export const TRANSACTION_CONTROL: ReadonlySet<string> = new Set(['multi', 'exec', 'discard', 'watch', 'unwatch', 'quit']);

/**
 * Queues one command of a transaction: its plan if `planner` can make one, else the refusal
 * that makes EXEC abort. `refusal` is what dispatch found wrong already (unknown command, arity).
 */
export function queueCommand(s: Session, name: string, args: readonly Buffer[], planner: Planner | undefined, refusal: Reply | null): Reply {
  const refuse = (r: Reply): Reply => {
    s.transactionFailed = true;
    return r;
  };
  if (refusal) return refuse(refusal);
  if (!planner) return refuse(error(`ERR ${name.toUpperCase()} cannot be queued in a transaction: EXEC runs as one key-value batch request of the selected machine`));
  try {
    s.transaction!.push(planner(s, args));
  } catch (err) {
    if (err instanceof ReplyError) return refuse(err.reply);
    throw err;
  }
  return QUEUED;
}

/** The queued plans as one batch request, and how to split its output back into their replies. */
function joined(plans: readonly Plan[]): { ops: unknown[]; replies: (outputs: readonly unknown[]) => Reply[] } {
  const ops: unknown[] = [];
  const spans: [number, number][] = [];
  for (const p of plans) {
    // A plan that is itself a (read-only) batch joins with its ops: batches do not nest.
    const inner = p.input.op === 'batch' ? (p.input.ops ?? []) : null;
    spans.push([ops.length, inner ? inner.length : -1]);
    if (inner) ops.push(...inner);
    else ops.push(p.input);
  }
  return {
    ops,
    replies: (outputs) => plans.map((p, i) => {
      const [at, n] = spans[i]!;
      return p.reply(n < 0 ? outputs[at] : outputs.slice(at, at + n));
    }),
  };
}

const exec: Handler = (s) => {
  const plans = s.transaction;
  if (plans === null) return error('ERR EXEC without MULTI');
  const failed = s.transactionFailed;
  const watch = s.watch;
  s.transaction = null;
  s.transactionFailed = false;
  s.watch = null;
  if (failed) return error('EXECABORT Transaction discarded because of previous errors.');
  // Keys watched in another database (SELECT since): EXEC cannot guard them here, so it aborts.
  if (watch !== null && watch.machine !== s.machine) return NIL_ARRAY;
  if (plans.length === 0 && watch === null) return array([]);
  const { ops, replies } = joined(plans);
  const onInternal = s.server.options.onInternalError;
  const run = (): Promise<Reply> =>
    s.server.options.app.callValue<unknown[] | null>(s.machine, { op: 'batch', ops, ...(watch ? { guard: [...watch.guards.values()] } : {}) }).then(
      (outputs) => (outputs === null ? NIL_ARRAY : array(replies(outputs))),
      (err: unknown) => errorReply(err, onInternal),
    );
  if (watch === null || watch.pending === 0) return run();
  // A WATCH read still under way (pipelined): the batch goes once it is in, and the commands
  // after EXEC wait for that, so that they reach the machine after the transaction.
  let sent!: () => void;
  s.barrier = new Promise<void>((r) => (sent = r));
  return new Promise<void>((r) => watch.settled.push(r)).then(() => {
    const reply = run();
    sent();
    return reply;
  });
};

/**
 * WATCH: reads the digest of each key's value and expiry now (a `digest` op, in order with the
 * connection's other commands); EXEC's batch then carries them as its guard and applies nothing
 * (answering nil) if any changed. A key watched twice keeps its first digest, as in Redis; a
 * WATCH whose read failed watches nothing (its error says so).
 */
const watch: Handler = (s, a) => {
  if (s.transaction !== null) return error('ERR WATCH inside MULTI is not allowed');
  const machine = s.machine;
  if (s.watch !== null && s.watch.machine !== machine) return error('ERR WATCH of keys of another database: EXEC runs on one machine (UNWATCH, or EXEC, first)');
  let keys: string[];
  try {
    keys = a.slice(1).map((k) => keyOf(k));
  } catch (err) {
    if (err instanceof ReplyError) return err.reply;
    throw err;
  }
  const w = (s.watch ??= { machine, guards: new Map(), pending: 0, settled: [] });
  const done = (): void => {
    if (--w.pending === 0) for (const f of w.settled.splice(0)) f();
  };
  const reads: Promise<void>[] = [];
  for (let i = 0; i < keys.length; i += MAX_KEYS_PER_OP) {
    const chunk = keys.slice(i, i + MAX_KEYS_PER_OP);
    w.pending++;
    const read = s.server.options.app.callValue<(string | null)[]>(machine, { op: 'digest', keys: chunk }).then((digests) => {
      chunk.forEach((key, j) => {
        if (!w.guards.has(key)) w.guards.set(key, { key, digest: digests[j] ?? null });
      });
    });
    reads.push(read.finally(done));
  }
  return Promise.all(reads).then(
    () => OK,
    (err: unknown) => errorReply(err, s.server.options.onInternalError),
  );
};

export const TRANSACTION_COMMANDS: Record<string, readonly [number, Handler]> = {
  multi: [
    1,
    (s) => {
      if (s.transaction !== null) return error('ERR MULTI calls can not be nested');
      s.transaction = [];
      s.transactionFailed = false;
      return OK;
    },
  ],
  exec: [1, exec],
  discard: [
    1,
    (s) => {
      if (s.transaction === null) return error('ERR DISCARD without MULTI');
      s.transaction = null;
      s.watch = null;
      s.transactionFailed = false;
      return OK;
    },
  ],
  watch: [-2, watch],
  unwatch: [
    1,
    (s) => {
      s.watch = null;
      return OK;
    },
  ],
};
