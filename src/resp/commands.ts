/**
 * The command table: every command we answer, its arity, and the dispatch rules that apply to
 * all of them (wrong arity, unknown command, NOAUTH before AUTH), as in Redis: an error reply,
 * the connection kept open.
 */
import { array, bulk, error, int, simple, type Reply } from './encoder.js';
import { EXPIRY_COMMANDS, EXPIRY_PLANS } from './expiry-commands.js';
import { KEYSPACE_COMMANDS, KEYSPACE_PLANS } from './keyspace-commands.js';
import { SERVER_COMMANDS } from './server-commands.js';
import { errorReply, type Session } from './session.js';
import { ReplyError, STRING_COMMANDS, STRING_PLANS, type Handler, type Planner } from './string-commands.js';
import { TRANSACTION_COMMANDS, TRANSACTION_CONTROL, queueCommand } from './transaction-commands.js';

/** Commands that change data (COMMAND's `write` flag); the rest only read. */
const WRITES = new Set(['set', 'getdel', 'del', 'mset', 'incr', 'decr', 'incrby', 'decrby', 'append', 'expire', 'pexpire', 'expireat', 'pexpireat', 'persist']);
/** The commands MULTI can queue: those that are one KV request (see transaction-commands.ts). */
const PLANNERS = new Map<string, Planner>([...Object.entries(STRING_PLANS), ...Object.entries(EXPIRY_PLANS), ...Object.entries(KEYSPACE_PLANS)].map(([name, [, planner]]) => [name, planner]));
/** Commands allowed before AUTH when a token is set. */
const NO_AUTH = new Set(['auth', 'hello', 'quit', 'ping']);
/** Keys of a command, for COMMAND: [first, last (-1: to the end), step]. */
const KEY_SPECS: Record<string, readonly [number, number, number]> = { mset: [1, -1, 2], mget: [1, -1, 1], del: [1, -1, 1], exists: [1, -1, 1] };

const COMMAND: Handler = (_s, a) => {
  const sub = a[1]?.toString('latin1').toUpperCase();
  if (sub === undefined) return array([...TABLE.keys()].map(describe));
  if (sub === 'COUNT') return int(TABLE.size);
  if (sub === 'INFO') return array(a.slice(2).map((n) => (TABLE.has(n.toString('latin1').toLowerCase()) ? describe(n.toString('latin1').toLowerCase()) : { t: 'null' })));
  // redis-cli asks for the docs of every command for its hints; hints are optional.
  if (sub === 'DOCS') return array([]);
  return error(`ERR unknown subcommand '${sub}'. Try COMMAND HELP.`);
};

const TABLE = new Map<string, readonly [number, Handler]>([
  ...Object.entries(STRING_COMMANDS),
  ...Object.entries(EXPIRY_COMMANDS),
  ...Object.entries(KEYSPACE_COMMANDS),
  ...Object.entries(TRANSACTION_COMMANDS),
  ...Object.entries(SERVER_COMMANDS),
  ['command', [-1, COMMAND]],
]);

/** One command's entry of `COMMAND`: name, arity, flags, first key, last key, step. */
function describe(name: string): Reply {
  const [arity] = TABLE.get(name)!;
  const keyed = STRING_COMMANDS[name] !== undefined || EXPIRY_COMMANDS[name] !== undefined || name === 'type';
  const [first, last, step] = KEY_SPECS[name] ?? (keyed ? [1, 1, 1] : [0, 0, 0]);
  const flags = [WRITES.has(name) ? 'write' : 'readonly', ...(NO_AUTH.has(name) ? ['no-auth'] : [])];
  return array([bulk(name), int(arity), array(flags.map(simple)), int(first), int(last), int(step)]);
}

/**
 * Runs one command. Never throws and never rejects: every failure is an error reply. The
 * handler runs synchronously up to its machine call (see string-commands.ts).
 */
export function dispatch(s: Session, args: readonly Buffer[]): Reply | Promise<Reply> {
  const name = args[0]!.toString('latin1').toLowerCase();
  const entry = TABLE.get(name);
  if (!s.authenticated && !NO_AUTH.has(name)) return error('NOAUTH Authentication required.');
  let refusal: Reply | null = null;
  if (!entry) {
    const shown = args[0]!.toString('utf8').slice(0, 128);
    const rest = args.slice(1, 8).map((b) => `'${b.toString('utf8').slice(0, 64)}'`).join(' ');
    refusal = error(`ERR unknown command '${shown}', with args beginning with: ${rest}`);
  } else if (entry[0] > 0 ? args.length !== entry[0] : args.length < -entry[0]) {
    refusal = error(`ERR wrong number of arguments for '${name}' command`);
  }
  const onInternal = s.server.options.onInternalError;
  if (s.transaction !== null && !TRANSACTION_CONTROL.has(name)) {
    try {
      return queueCommand(s, name, args, PLANNERS.get(name), refusal);
    } catch (err) {
      s.transactionFailed = true;
      return errorReply(err, onInternal);
    }
  }
  if (refusal) return refusal;
  const handler = entry![1];
  try {
    const out = handler(s, args);
    return out instanceof Promise ? out.catch((err: unknown) => errorReply(err, onInternal)) : out;
  } catch (err) {
    if (err instanceof ReplyError) return err.reply;
    return errorReply(err, onInternal);
  }
}
