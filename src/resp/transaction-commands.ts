/**
 * MULTI, EXEC, DISCARD (and WATCH, refused): a transaction over the selected KV machine. The
 * commands after MULTI are not run but queued (each answered +QUEUED) as their plans (one KV
 * request each, see string-commands.ts); EXEC sends them all as ONE `batch` request of that
 * machine, so they are applied atomically, in order, in one step and one log entry, durable
 * before the reply, and answers the array of their replies. As in Redis, a command refused at
 * queueing time (unknown, wrong arity, bad syntax, or one that is not a key-value command of one
 * request, such as KEYS, SCAN, SELECT, INFO) makes EXEC answer EXECABORT and apply nothing; an
 * error at run time (INCR of a non-integer) is that command's reply, and the others still apply.
 *
 * WATCH is refused: EXEC is one atomic request, so what WATCH guards against cannot happen
 * between a transaction's commands; a read-then-write conflict is what SET NX/XX and the HTTP
 * `compareAndSet` op are for.
 */
import { array, error, OK, simple, type Reply } from './encoder.js';
import { errorReply, type Session } from './session.js';
import { ReplyError, type Handler, type Plan, type Planner } from './string-commands.js';

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
  s.transaction = null;
  s.transactionFailed = false;
  if (failed) return error('EXECABORT Transaction discarded because of previous errors.');
  if (plans.length === 0) return array([]);
  const { ops, replies } = joined(plans);
  const onInternal = s.server.options.onInternalError;
  return s.server.options.app.callValue<unknown[]>(s.machine, { op: 'batch', ops }).then(
    (outputs) => array(replies(outputs)),
    (err: unknown) => errorReply(err, onInternal),
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
      s.transactionFailed = false;
      return OK;
    },
  ],
  watch: [
    -2,
    (s) => {
      if (s.transaction !== null) return error('ERR WATCH inside MULTI is not allowed');
      return error('ERR WATCH is not supported: EXEC applies its commands as one atomic request of the KV machine; use SET NX/XX, or the compareAndSet op over HTTP, for a read-then-write');
    },
  ],
  // Nothing is ever watched; clients send it to reset a connection.
  unwatch: [1, () => OK],
};
