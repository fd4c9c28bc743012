import { createServer } from 'node:net';
import { SsmError } from '../errors.js';

/**
 * Fails fast when `host:port` cannot be listened on (in use, not permitted), by binding it and
 * letting go at once: `ssm serve` calls it before opening the database, so a busy port costs
 * milliseconds instead of a recovery of every machine. Port 0 (any free port) always works.
 * The port could still be taken between this check and the real listen; then serve() fails
 * as it always did, after recovery.
 */
export async function assertPortFree(host: string, port: number): Promise<void> {
  if (port === 0) return;
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', (err: NodeJS.ErrnoException) => {
      const what =
        err.code === 'EADDRINUSE'
          ? `port ${port} on ${host} is already in use`
          : err.code === 'EACCES'
            ? `port ${port} on ${host} needs more privileges (ports below 1024 usually do)`
            : `cannot listen on ${host}:${port} (${err.code ?? err.message})`;
      reject(new SsmError('PORT_UNAVAILABLE', `${what}: stop what holds it, or pass --port N (0 for any free port); the database was not opened`));
    });
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve()));
  });
}
