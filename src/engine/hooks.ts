import type { Logger } from './logger.js';
import type { WorkerNode } from './runtime-tree.js';

/**
 * Runs a possibly-async hook under a grace time. Resolves to `ok`, `timeout` (the hook is
 * abandoned: its promise keeps running but nobody waits for it) or the error it threw.
 */
export async function runWithGrace(fn: () => void | Promise<void>, graceMs: number): Promise<{ outcome: 'ok' } | { outcome: 'timeout' } | { outcome: 'error'; error: unknown }> {
  let result: void | Promise<void>;
  try {
    result = fn();
  } catch (error) {
    return { outcome: 'error', error };
  }
  if (!result || typeof (result as Promise<void>).then !== 'function') return { outcome: 'ok' };
  if (!(graceMs <= 2 ** 31 - 1)) {
    // No grace limit (Infinity, or beyond what a timer can hold): wait for the hook.
    try {
      await result;
      return { outcome: 'ok' };
    } catch (error) {
      return { outcome: 'error', error };
    }
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => {
    timer = setTimeout(() => r('timeout'), graceMs);
  });
  try {
    const won = await Promise.race([(result as Promise<void>).then(() => 'ok' as const), timeout]);
    return { outcome: won };
  } catch (error) {
    return { outcome: 'error', error };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `w`'s `onStart` or `onTerminate` hook under its grace time, logging a timeout or a throw. */
export async function runHook(w: WorkerNode, hook: 'onStart' | 'onTerminate', log: Logger): Promise<void> {
  const fn = hook === 'onStart' ? () => w.machine.onStart!(w.name, w.state) : () => w.machine.onTerminate!(w.name, w.state);
  const r = await runWithGrace(fn, w.shutdownMs);
  if (r.outcome === 'timeout') log({ type: 'hook_timeout', machine: w.name, hook, ms: w.shutdownMs });
  else if (r.outcome === 'error') log({ type: 'hook_failed', machine: w.name, hook, error: r.error });
}
