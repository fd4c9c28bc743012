/**
 * Spawning the fault fixtures (test/fixtures/faults-child.ts) as real processes, with an
 * environment (the crash point), collecting stdout lines as they arrive.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { eachLine } from './lines.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURE = fileURLToPath(new URL('../fixtures/faults-child.ts', import.meta.url));

export interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Complete lines only: a line cut by the kill is not counted. */
  readonly lines: string[];
  readonly stderr: string;
}

/**
 * Runs the fixture until it exits (or is SIGKILLed by its crash point). `killAfter` kills it
 * from outside once that many `ack` lines have arrived (for runs without a crash point);
 * `timeoutMs` is a safety net that fails loudly.
 */
export function runFixture(args: readonly string[], env: Record<string, string> = {}, options: { killAfter?: number; timeoutMs?: number } = {}): Promise<Finished> {
  const proc = spawn(process.execPath, ['--import', 'tsx', FIXTURE, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let stderr = '';
  let acks = 0;
  eachLine(proc.stdout, (line) => {
    lines.push(line);
    if (line.startsWith('ack ') && options.killAfter !== undefined && ++acks === options.killAfter) proc.kill('SIGKILL');
  });
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c: string) => (stderr += c));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`fixture ${args.join(' ')} did not finish in time; stderr: ${stderr}`));
    }, options.timeoutMs ?? 60_000);
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, lines, stderr });
    });
  });
}

/** `ack <machine> <key>` lines as [machine, key] pairs. */
export function acks(lines: readonly string[]): [string, string][] {
  return lines.filter((l) => l.startsWith('ack ')).map((l) => l.split(' ').slice(1) as [string, string]);
}
