import type { IncomingMessage, ServerResponse } from 'node:http';
import type { App } from '../engine/application.js';
import { checkIdempotencyKey } from '../engine/idempotency.js';
import type { CallOptions } from '../engine/options.js';
import { parseUntrustedJson, toJson } from '../encoding/json.js';
import { DecodeError, SsmError, describe } from '../errors.js';
import { bearerChecker } from './auth.js';
import { streamChanges } from './changes.js';
import { readBody } from './body.js';
import { machineInfos } from './machine-info.js';
import type { ResolvedServeOptions } from './options.js';
import { HttpError, send, sendError, sendJson } from './responses.js';

const CBOR = 'application/cbor';
const JSON_TYPE = 'application/json';
const JSON_REPLY = 'application/json; charset=utf-8';
const PROMETHEUS = 'text/plain; version=0.0.4; charset=utf-8';

/** One request as a route sees it. */
interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  /** The groups of the route's path pattern, still percent-encoded. */
  readonly params: readonly string[];
  /** The client sent `Expect: 100-continue` and waits for a go-ahead before the body. */
  readonly expectContinue: boolean;
}

interface Route {
  /** The exact path, or a pattern whose groups become {@link Exchange.params}. */
  readonly path: string | RegExp;
  /** The methods served, spelled as the Allow header of a 405 sends them. */
  readonly methods: string;
  /** Served without the token, so a liveness probe needs no secret. */
  readonly open?: boolean;
  readonly run: (x: Exchange) => void | Promise<void>;
}

/**
 * Answers the requests of one {@link serve} endpoint: picks the route, checks its method and the
 * token, and maps every failure to an error reply (see `errorResponse` in responses.ts).
 */
export class Router {
  private readonly routes: readonly Route[] = [
    { path: '/healthz', methods: 'GET, HEAD', open: true, run: (x) => this.healthz(x) },
    { path: '/metrics', methods: 'GET, HEAD', run: (x) => this.metrics(x) },
    { path: '/v1/machines', methods: 'GET, HEAD', run: (x) => this.machines(x) },
    { path: '/v1/checkpoint', methods: 'POST', run: (x) => this.checkpoint(x) },
    // Greedy: an entity's name '<family>/<key>' may hold '/' (or send it as %2F).
    { path: /^\/v1\/machines\/(.+)\/call$/, methods: 'POST', run: (x) => this.call(x) },
    { path: /^\/v1\/entities\/([^/]+)$/, methods: 'GET, HEAD', run: (x) => this.entities(x) },
    { path: /^\/v1\/machines\/([^/]+)\/release$/, methods: 'POST', run: async ({ res, params }) => sendJson(res, 200, { released: await this.app.release(machineName(params[0]!)) }) },
    { path: /^\/v1\/machines\/([^/]+)\/changes$/, methods: 'GET', run: ({ req, res, url, params }) => streamChanges(this.app, machineName(params[0]!), req, res, url) },
  ];
  private readonly authorized: ((authorization: string | undefined) => boolean) | null;
  private appStopped = false;

  constructor(
    private readonly app: App,
    private readonly options: ResolvedServeOptions,
  ) {
    this.authorized = options.token === undefined ? null : bearerChecker(options.token);
    void app.stopped.then(() => (this.appStopped = true));
  }

  /** Answers one request. Never throws: every failure becomes an error reply. */
  handle(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void {
    this.dispatch(req, res, expectContinue).catch((err: unknown) => {
      // A body we refuse without reading (wrong token, route, type) is not drained: close instead.
      this.refuse(res, err, req.complete ? {} : { Connection: 'close' });
    });
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): Promise<void> {
    const method = req.method ?? 'GET';
    const url = requestUrl(req.url ?? '/');
    const found = this.match(url.pathname);
    // Unknown paths need the token too: a 404 would tell a stranger which routes exist.
    if (!found?.route.open) this.checkToken(req);
    if (!found) throw new HttpError(404, 'NOT_FOUND', `no route for ${method} ${url.pathname}`);
    const { route, params } = found;
    if (!route.methods.split(', ').includes(method)) {
      this.refuse(res, new HttpError(405, 'METHOD_NOT_ALLOWED', `method ${method} not allowed here; use ${route.methods}`, { Allow: route.methods }));
      return;
    }
    await route.run({ req, res, url, params, expectContinue });
  }

  private match(path: string): { route: Route; params: string[] } | null {
    for (const route of this.routes) {
      if (route.path === path) return { route, params: [] };
      const m = typeof route.path === 'string' ? null : route.path.exec(path);
      if (m) return { route, params: m.slice(1) };
    }
    return null;
  }

  private checkToken(req: IncomingMessage): void {
    if (!this.authorized || this.authorized(req.headers.authorization)) return;
    const wrong = req.headers.authorization !== undefined;
    throw new HttpError(401, 'UNAUTHORIZED', wrong ? 'invalid bearer token' : 'missing bearer token', {
      'WWW-Authenticate': wrong ? 'Bearer realm="ssm", error="invalid_token"' : 'Bearer realm="ssm"',
    });
  }

  /**
   * `GET /healthz`: 503 once the application has stopped, so a probe sees a dead backend.
   * While storage refuses writes it stays 200 (the process is alive and serves reads; restarting
   * it would not free the disk) with `status: "degraded"` and `storage: "failing"`, the time it
   * started failing and the last storage error. `integrity` is the start-up quick_check's state
   * (`checking`, `ok`, `failed` with the damaged tables, or `not-checked`); a failed one makes
   * the status `degraded` too.
   */
  private healthz({ res }: Exchange): void {
    const h = this.app.health();
    if (this.appStopped || h.status === 'stopped') sendJson(res, 503, { status: 'stopped' });
    else if (h.storage.status === 'ok') sendJson(res, 200, { status: h.status, storage: 'ok', integrity: h.integrity });
    else sendJson(res, 200, { status: 'degraded', storage: 'failing', since: h.storage.since, error: h.storage.lastError, integrity: h.integrity });
  }

  /** `GET /metrics`: Prometheus text format. */
  private metrics({ res }: Exchange): void {
    send(res, 200, PROMETHEUS, this.app.prometheus());
  }

  /** `GET /v1/machines`: the supervision tree, and the same workers as a flat list. */
  private machines({ res }: Exchange): void {
    const tree = this.app.status();
    sendJson(res, 200, { queueDepth: this.app.queueDepth, machines: machineInfos(tree), tree });
  }

  /**
   * `GET /v1/entities/:family?prefix=&after=&limit=`: a page of the family's registered
   * entities in key order (limit default 100, at most 1000), with `next`, the `after` of the
   * next page (null on the last one).
   */
  private async entities({ res, url, params }: Exchange): Promise<void> {
    const q = url.searchParams;
    const limitText = q.get('limit');
    const limit = limitText === null ? 100 : /^\d{1,4}$/.test(limitText) ? Number(limitText) : Number.NaN;
    if (!(limit >= 1 && limit <= 1000)) throw new HttpError(400, 'BAD_REQUEST', `limit must be an integer in 1..1000, got ${JSON.stringify(limitText)}`);
    const page = await this.app.entities(machineName(params[0]!), { prefix: q.get('prefix') ?? '', after: q.get('after') ?? '', limit });
    sendJson(res, 200, { entities: page, next: page.length === limit ? page.at(-1)!.key : null });
  }

  /** `POST /v1/checkpoint[?name=MACHINE]`: snapshots now; replies with the snapshots written. */
  private async checkpoint({ res, url }: Exchange): Promise<void> {
    const snapshots = await this.app.checkpoint(url.searchParams.get('name') ?? undefined);
    sendJson(res, 200, { snapshots });
  }

  /**
   * `POST /v1/machines/:name/call`: a CBOR body goes to the machine's codec as bytes and the
   * reply is CBOR; a JSON body is parsed here, validated by the machine, and answered in JSON.
   */
  private async call({ req, res, params, expectContinue }: Exchange): Promise<void> {
    const name = machineName(params[0]!);
    const type = mediaType(req.headers['content-type']);
    if (type !== CBOR && type !== JSON_TYPE) {
      throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', `Content-Type must be ${CBOR} or ${JSON_TYPE}, got ${JSON.stringify(req.headers['content-type'] ?? '')}`, { Accept: `${CBOR}, ${JSON_TYPE}` });
    }
    const body = await this.readBody(req, res, expectContinue);
    if (body === null) return;
    const callOptions = withIdempotencyKey(this.options.callOptions, req.headers['idempotency-key']);
    if (type === CBOR) send(res, 200, CBOR, await this.app.callBytes(name, body, callOptions));
    else send(res, 200, JSON_REPLY, toJson(await this.app.callValue(name, parseJsonBody(body), callOptions)));
  }

  /** The request body, or null once its refusal (400, 408, 413) has been sent. */
  private async readBody(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): Promise<Buffer | null> {
    const { maxBodyBytes, bodyTimeoutMs } = this.options;
    try {
      // Refusing an oversized Content-Length happens before the client is told to continue.
      const reading = readBody(req, maxBodyBytes, bodyTimeoutMs);
      if (expectContinue && Number(req.headers['content-length'] ?? 0) <= maxBodyBytes) res.writeContinue();
      return await reading;
    } catch (err) {
      // The rest of the body is never read: the connection cannot be reused.
      this.refuse(res, err, { Connection: 'close' });
      return null;
    }
  }

  /**
   * Sends the error reply and accounts for it. Engine errors are already counted by the
   * application; refusals of the HTTP layer are counted here, and anything else is a bug whose
   * details belong in the server's log, not in the reply.
   */
  private refuse(res: ServerResponse, err: unknown, headers: Record<string, string> = {}): void {
    if (err instanceof HttpError) this.app.metrics.error(err.code);
    else if (!(err instanceof SsmError)) this.options.onInternalError(err);
    sendError(res, err, headers);
  }
}

/** The request target as a URL; only its path and query are ever used, to pick a route. */
function requestUrl(target: string): URL {
  // Origin-form only; prefixing keeps `//x` a path instead of a host.
  if (target.startsWith('/')) {
    try {
      return new URL(`http://localhost${target}`);
    } catch {
      // falls through to the 400
    }
  }
  throw new HttpError(400, 'BAD_REQUEST', 'malformed request target');
}

/** The call options with the request's `Idempotency-Key` header, checked (400 when malformed). */
function withIdempotencyKey(options: CallOptions, header: string | string[] | undefined): CallOptions {
  if (header === undefined) return options;
  if (Array.isArray(header)) throw new HttpError(400, 'BAD_REQUEST', 'more than one Idempotency-Key header');
  try {
    return { ...options, idempotencyKey: checkIdempotencyKey(header) };
  } catch (err) {
    throw new HttpError(400, 'BAD_REQUEST', `Idempotency-Key: ${describe(err)}`);
  }
}

function machineName(encoded: string): string {
  try {
    return decodeURIComponent(encoded);
  } catch {
    throw new HttpError(400, 'BAD_REQUEST', 'malformed machine name in path');
  }
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
