import type { IncomingMessage } from 'node:http';
import { HttpError } from './responses.js';

/**
 * Reads a request body of at most `maxBytes`, within `timeoutMs` for the whole body.
 * A declared Content-Length over the limit is refused before anything is read; a body that
 * grows past the limit stops being read at that point (nothing more is buffered). Both raise
 * a 413 HttpError; a body still incomplete at the deadline raises 408. After either, the caller
 * must close the connection (the rest of the body is never read).
 */
export function readBody(req: IncomingMessage, maxBytes: number, timeoutMs: number): Promise<Buffer> {
  const tooLarge = (size: string): HttpError => new HttpError(413, 'PAYLOAD_TOO_LARGE', `request body of ${size} exceeds the limit of ${maxBytes} bytes`);
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) return Promise.reject(tooLarge(`${declared} bytes`));
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (err: HttpError | null): void => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
      if (err) {
        req.pause();
        reject(err);
      } else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.byteLength;
      if (size > maxBytes) finish(tooLarge(`more than ${maxBytes} bytes`));
      else chunks.push(chunk);
    };
    const onEnd = (): void => finish(null);
    const onError = (): void => finish(new HttpError(400, 'BAD_REQUEST', 'request body could not be read'));
    const onAborted = (): void => finish(new HttpError(400, 'BAD_REQUEST', 'request aborted'));
    const timer = setTimeout(() => finish(new HttpError(408, 'REQUEST_TIMEOUT', `request body not received within ${timeoutMs} ms`)), timeoutMs);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}
