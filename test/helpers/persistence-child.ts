/**
 * Spawning and reading the KV child process (test/fixtures/kv-child.ts): a real process, so that
 * SIGKILL and the cross-process writer lock are exercised for real.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { eachLine } from './lines.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURE = fileURLToPath(new URL('../fixtures/kv-child.ts', import.meta.url));

export interface Child {
  readonly proc: ChildProcessWithoutNullStreams;
  /** Complete stdout lines received so far. */
  readonly lines: string[];
  /** Resolves when a line matching `pred` has arrived (rejects if the child ends first). */
  waitFor(pred: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  /** Resolves after the process has exited and its stdout is fully read. */
  readonly closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

export function spawnKvChild(args: readonly string[], env: NodeJS.ProcessEnv = {}): Child {
  return spawnChild(FIXTURE, args, env);
}

/** Spawns the fixture script `fixture` (a path) through tsx, reading its stdout lines. */
export function spawnChild(fixture: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', fixture, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const lines: string[] = [];
  let err = '';
  let waiters: { pred: (l: string) => boolean; resolve: (l: string) => void; reject: (e: Error) => void }[] = [];
  eachLine(proc.stdout, (line) => {
    lines.push(line);
    waiters = waiters.filter((w) => (w.pred(line) ? (w.resolve(line), false) : true));
  });
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c: string) => (err += c));
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on('close', (code, signal) => {
      for (const w of waiters) w.reject(new Error(`child ended (${code ?? signal}) before the expected line; stderr: ${err}`));
      waiters = [];
      resolve({ code, signal });
    });
  });
  const waitFor = (pred: (l: string) => boolean, timeoutMs = 30_000): Promise<string> => {
    const seen = lines.find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for a line from the child; stderr: ${err}`)), timeoutMs);
      waiters.push({
        pred,
        resolve: (l) => (clearTimeout(timer), resolve(l)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
    });
  };
  return { proc, lines, waitFor, closed, stderr: () => err };
}

/** SIGKILLs the child and waits until it is really gone (the writer lock is only taken over from a dead holder). */
export async function killHard(child: Child): Promise<void> {
  if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGKILL');
  await child.closed;
}
