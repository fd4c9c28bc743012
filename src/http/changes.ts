import type { IncomingMessage, ServerResponse } from 'node:http';
import type { App } from '../engine/application.js';
import type { ChangeEvent, Subscription, SubscriptionEnd } from '../engine/change-feed.js';
import { toJson } from '../encoding/json.js';
import { SsmError, UnknownMachineError, describe } from '../errors.js';
import { HttpError } from './responses.js';

/** Comment lines sent when nothing else is, so proxies and clients see a live stream. */
const HEARTBEAT_MS = 15_000;

/**
 * `GET /v1/machines/:name/changes?from=SEQ` as server-sent events: one `id: SEQ` / `data: JSON`
 * event per committed request (`{machine, seq, input, output}`, JSON as everywhere else), from
 * SEQ (or after `Last-Event-ID`, as a reconnecting EventSource sends it; default: live only).
 * A client that does not read is cut off like any slow subscriber: a final `event: error` names
 * the seq to resume from, then the stream ends.
 */
export function streamChanges(app: App, name: string, req: IncomingMessage, res: ServerResponse, url: URL): void {
  const fromSeq = startSeq(url.searchParams.get('from'), req.headers['last-event-id']);
  // Refusals (404, 400) before anything is sent: the listener may write as soon as it subscribes.
  if (!app.machines().includes(name)) throw new UnknownMachineError(name);
  res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', Connection: 'keep-alive' });
  res.write(`: following ${name}\n\n`);
  const listener = (e: ChangeEvent): Promise<void> | undefined => {
    if (res.write(`id: ${e.seq}\nevent: change\ndata: ${toJson(e)}\n\n`)) return undefined;
    // The client reads slowly: wait for it (the subscription's buffer, not the socket's, then fills).
    return new Promise<void>((r) => {
      res.once('drain', () => r());
      res.once('close', () => r());
    });
  };
  let sub: Subscription;
  try {
    sub = app.subscribe(name, fromSeq === undefined ? {} : { fromSeq }, listener);
  } catch (err) {
    // The application stopped meanwhile: the headers are out, so the refusal is the stream's last event.
    res.end(errorEvent(err, fromSeq ?? 0));
    return;
  }
  const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), HEARTBEAT_MS);
  heartbeat.unref();
  res.once('close', () => sub.close());
  void sub.ended.then((end: SubscriptionEnd) => {
    clearInterval(heartbeat);
    if (res.writableEnded || res.destroyed) return;
    res.end(end.reason === 'error' ? errorEvent(end.error, sub.lastSeq + 1) : undefined);
  });
}

/** The last event of a stream that ended on an error: what happened, and where to resume. */
function errorEvent(err: unknown, resumeFrom: number): string {
  const body = err instanceof SsmError ? { code: err.code, message: err.message, resumeFrom } : { code: 'INTERNAL', message: describe(err), resumeFrom };
  return `event: error\ndata: ${JSON.stringify(body)}\n\n`;
}

function startSeq(from: string | null, lastEventId: string | string[] | undefined): number | undefined {
  const last = Array.isArray(lastEventId) ? lastEventId[0] : lastEventId;
  const text = from ?? (last !== undefined ? String(Number(last) + 1) : null);
  if (text === null) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) throw new HttpError(400, 'BAD_REQUEST', `from (or Last-Event-ID) must be a seq >= 1, got ${JSON.stringify(from ?? last)}`);
  return Number(text);
}
