import type { App } from '../engine/application.js';
import type { CallOptions } from '../engine/options.js';
import { ConfigError } from '../errors.js';

/** Options of {@link serve}. */
export interface ServeOptions {
  /** The application whose machines are served. The server never stops it. */
  app: App;
  /**
   * Interface to listen on; loopback only unless said otherwise.
   * @default '127.0.0.1'
   */
  host?: string;
  /**
   * TCP port; `0` picks a free one.
   * @default 7411
   */
  port?: number;
  /**
   * When set, every route but `/healthz` requires `Authorization: Bearer <token>`.
   * @default undefined (no authentication)
   */
  token?: string;
  /**
   * Largest accepted request body, in bytes (413 beyond).
   * @default 1048576 (1 MiB)
   */
  maxBodyBytes?: number;
  /**
   * Time allowed for the whole request body once headers are in (408 after).
   * @default 10000
   */
  bodyTimeoutMs?: number;
  /**
   * Time allowed for the request headers.
   * @default 10000
   */
  headersTimeoutMs?: number;
  /**
   * Time allowed for a whole request, headers and body (Node's 408 after).
   * @default 30000
   */
  requestTimeoutMs?: number;
  /**
   * Idle time before a keep-alive connection is closed.
   * @default 5000
   */
  keepAliveTimeoutMs?: number;
  /**
   * Most connections open at once. A newcomer beyond it takes the place of the connection that
   * has waited longest for its request headers (one that never completed a request's headers, or
   * that started the next one; among equal waits the one that sent the fewest bytes), so slow
   * clients (Slowloris) cannot lock others out; when no connection waits for headers (every one
   * is in a request or idle keep-alive), the newcomer is refused (closed at once). Connections
   * waiting for headers are still closed after `headersTimeoutMs`.
   * @default 256
   */
  maxConnections?: number;
  /**
   * Most connections open at once from one remote address (IPv4 address; IPv6 /64 prefix).
   * Loopback counts as one address: behind a reverse proxy on the same host every client is
   * 127.0.0.1, so set it to `maxConnections` there. A newcomer beyond it evicts a connection of
   * its own address that waits for headers (as for `maxConnections`), else it is refused. At most
   * `maxConnections`.
   * @default half of `maxConnections`, at least 64 (and at most `maxConnections`): 128 by default
   */
  maxConnectionsPerAddress?: number;
  /**
   * Timeout of each machine call (504 after).
   * @default the application's `callTimeoutMs`
   */
  callTimeoutMs?: number;
  /**
   * Receives unexpected errors (answered 500 INTERNAL), whose details never go to the client.
   * @default a line with the stack on stderr
   */
  onInternalError?: (err: unknown) => void;
}

/** {@link ServeOptions} with every default applied and every value checked. */
export interface ResolvedServeOptions {
  readonly host: string;
  readonly port: number;
  readonly token: string | undefined;
  readonly maxBodyBytes: number;
  readonly bodyTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;
  /** Passed to every machine call; empty leaves the application's own timeout in force. */
  readonly callOptions: CallOptions;
  readonly onInternalError: (err: unknown) => void;
}

const logInternalError = (err: unknown): void => {
  process.stderr.write(`[ssm] internal error answering a request: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
};

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new ConfigError(`${name} must be a positive integer, got ${v}`);
  return v;
}

/**
 * Applies the defaults of {@link ServeOptions} and checks every value, without starting
 * anything, so a command line can be refused before a database is opened. {@link serve} calls
 * it too. Messages carry no prefix: the caller (e.g. `ssm serve`) adds its own.
 * @throws ConfigError for the first invalid option.
 */
export function resolveServeOptions(options: Omit<ServeOptions, 'app'>): ResolvedServeOptions {
  // An empty host would make Node listen on every interface: never by accident.
  if (options.host !== undefined && options.host.trim() === '') throw new ConfigError('host must not be empty (default 127.0.0.1)');
  const port = options.port ?? 7411;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`port must be 0..65535, got ${port}`);
  const { token } = options;
  if (token !== undefined && token.length === 0) throw new ConfigError('token must not be empty');
  if (token !== undefined && /\s/.test(token)) throw new ConfigError('token must not contain white space (it could never match a Bearer header)');
  const maxConnections = positiveInt('maxConnections', options.maxConnections ?? 256);
  const maxConnectionsPerAddress =
    options.maxConnectionsPerAddress === undefined
      ? Math.min(maxConnections, Math.max(64, Math.ceil(maxConnections / 2)))
      : positiveInt('maxConnectionsPerAddress', options.maxConnectionsPerAddress);
  if (maxConnectionsPerAddress > maxConnections) {
    throw new ConfigError(`maxConnectionsPerAddress (${maxConnectionsPerAddress}) must not exceed maxConnections (${maxConnections})`);
  }
  return {
    host: options.host ?? '127.0.0.1',
    port,
    token,
    maxBodyBytes: positiveInt('maxBodyBytes', options.maxBodyBytes ?? 1024 * 1024),
    bodyTimeoutMs: positiveInt('bodyTimeoutMs', options.bodyTimeoutMs ?? 10_000),
    headersTimeoutMs: positiveInt('headersTimeoutMs', options.headersTimeoutMs ?? 10_000),
    requestTimeoutMs: positiveInt('requestTimeoutMs', options.requestTimeoutMs ?? 30_000),
    keepAliveTimeoutMs: positiveInt('keepAliveTimeoutMs', options.keepAliveTimeoutMs ?? 5_000),
    maxConnections,
    maxConnectionsPerAddress,
    callOptions: options.callTimeoutMs === undefined ? {} : { timeoutMs: positiveInt('callTimeoutMs', options.callTimeoutMs) },
    onInternalError: options.onInternalError ?? logInternalError,
  };
}
