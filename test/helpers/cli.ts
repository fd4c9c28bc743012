import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function collect(child: ChildProcess): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs `ssm <args>` as a child process (src/cli/main.ts through tsx), stdin closed, stderr not a TTY. */
export function runCli(args: readonly string[]): Promise<CliResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  return collect(child);
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'ssm-cli-'));
}

/** Builds a database with test/fixtures/cli-app.ts; `abandon` leaves the log tail unsnapshotted. */
export async function buildDb(db: string, kind: 'kv' | 'counter', mode: 'abandon' | 'stop'): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/cli-app.ts', db, kind, mode], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const r = await collect(child);
  if (r.code !== 0) throw new Error(`fixture failed (${r.code}): ${r.stderr}`);
}

/** Copies a database (and its WAL, which an abandoned application leaves behind) to a fresh temp dir. */
export function copyDb(db: string): string {
  const to = join(tempDir(), 'copy.db');
  copyFileSync(db, to);
  if (existsSync(`${db}-wal`)) copyFileSync(`${db}-wal`, `${to}-wal`);
  return to;
}

/** Starts an application holding `db` in a child process; resolves once it is ready. */
export async function holdDb(db: string): Promise<{ release(): Promise<CliResult> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/cli-app.ts', db, 'kv', 'hold'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  const done = collect(child);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolve();
    });
    child.on('close', (code) => reject(new Error(`holder exited early (${code})`)));
  });
  return {
    release: async () => {
      child.stdin!.end();
      return done;
    },
  };
}
