import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { dispatch } from './commands.js';
import { encodeInto, error, type Protocol, type Reply } from './encoder.js';
import { resolveRespOptions, type RespOptions } from './options.js';
import { RespParser, RespProtocolError } from './parser.js';
import { CursorTable, Session, tokenChecker, type ServerContext } from './session.js';

/** A listening RESP endpoint, as returned by {@link serveResp}. */
export interface RespEndpoint {
  /** e.g. `redis://127.0.0.1:6380` */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** The underlying node:net server. */
  readonly server: Server;
  /**
   * Stops accepting, stops reading commands, and resolves once every command already received
   * is answered and its connection closed; a connection still open after `graceMs` (default
   * 10 s) is cut. Does not stop the application. Idempotent.
   */
  close(options?: { graceMs?: number }): Promise<void>;
}

/** A command's place in its connection's reply order. */
interface Slot {
  reply: Reply | null;
  /** Protocol the reply is encoded in: the connection's when the command ran (HELLO changes it). */
  proto: Protocol;
  /** Close the connection once this reply is written (QUIT, protocol error). */
  last: boolean;
}

/**
 * Serves the KV machines of an application over RESP2/RESP3, the Redis protocol, so redis-cli,
 * redis-benchmark and Redis client libraries work unchanged. See src/resp/commands.ts for the
 * commands, and the README ("Quick start: Redis protocol") for how keys and values map.
 *
 * Pipelining: every command that has arrived is started at once (the engine batches them into
 * one commit), and replies are written in request order. A write is answered only once the
 * engine has made it durable. At most `maxPipeline` commands of a connection are in flight.
 *
 * @throws ConfigError for an invalid option (see {@link resolveRespOptions}), before listening.
 */
export async function serveResp(options: RespOptions): Promise<RespEndpoint> {
  const resolved = resolveRespOptions(options);
  const ctx: ServerContext = {
    options: resolved,
    startedAt: Date.now(),
    port: resolved.port,
    connectionsReceived: 0,
    connectionsRejected: 0,
    commandsProcessed: 0,
    connected: 0,
    checkToken: tokenChecker(resolved.token),
    cursors: new CursorTable(),
  };
  const sockets = new Set<Socket>();
  let closing = false;
  let nextId = 1;
  /** Sockets to end once their pending replies are written (set by close()). */
  const drainers = new Set<() => void>();

  const onConnection = (socket: Socket): void => {
    ctx.connectionsReceived++;
    socket.on('error', () => socket.destroy());
    if (closing || sockets.size >= resolved.maxConnections) {
      ctx.connectionsRejected++;
      // Destroyed once written: a socket nobody reads would never see the client's FIN.
      socket.end('-ERR max number of clients reached\r\n', () => socket.destroy());
      return;
    }
    sockets.add(socket);
    ctx.connected++;
    socket.setNoDelay(true);
    const session = new Session(nextId++, ctx);
    const parser = new RespParser(resolved.limits);
    const slots: Slot[] = [];
    let head = 0;
    let ended = false;
    let pausedForPipeline = false;
    let slowTimer: NodeJS.Timeout | null = null;

    // Once the last reply is written the socket is closed outright, as Redis does: a paused,
    // half-closed socket would wait for the client's FIN that it no longer reads.
    const finish = (): void => void socket.end(() => socket.destroy());
    const endAfterReplies = (): void => {
      ended = true;
      socket.pause();
      if (head === slots.length) finish();
    };
    const flush = (): void => {
      const out: Buffer[] = [];
      let last = false;
      while (head < slots.length && slots[head]!.reply !== null) {
        const slot = slots[head]!;
        encodeInto(slot.reply!, slot.proto, out);
        head++;
        if (slot.last) {
          last = true;
          break;
        }
      }
      if (head === slots.length) {
        slots.length = 0;
        head = 0;
      }
      if (out.length > 0 && !socket.destroyed) socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
      if (last) {
        ended = true;
        finish();
        return;
      }
      if (ended && head === slots.length) finish();
      if (pausedForPipeline && slots.length - head <= resolved.maxPipeline / 2) {
        pausedForPipeline = false;
        if (!ended && !barrierPaused) socket.resume();
      }
    };
    // One write per connection per batch: replies settle together (one batch, one commit), so the
    // flush waits for the promise chains of all of them (a nextTick runs once the microtask queue
    // is empty) instead of writing each reply as it settles (16 writes for a pipeline of 16).
    let flushQueued = false;
    const queuedFlush = (): void => {
      flushQueued = false;
      if (!socket.destroyed) flush();
    };
    const settled = (slot: Slot, r: Reply): void => {
      slot.reply = r;
      if (slot === slots[head] && !flushQueued) {
        flushQueued = true;
        process.nextTick(queuedFlush);
      }
    };
    // Called once the command has run: a HELLO has already switched `session.protocol`.
    const enqueue = (reply: Reply | Promise<Reply>, last: boolean): void => {
      const slot: Slot = { reply: null, proto: session.protocol, last };
      slots.push(slot);
      if (reply instanceof Promise) void reply.then((r) => settled(slot, r));
      else slot.reply = reply;
    };

    // Parses and dispatches what has arrived, in order; stops at a barrier (an EXEC waiting for
    // its WATCH reads) and goes on from there once it has settled.
    let barrierPaused = false;
    const pump = (): void => {
      for (;;) {
        if (session.barrier) {
          const barrier = session.barrier;
          barrierPaused = true;
          socket.pause();
          void barrier.then(() => {
            if (session.barrier === barrier) session.barrier = null;
            barrierPaused = false;
            if (ended || socket.destroyed) return;
            pump();
            if (!pausedForPipeline && !barrierPaused && !ended) socket.resume();
          });
          break;
        }
        let args: Buffer[] | null;
        try {
          args = parser.next();
        } catch (err) {
          // As Redis: the error, then the connection closed (after the replies before it).
          const message = err instanceof RespProtocolError ? err.message : 'Protocol error';
          enqueue(error(`ERR ${message}`), true);
          ended = true;
          socket.pause();
          break;
        }
        if (args === null) break;
        ctx.commandsProcessed++;
        enqueue(dispatch(session, args), false);
        if (session.quitting) {
          slots[slots.length - 1]!.last = true;
          ended = true;
          socket.pause();
          break;
        }
      }
      flush();
      if (!ended && slots.length - head > resolved.maxPipeline) {
        pausedForPipeline = true;
        socket.pause();
      }
    };
    socket.on('data', (chunk: Buffer) => {
      if (ended) return;
      parser.push(chunk);
      pump();
      // Slow-client cut-off: a command begun must arrive whole within commandTimeoutMs.
      if (parser.partial && !ended) slowTimer ??= setTimeout(() => socket.destroy(), resolved.commandTimeoutMs);
      else if (slowTimer) {
        clearTimeout(slowTimer);
        slowTimer = null;
      }
    });
    const drain = endAfterReplies;
    drainers.add(drain);
    socket.once('close', () => {
      if (slowTimer) clearTimeout(slowTimer);
      drainers.delete(drain);
      sockets.delete(socket);
      ctx.connected--;
    });
  };

  const server = createServer(onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(resolved.port, resolved.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // A failed accept must not end the process: the listener keeps serving the others.
  server.on('error', (err) => resolved.onInternalError(err));
  const address = server.address() as AddressInfo;
  ctx.port = address.port;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closed: Promise<void> | null = null;
  return {
    url: `redis://${urlHost}:${address.port}`,
    host: address.address,
    port: address.port,
    server,
    close({ graceMs = 10_000 } = {}) {
      closed ??= new Promise<void>((resolve) => {
        closing = true;
        const timer = setTimeout(() => {
          for (const s of sockets) s.destroy();
        }, graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        for (const d of drainers) d();
      });
      return closed;
    },
  };
}
