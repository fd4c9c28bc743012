import { EXIT } from './common.js';

/**
 * Ctrl-C (SIGINT) during `verify`, `checkpoint` and `compact`: one line on stderr saying what
 * state the database was left in, the writer role released, exit 130. Without this the process
 * died silently and left its lock row behind (taken over later, but unexplained).
 *
 * A signal is acted on when the event loop next runs: a synchronous step already under way
 * (one machine's replay, a VACUUM, verify's checks) finishes first. SQLite transactions keep
 * the database consistent at every such point.
 */

type Close = () => Promise<void> | void;

const writers: Promise<Close | null>[] = [];
let interrupted: Promise<never> | null = null;

/**
 * Registers a writer being opened (an offline application, a Store): on Ctrl-C it is closed,
 * which releases the lock, once it is open. Returns the same promise.
 */
export function releaseOnInterrupt<T>(opening: Promise<T>, close: (opened: T) => Promise<void> | void): Promise<T> {
  writers.push(opening.then((opened) => () => close(opened), () => null));
  return opening;
}

async function onInterrupt(cmd: string): Promise<never> {
  // A second Ctrl-C while closing means "now".
  process.once('SIGINT', () => process.exit(EXIT.interrupted));
  let closed = 0;
  for (const pending of writers.reverse()) {
    const close = await pending;
    if (!close) continue;
    try {
      await close();
      closed++;
    } catch {
      // Closing twice, or after a failure: the next opener takes a stale lock over anyway.
    }
  }
  process.stderr.write(`ssm ${cmd}: interrupted: ${closed > 0 ? 'the database is consistent; the lock is released' : 'nothing was changed'}\n`);
  process.exit(EXIT.interrupted);
}

/** Runs a command body with the Ctrl-C handling above. */
export async function interruptible(cmd: string, body: () => Promise<number>): Promise<number> {
  const handler = (): void => {
    interrupted = onInterrupt(cmd);
  };
  process.once('SIGINT', handler);
  try {
    const code = await body();
    // A signal that came during the last synchronous step is delivered in the loop's poll
    // phase, which a chain of resolved promises never reaches: let a loop turn run it (a timer
    // and then an immediate; an immediate alone was seen to miss it).
    await new Promise((resolve) => setTimeout(resolve, 0));
    await new Promise((resolve) => setImmediate(resolve));
    if (interrupted) await interrupted;
    return code;
  } finally {
    process.off('SIGINT', handler);
    writers.length = 0;
  }
}
