/** `ssm serve` as a child process, and a minimal keep-alive HTTP client for it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { cbor } from '../../src/encoding/cbor.js';
import { ROOT_DIR } from './common.js';

export interface Server {
  proc: ChildProcess;
  url: string;
  /** ms from spawn to the "listening on" line (process start + module load + recovery + listen). */
  readyMs: number;
  stderr: () => string;
}

/** Spawns `node bin/ssm.js serve --port 0 ...` and resolves once it prints "listening on URL". */
export function startServer(db: string, extra: string[] = []): Promise<Server> {
  const t0 = performance.now();
  const proc = spawn(process.execPath, [join(ROOT_DIR, 'bin/ssm.js'), 'serve', '--db', db, '--port', '0', '--max-connections', '2048', ...extra], { cwd: ROOT_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /listening on (\S+)/.exec(out);
      if (m) {
        proc.stdout!.off('data', onData);
        proc.stdout!.resume();
        resolve({ proc, url: m[1]!, readyMs: performance.now() - t0, stderr: () => err });
      }
    };
    proc.stdout!.on('data', onData);
    proc.once('exit', (code, sig) => reject(new Error(`ssm serve exited (${code ?? sig}) before listening: ${err.trim()}`)));
    proc.once('error', reject);
  });
}

export function stopServer(s: Server, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  return new Promise((resolve) => {
    if (s.proc.exitCode !== null || s.proc.signalCode !== null) return resolve();
    s.proc.once('exit', () => resolve());
    s.proc.kill(signal);
  });
}

export function agent(concurrency: number): Agent {
  return new Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
}

/** POST /v1/machines/NAME/call with a CBOR body; resolves with status and decoded body. */
export function callHttp(url: string, ag: Agent, machine: string, input: unknown): Promise<{ status: number; body: unknown }> {
  const body = cbor.encode(input);
  const u = new URL(`/v1/machines/${machine}/call`, url);
  return new Promise((resolve, reject) => {
    const req = request(
      { hostname: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent: ag, headers: { 'content-type': 'application/cbor', accept: 'application/cbor', 'content-length': body.byteLength } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const buf = Buffer.concat(chunks);
          let decoded: unknown = null;
          if (buf.length > 0) {
            try {
              decoded = (res.headers['content-type'] ?? '').includes('cbor') ? cbor.decode(buf) : buf.toString();
            } catch {
              decoded = buf.toString();
            }
          }
          resolve({ status: res.statusCode ?? 0, body: decoded });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
