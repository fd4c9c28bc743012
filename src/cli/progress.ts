/**
 * A hand-rolled progress bar for long replays and verifies. It draws on stderr only when stderr
 * is a terminal (never into a pipe or a log file), waits a moment before the first draw so quick
 * operations stay silent, and redraws at most every `intervalMs`.
 */

export interface Progress {
  /** Adds `n` units of work done. */
  add(n: number): void;
  /** Clears the bar. Idempotent. */
  done(): void;
}

export interface ProgressOptions {
  /** Default process.stderr. */
  stream?: Pick<NodeJS.WriteStream, 'write'> & { isTTY?: boolean; columns?: number };
  /** Minimum time between redraws, ms. Default 100. */
  intervalMs?: number;
  /** Time before the first draw, ms. Default 250. */
  delayMs?: number;
  /** Clock, for tests. */
  now?: () => number;
  /** Formats units for display (e.g. bytes). */
  unit?: (n: number) => string;
}

const silent: Progress = { add() {}, done() {} };

export function progress(label: string, total: number, options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  if (!stream.isTTY || !(total > 0)) return silent;
  const now = options.now ?? (() => performance.now());
  const interval = options.intervalMs ?? 100;
  const start = now();
  let nextDraw = start + (options.delayMs ?? 250);
  let done = 0;
  let drawn = false;
  let finished = false;
  const unit = options.unit ?? String;
  const draw = (): void => {
    const frac = Math.min(1, done / total);
    const width = Math.max(10, Math.min(30, (stream.columns ?? 80) - label.length - 40));
    const filled = Math.round(frac * width);
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    stream.write(`\r\x1b[K${label} [${bar}] ${Math.floor(frac * 100)}% ${unit(Math.min(done, total))}/${unit(total)}`);
    drawn = true;
  };
  return {
    add(n: number) {
      if (finished) return;
      done += n;
      const t = now();
      if (t < nextDraw) return;
      nextDraw = t + interval;
      draw();
    },
    done() {
      if (finished) return;
      finished = true;
      if (drawn) stream.write('\r\x1b[K');
    },
  };
}
