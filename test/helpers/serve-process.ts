import { spawn, type ChildProcess } from 'node:child_process';
import { ROOT } from './cli.js';

/** A running `ssm serve` child process. */
export interface ServeProcess {
  child: ChildProcess;
  /** The match of `ready` against what it printed on stdout. */
  ready: RegExpExecArray;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Spawns `ssm serve ARGS` (from the sources, through tsx; SSM_TOKEN cleared unless `env` sets
 * it) and resolves once its stdout matches `ready`; rejects if it exits first. SIGKILLed at teardown.
 */
export function spawnServe(t: { teardown(fn: () => void): void }, args: string[], ready: RegExp, env: Record<string, string> = {}): Promise<ServeProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', ...args], {
    cwd: ROOT,
    env: { ...process.env, SSM_TOKEN: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const m = ready.exec(out);
      if (m) resolve({ child, ready: m, stderr: () => err, exited });
    });
    void exited.then(({ code }) => reject(new Error(`ssm serve exited with ${code} before listening: ${err}`)));
  });
}
