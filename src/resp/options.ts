import type { App } from '../engine/application.js';
import { ConfigError } from '../errors.js';
import type { ParserLimits } from './parser.js';

/** Options of {@link serveResp}. */
export interface RespOptions {
  /** The application whose KV machines are served. The server never stops it. */
  app: App;
  /**
   * Interface to listen on; loopback only unless said otherwise.
   * @default '127.0.0.1'
   */
  host?: string;
  /**
   * TCP port; `0` picks a free one.
   * @default 6380
   */
  port?: number;
  /**
   * When set, every command but AUTH, HELLO, QUIT and PING is refused with `-NOAUTH` until the
   * client sends `AUTH <token>` (or `HELLO 3 AUTH default <token>`).
   * @default undefined (no authentication)
   */
  token?: string;
  /**
   * The KV machines, in SELECT order: `SELECT n` picks the (n+1)-th.
   * @default every machine of the application, in start order (`app.machines()`)
   */
  machines?: readonly string[];
  /**
   * Most connections open at once; a newcomer beyond it is answered
   * `-ERR max number of clients reached` and closed, as in Redis.
   * @default 256
   */
  maxConnections?: number;
  /**
   * Largest bulk string (one key or value), in bytes.
   * @default 1048576 (1 MiB)
   */
  maxBulkBytes?: number;
  /**
   * Most arguments in one command (MSET k1 v1 ... counts every key and value).
   * @default 65536
   */
  maxArrayLength?: number;
  /**
   * Longest inline command (a line typed into telnet), in bytes.
   * @default 65536
   */
  maxInlineBytes?: number;
  /**
   * Commands of one connection in flight (sent, not yet answered) before its socket is paused:
   * a pipelining client cannot queue unbounded work.
   * @default 1024
   */
  maxPipeline?: number;
  /**
   * Time allowed for a command that has started to arrive to arrive whole; a slower client is
   * disconnected (slow-client cut-off). Idle connections between commands are kept, as in Redis.
   * @default 10000
   */
  commandTimeoutMs?: number;
  /**
   * Receives unexpected errors (answered `-ERR INTERNAL`), whose details never go to the client.
   * @default a line with the stack on stderr
   */
  onInternalError?: (err: unknown) => void;
}

/** {@link RespOptions} with every default applied and every value checked. */
export interface ResolvedRespOptions {
  readonly app: App;
  readonly host: string;
  readonly port: number;
  readonly token: string | undefined;
  readonly machines: readonly string[];
  readonly maxConnections: number;
  readonly limits: ParserLimits;
  readonly maxPipeline: number;
  readonly commandTimeoutMs: number;
  readonly onInternalError: (err: unknown) => void;
}

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new ConfigError(`${name} must be a positive integer, got ${v}`);
  return v;
}

/**
 * Applies the defaults of {@link RespOptions} and checks every value without listening, so a
 * command line can be refused before a database is opened (`app` may be absent for that).
 * @throws ConfigError for the first invalid option.
 */
export function resolveRespOptions(options: Omit<RespOptions, 'app'> & { app?: App }): ResolvedRespOptions {
  // An empty host would make Node listen on every interface: never by accident.
  if (options.host !== undefined && options.host.trim() === '') throw new ConfigError('host must not be empty (default 127.0.0.1)');
  const port = options.port ?? 6380;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`port must be 0..65535, got ${port}`);
  const { token } = options;
  if (token !== undefined && token.length === 0) throw new ConfigError('token must not be empty');
  const machines = options.machines ?? options.app?.machines() ?? [];
  if (options.app) {
    const known = new Set(options.app.machines());
    for (const m of machines) if (!known.has(m)) throw new ConfigError(`machines: unknown machine ${JSON.stringify(m)}`);
    if (machines.length === 0) throw new ConfigError('machines must name at least one KV machine');
  }
  return {
    app: options.app as App,
    host: options.host ?? '127.0.0.1',
    port,
    token,
    machines,
    maxConnections: positiveInt('maxConnections', options.maxConnections ?? 256),
    limits: {
      maxBulkBytes: positiveInt('maxBulkBytes', options.maxBulkBytes ?? 1024 * 1024),
      maxArrayLength: positiveInt('maxArrayLength', options.maxArrayLength ?? 65536),
      maxInlineBytes: positiveInt('maxInlineBytes', options.maxInlineBytes ?? 65536),
    },
    maxPipeline: positiveInt('maxPipeline', options.maxPipeline ?? 1024),
    commandTimeoutMs: positiveInt('commandTimeoutMs', options.commandTimeoutMs ?? 10_000),
    onInternalError:
      options.onInternalError ??
      ((err) => process.stderr.write(`[ssm] internal error answering a RESP command: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)),
  };
}
