import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { ConnectionTable } from './connections.js';
import { resolveServeOptions, type ServeOptions } from './options.js';
import { Router } from './routes.js';

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
 *
 * Connections: at most `maxConnections`, at most `maxConnectionsPerAddress` per address; a
 * newcomer beyond a limit evicts the connection waiting longest for its request headers, and is
 * refused only when none is waiting (see src/http/connections.ts).
 *
 * @throws ConfigError for an invalid option (see {@link resolveServeOptions}), before listening.
 */
export async function serve(options: ServeOptions): Promise<HttpEndpoint> {
  const resolved = resolveServeOptions(options);
  const { host, port, headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs } = resolved;
  const router = new Router(options.app, resolved);
  // The connection cap is ours, not node's (server.maxConnections refuses every newcomer when
  // full): a newcomer may take the place of a connection that is slow to send its headers.
  const connections = new ConnectionTable<Socket>(resolved, (socket) => socket.bytesRead);

  let closing: Promise<void> | null = null;
  const onRequest = (expectContinue: boolean) => (req: IncomingMessage, res: ServerResponse): void => {
    const { socket } = req;
    connections.requestStarted(socket);
    res.once('close', () => connections.requestEnded(socket));
    // A keep-alive connection that goes idle while the server is closing would hold close() open.
    res.once('finish', () => {
      if (closing) setImmediate(() => server.closeIdleConnections());
    });
    router.handle(req, res, expectContinue);
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
  server.on('checkContinue', onRequest(true));
  // Connections that never sent a byte are not "idle" to node:http, so closeIdleConnections()
  // leaves them, and one pre-connected client would hold close() for the whole grace time.
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    const admission = connections.admit(socket, socket.remoteAddress);
    if (!admission.admit) {
      socket.destroy();
      return;
    }
    admission.evict?.destroy();
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      connections.remove(socket);
    });
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
