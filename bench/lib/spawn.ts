import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { BENCH_DIR, ROOT_DIR } from './common.js';

const CHILD = join(BENCH_DIR, 'child.ts');

/** Runs bench/child.ts in a fresh Node process and returns its one JSON line. */
export function runChild<T>(args: string[], nodeArgs: string[] = []): Promise<T> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', CHILD, ...args], { cwd: ROOT_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => {
      const line = out.trim().split('\n').pop();
      if (code !== 0 || !line) return reject(new Error(`child ${args[0]} exited ${code}: ${err.trim() || out.trim()}`));
      try {
        resolve(JSON.parse(line) as T);
      } catch (e) {
        reject(new Error(`child ${args[0]} printed no JSON: ${line}`));
      }
    });
  });
}

/** Starts bench/child.ts with an IPC channel (the chaos server). */
export function forkChild(args: string[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], { cwd: ROOT_DIR, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
}
