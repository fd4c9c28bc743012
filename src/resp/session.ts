import type { KvGuard } from '../kv/kv-machine.js';
import { createHash, timingSafeEqual } from 'node:crypto';
import { QueueFullError, SsmError } from '../errors.js';
import { error, type Protocol, type Reply } from './encoder.js';
import type { ResolvedRespOptions } from './options.js';
import type { Plan } from './string-commands.js';

/** What a server shares with its connections' commands: options and counters for INFO. */
export interface ServerContext {
  readonly options: ResolvedRespOptions;
  readonly startedAt: number;
  port: number;
  connectionsReceived: number;
  connectionsRejected: number;
  commandsProcessed: number;
  /** Open connections. */
  connected: number;
  readonly checkToken: (given: Uint8Array) => boolean;
  readonly cursors: CursorTable;
}

/** Most SCAN cursors the server keeps; the oldest is forgotten beyond (SCAN from it restarts at 0). */
const MAX_CURSORS = 10_000;

/**
 * SCAN cursors: a cursor is a number (redis-cli parses it as one) that stands for the last key
 * a page returned; the next page starts after that key, so a key present for the whole scan is
 * returned exactly once. Kept by the server, not the connection: clients with a connection pool
 * (and one redis-cli run per page) continue a scan on another connection.
 */
export class CursorTable {
  readonly #cursors = new Map<number, string>();
  #next = 1;

  /** A cursor for "after `key`". */
  cursorFor(key: string): number {
    const c = this.#next++;
    this.#cursors.set(c, key);
    if (this.#cursors.size > MAX_CURSORS) this.#cursors.delete(this.#cursors.keys().next().value!);
    return c;
  }

  /** The key a cursor stands for; undefined for 0 and unknown cursors. */
  cursorKey(cursor: number): string | undefined {
    return this.#cursors.get(cursor);
  }
}

/** What WATCH keeps: the machine, each key's digest when first watched, the reads still pending. */
export interface Watch {
  readonly machine: string;
  readonly guards: Map<string, KvGuard>;
  pending: number;
  /** Called once no read is pending. */
  readonly settled: (() => void)[];
}

/** Per-connection state of a RESP client. */
export class Session {
  protocol: Protocol = 2;
  /** Index into `options.machines` (SELECT). */
  db = 0;
  authenticated: boolean;
  name: string | null = null;
  /** Set by QUIT: close once the replies before it are written. */
  quitting = false;
  /** The commands queued since MULTI (null: not in a transaction); see transaction-commands.ts. */
  transaction: Plan[] | null = null;
  /** A command queued since MULTI was refused: EXEC answers EXECABORT and applies nothing. */
  transactionFailed = false;
  /** The keys WATCHed since the last EXEC, DISCARD or UNWATCH (see transaction-commands.ts). */
  watch: Watch | null = null;
  /**
   * Set while an EXEC waits for its WATCH reads: the connection's later commands are not
   * dispatched until it settles (EXEC's batch sent), so they reach the machine after it, in order.
   */
  barrier: Promise<void> | null = null;

  constructor(readonly id: number, readonly server: ServerContext) {
    this.authenticated = server.options.token === undefined;
  }

  /** The KV machine selected. */
  get machine(): string {
    return this.server.options.machines[this.db]!;
  }
}

/** Constant-time token check: both sides hashed to 32 bytes, so not even the length leaks. */
export function tokenChecker(token: string | undefined): (given: Uint8Array) => boolean {
  if (token === undefined) return () => false;
  const expected = createHash('sha256').update(token, 'utf8').digest();
  return (given) => timingSafeEqual(createHash('sha256').update(given).digest(), expected);
}

/**
 * An error of a machine call as a RESP error reply: a full queue is `-BUSY` (retry later), any
 * other error of ours `-ERR <CODE> <message>`, so clients can switch on our stable codes.
 * Unexpected errors say only INTERNAL (the details go to `onInternalError`).
 */
export function errorReply(err: unknown, onInternal: (err: unknown) => void): Reply {
  if (err instanceof QueueFullError) return error(`BUSY ${err.code} ${err.message}`);
  if (err instanceof SsmError) return error(`ERR ${err.code} ${err.message}`);
  onInternal(err);
  return error('ERR INTERNAL internal error (see the server log)');
}
