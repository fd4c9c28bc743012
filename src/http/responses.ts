import type { ServerResponse } from 'node:http';
import {
  ApplicationStoppedError,
  CallTimeoutError,
  DecodeError,
  EncodeError,
  IdempotencyKeyReusedError,
  MachineCrashedError,
  MachineHeldError,
  MachineRestartingError,
  MachineStoppedError,
  PayloadTooLargeError,
  QueueFullError,
  RecoveryError,
  SsmError,
  StartError,
  StorageError,
  UnknownMachineError,
  describe,
} from '../errors.js';

/** An error raised by the HTTP layer itself (routing, media type, auth, body limits). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** The JSON error body of every failed request. */
export interface ErrorBody {
  error: { code: string; name: string; message: string; cause?: { name: string; message: string } };
}

/** Seconds a client should wait after a 503 for a full queue. */
export const RETRY_AFTER_SECONDS = 1;

/** Maps any thrown value to a status, headers and the JSON error body. */
export function errorResponse(err: unknown): { status: number; headers: Record<string, string>; body: ErrorBody } {
  if (err instanceof HttpError) return { status: err.status, headers: err.headers, body: { error: { code: err.code, name: err.name, message: err.message } } };
  if (err instanceof SsmError) {
    const body: ErrorBody = { error: { code: err.code, name: err.name, message: err.message } };
    let status = 500;
    const headers: Record<string, string> = {};
    if (err instanceof UnknownMachineError) status = 404;
    else if (err instanceof DecodeError) status = 400;
    else if (err instanceof IdempotencyKeyReusedError) status = 422;
    else if (err instanceof PayloadTooLargeError) status = 413;
    else if (err instanceof QueueFullError) {
      status = 503;
      headers['Retry-After'] = String(RETRY_AFTER_SECONDS);
    } else if (err instanceof MachineRestartingError) {
      status = 503;
      headers['Retry-After'] = String(Math.max(1, Math.ceil(err.retryAfterMs / 1000)));
    } else if (err instanceof CallTimeoutError) status = 504;
    else if (err instanceof StorageError || err instanceof ApplicationStoppedError || err instanceof MachineStoppedError || err instanceof MachineHeldError) status = 503;
    else if (err instanceof StartError || err instanceof RecoveryError) {
      // A machine released (POST .../release) that fails to start again: it is unavailable, the
      // server is fine; the cause says why, as for a crash.
      status = 503;
      if (err.cause !== undefined) body.error.cause = causeOf(err.cause);
    } else if (err instanceof MachineCrashedError) body.error.cause = causeOf(err.cause); else if (err instanceof EncodeError) status = 500;
    return { status, headers, body };
  }
  // Anything else is a bug on our side; its details stay in the server's log.
  return { status: 500, headers: {}, body: { error: { code: 'INTERNAL', name: 'Error', message: 'internal server error' } } };
}

/** The `cause` of an error body: what a crash or a failed start threw. */
function causeOf(cause: unknown): { name: string; message: string } {
  return { name: cause instanceof Error ? cause.name : typeof cause, message: describe(cause) };
}

const COMMON_HEADERS = { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' } as const;

/** Writes a complete response, unless one was already started. */
export function send(res: ServerResponse, status: number, contentType: string, body: string | Uint8Array, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.writableEnded) return;
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  res.writeHead(status, { ...COMMON_HEADERS, ...headers, 'Content-Type': contentType, 'Content-Length': String(bytes.byteLength) });
  res.end(bytes);
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value), headers);
}

export function sendError(res: ServerResponse, err: unknown, extraHeaders: Record<string, string> = {}): void {
  const { status, headers, body } = errorResponse(err);
  sendJson(res, status, body, { ...headers, ...extraHeaders });
}
