import type { Readable } from 'node:stream';

/**
 * Calls `onLine` for each complete line a child writes to `stream`. The unterminated tail waits
 * for its newline, so a line (an ack, say) is never seen half-written.
 */
export function eachLine(stream: Readable, onLine: (line: string) => void): void {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    for (const line of parts) onLine(line);
  });
}
