import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { App } from '../engine/application.js';
import { parseUntrustedJson } from '../encoding/json.js';
import { ConfigError, DecodeError, SsmError, describe } from '../errors.js';
import { bearerChecker } from './auth.js';
import { readBody } from './body.js';
import { HttpError, send, sendError, sendJson } from './responses.js';
import { toJson } from '../encoding/json.js';
import type { StatusNode } from '../engine/runtime-tree.js';

/** Options of {@link serve}. */
export interface ServeOptions {
  /** The application whose machines are served. The server never stops it. */
  app: App;
  /** Interface to listen on. Default `127.0.0.1` (loopback only). */
  host?: string;
  /** TCP port; `0` picks a free one. Default 7411. */
  port?: number;
  /** When set, every route but `/healthz` requires `Authorization: Bearer <token>`. */
  token?: string;
  /** Largest accepted request body. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Time allowed for the whole request body once headers are in (408 after). Default 10 s. */
  bodyTimeoutMs?: number;
  /** Time allowed for the request headers. Default 10 s. */
  headersTimeoutMs?: number;
  /** Time allowed for a whole request, headers and body (Node's 408 after). Default 30 s. */
  requestTimeoutMs?: number;
  /** Idle time before a keep-alive connection is closed. Default 5 s. */
  keepAliveTimeoutMs?: number;
  /** Connections beyond this are refused (closed at once). Default 256. */
  maxConnections?: number;
  /** Timeout of each machine call (504 after). Default: the application's `callTimeoutMs`. */
  callTimeoutMs?: number;
  /** Unexpected errors (answered 500 INTERNAL). Default: a line with the stack on stderr. */
  onInternalError?: (err: unknown) => void;
}

const logInternalError = (err: unknown): void => {
  process.stderr.write(`[ssm] internal error answering a request: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
};

/** A listening endpoint, as returned by {@link serve}. */
export interface HttpEndpoint {
  /** e.g. `http://127.0.0.1:7411` */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** The underlying node:http server (for events and tests). */
  readonly server: Server;
  /**
   * Stops accepting connections and resolves once in-flight requests have been answered; idle
   * keep-alive connections are closed at once, and any connection still open after `graceMs`
   * (default 10 s) is cut. Does not stop the application. Idempotent.
   */
  close(options?: { graceMs?: number }): Promise<void>;
}

const CBOR = 'application/cbor';
const JSON_TYPE = 'application/json';
const PROMETHEUS = 'text/plain; version=0.0.4; charset=utf-8';

/** One worker of the tree, flattened, as listed by `GET /v1/machines`. */
export interface MachineInfo {
  readonly name: string;
  /** Names of the supervisors above it, root first. */
  readonly supervisors: readonly string[];
  readonly status: string;
  readonly restarts: number;
  readonly lastError: string | null;
  /** Last durable request sequence number. */
  readonly seq: number;
  /** Sequence number of the latest snapshot (0: none yet). */
  readonly snapshotSeq: number;
  /** The latest snapshot: what it covers, when it was taken, its size in bytes. */
  readonly snapshot: { readonly seq: number; readonly takenAt: string; readonly size: number } | null;
  readonly version: number;
}

function flatten(node: StatusNode, path: string[] = []): MachineInfo[] {
  if (node.kind === 'supervisor') return node.children.flatMap((c) => flatten(c, [...path, node.name]));
  const { name, status, restarts, lastError, seq, snapshotSeq, snapshot, version } = node;
  return [{ name, supervisors: path, status, restarts, lastError, seq, snapshotSeq, snapshot, version }];
}

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new ConfigError(`serve: ${name} must be a positive integer, got ${v}`);
  return v;
}

/** The media type of a Content-Type header, lower-cased, without parameters. */
function mediaType(header: string | undefined): string {
  return (header ?? '').split(';', 1)[0]!.trim().toLowerCase();
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function parseJsonBody(body: Buffer): unknown {
  try {
    return parseUntrustedJson(utf8.decode(body));
  } catch (err) {
    throw new DecodeError(`undecodable JSON: ${describe(err)}`, { cause: err });
  }
}

/**
 * Serves an application over HTTP/1.1 (node:http, no framework: every limit and timeout is
 * ours to set, and nothing else sits between a socket and the event loop).
 *
 * Routes:
 * - `POST /v1/machines/:name/call`: body `application/cbor` (decoded by the machine's codec,
 *   reply in CBOR) or `application/json` (validated by the machine, reply in JSON).
 * - `GET /v1/machines`: the supervision tree and a flat list of machines.
 * - `POST /v1/checkpoint[?name=MACHINE]`: snapshots now; replies with the snapshots written.
 * - `GET /metrics`: Prometheus text format. `GET /healthz`: liveness, never needs the token.
 *
 * Errors reply with `{"error": {"code", "name", "message"}}` and a status: 400 undecodable
 * body, 401 missing/wrong token, 404 unknown machine or route, 405 wrong method, 408 body too
 * slow, 413 body too large, 415 unsupported media type, 500 machine crashed, 503 queue full
 * (with Retry-After), storage error or application stopped, 504 call timeout.
 */
/**
 * Checks serve options without starting anything (ConfigError), so a command line can be
 * refused before a database is opened. {@link serve} runs the same checks.
 */
export function checkServeOptions(options: Omit<ServeOptions, 'app'>) {
  // An empty host would make Node listen on every interface: never by accident.
  if (options.host !== undefined && options.host.trim() === '') throw new ConfigError('serve: host must not be empty (default 127.0.0.1)');
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 7411;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`serve: port must be 0..65535, got ${port}`);
  if (options.token !== undefined && options.token.length === 0) throw new ConfigError('serve: token must not be empty');
  if (options.token !== undefined && /\s/.test(options.token)) throw new ConfigError('serve: token must not contain white space (it could never match a Bearer header)');
  return {
    host,
    port,
    maxBodyBytes: positiveInt('maxBodyBytes', options.maxBodyBytes ?? 1024 * 1024),
    bodyTimeoutMs: positiveInt('bodyTimeoutMs', options.bodyTimeoutMs ?? 10_000),
    headersTimeoutMs: positiveInt('headersTimeoutMs', options.headersTimeoutMs ?? 10_000),
    requestTimeoutMs: positiveInt('requestTimeoutMs', options.requestTimeoutMs ?? 30_000),
    keepAliveTimeoutMs: positiveInt('keepAliveTimeoutMs', options.keepAliveTimeoutMs ?? 5_000),
    maxConnections: positiveInt('maxConnections', options.maxConnections ?? 256),
    callOptions: options.callTimeoutMs === undefined ? {} : { timeoutMs: positiveInt('callTimeoutMs', options.callTimeoutMs) },
  };
}

export async function serve(options: ServeOptions): Promise<HttpEndpoint> {
  const { app } = options;
  const { host, port, maxBodyBytes, bodyTimeoutMs, headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs, maxConnections, callOptions } = checkServeOptions(options);
  const authorized = options.token === undefined ? null : bearerChecker(options.token);

  let appStopped = false;
  void app.stopped.then(() => (appStopped = true));

  // Engine errors are already counted by the application; refusals of the HTTP layer are
  // counted here, and anything else is a bug whose details belong in the server's log.
  const noteError = (err: unknown): void => {
    if (err instanceof HttpError) app.metrics.error(err.code);
    else if (!(err instanceof SsmError)) (options.onInternalError ?? logInternalError)(err);
  };

  const allow = (res: ServerResponse, methods: string, method: string): boolean => {
    if (methods.split(', ').includes(method)) return true;
    const err = new HttpError(405, 'METHOD_NOT_ALLOWED', `method ${method} not allowed here; use ${methods}`, { Allow: methods });
    noteError(err);
    sendError(res, err);
    return false;
  };

  const call = async (req: IncomingMessage, res: ServerResponse, name: string, expectContinue: boolean): Promise<void> => {
    const type = mediaType(req.headers['content-type']);
    if (type !== CBOR && type !== JSON_TYPE) {
      throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', `Content-Type must be ${CBOR} or ${JSON_TYPE}, got ${JSON.stringify(req.headers['content-type'] ?? '')}`, { Accept: `${CBOR}, ${JSON_TYPE}` });
    }
    let body: Buffer;
    try {
      // Refusing an oversized Content-Length happens before the client is told to continue.
      const reading = readBody(req, maxBodyBytes, bodyTimeoutMs);
      if (expectContinue && Number(req.headers['content-length'] ?? 0) <= maxBodyBytes) res.writeContinue();
      body = await reading;
    } catch (err) {
      // The rest of the body is never read: the connection cannot be reused.
      noteError(err);
      sendError(res, err, { Connection: 'close' });
      return;
    }
    if (type === CBOR) {
      const out = await app.callBytes(name, body, callOptions);
      send(res, 200, CBOR, out);
    } else {
      const out = await app.callValue(name, parseJsonBody(body), callOptions);
      send(res, 200, 'application/json; charset=utf-8', toJson(out));
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, expectContinue: boolean): Promise<void> => {
    const method = req.method ?? 'GET';
    // Only the path is used, and only to pick a route: nothing here maps a URL to a file.
    const target = req.url ?? '/';
    let url: URL;
    try {
      // Origin-form only; prefixing keeps `//x` a path instead of a host.
      if (!target.startsWith('/')) throw new TypeError('not origin-form');
      url = new URL(`http://localhost${target}`);
    } catch {
      throw new HttpError(400, 'BAD_REQUEST', 'malformed request target');
    }
    const path = url.pathname;
    if (path === '/healthz') {
      if (!allow(res, 'GET, HEAD', method)) return;
      if (appStopped) sendJson(res, 503, { status: 'stopped' });
      else sendJson(res, 200, { status: 'ok' });
      return;
    }
    if (authorized && !authorized(req.headers.authorization)) {
      const wrong = req.headers.authorization !== undefined;
      throw new HttpError(401, 'UNAUTHORIZED', wrong ? 'invalid bearer token' : 'missing bearer token', {
        'WWW-Authenticate': wrong ? 'Bearer realm="ssm", error="invalid_token"' : 'Bearer realm="ssm"',
      });
    }
    if (path === '/metrics') {
      if (allow(res, 'GET, HEAD', method)) send(res, 200, PROMETHEUS, app.prometheus());
      return;
    }
    if (path === '/v1/machines') {
      if (!allow(res, 'GET, HEAD', method)) return;
      const tree = app.status();
      sendJson(res, 200, { queueDepth: app.queueDepth, machines: flatten(tree), tree });
      return;
    }
    if (path === '/v1/checkpoint') {
      if (!allow(res, 'POST', method)) return;
      const name = url.searchParams.get('name') ?? undefined;
      const snapshots = await app.checkpoint(name);
      sendJson(res, 200, { snapshots });
      return;
    }
    const m = /^\/v1\/machines\/([^/]+)\/call$/.exec(path);
    if (m) {
      if (!allow(res, 'POST', method)) return;
      let name: string;
      try {
        name = decodeURIComponent(m[1]!);
      } catch {
        throw new HttpError(400, 'BAD_REQUEST', 'malformed machine name in path');
      }
      await call(req, res, name, expectContinue);
      return;
    }
    throw new HttpError(404, 'NOT_FOUND', `no route for ${method} ${path}`);
  };

  let closing: Promise<void> | null = null;
  const onRequest = (expectContinue: boolean) => (req: IncomingMessage, res: ServerResponse): void => {
    // A keep-alive connection that goes idle while the server is closing would hold close() open.
    res.once('finish', () => {
      if (closing) setImmediate(() => server.closeIdleConnections());
    });
    // A body we refuse without reading (wrong token, route, type) is not drained: close instead.
    handle(req, res, expectContinue).catch((err: unknown) => {
      noteError(err);
      sendError(res, err, req.complete ? {} : { Connection: 'close' });
    });
  };

  const server = createServer(
    {
      keepAlive: true,
      requestTimeout: requestTimeoutMs,
      headersTimeout: headersTimeoutMs,
      keepAliveTimeout: keepAliveTimeoutMs,
      // Node enforces requestTimeout/headersTimeout on this period; its default (30 s) is too coarse.
      connectionsCheckingInterval: Math.min(1000, headersTimeoutMs, requestTimeoutMs),
    },
    onRequest(false),
  );
  server.maxConnections = maxConnections;
  server.on('checkContinue', onRequest(true));
  // Connections that never sent a byte are not "idle" to node:http, so closeIdleConnections()
  // leaves them, and one pre-connected client would hold close() for the whole grace time.
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (socket: import('node:net').Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const closeSilent = (): void => {
    for (const socket of sockets) if (socket.bytesRead === 0) socket.destroy();
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  return {
    url: `http://${urlHost}:${address.port}`,
    host: address.address,
    port: address.port,
    server,
    close({ graceMs = 10_000 } = {}) {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
        closeSilent();
      });
      return closing;
    },
  };
}
