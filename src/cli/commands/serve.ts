import { readFileSync } from 'node:fs';
import { startApplication } from '../../engine/application.js';
import { ConfigError } from '../../errors.js';
import { serveTree } from '../../kv/demo.js';
import { resolveServeOptions, type ServeOptions } from '../../http/options.js';
import { serve } from '../../http/server.js';
import { resolveRespOptions } from '../../resp/options.js';
import { serveResp } from '../../resp/server.js';
import { DEFAULT_DB_PATH, type Durability } from '../../storage/store-options.js';
import { intFlag, parseCommand } from '../args.js';
import { announcingNewDatabase, usageGuard } from '../common.js';
import { assertPortFree } from '../port.js';

export const summary = 'serve the KV tree (kv1, kv2, kv3, accounts/*) over HTTP on 127.0.0.1:7411';

const USAGE = `Usage: ssm serve [--db PATH] [--no-create] [--host H] [--port N] [--token T] [--durability full|normal] [--readable]
                 [--resp-port N]

Starts the KV application of the demo tree one_for_one[kv1, rest_for_one[kv2, kv3]] with the
entity family accounts (a KV machine per key, accounts/KEY, woken on demand) and serves it over
HTTP. Prints "listening on URL" on stdout once ready; lifecycle events go to stderr,
and so does "created new database at PATH" when --db named no existing file. A port that is
in use is refused before the database is opened.
SIGINT/SIGTERM: stops accepting, finishes queued work, checkpoints every machine, closes the
database and exits 0. A second signal more than 1 s after the first exits at once (130).

Routes:
  POST /v1/machines/NAME/call   body application/cbor or application/json, e.g.
                                {"op":"store","key":"x","value":1}, {"op":"lookup","key":"x"}
  POST /v1/machines/accounts/KEY/call   the same, on entity KEY of the family accounts
  GET  /v1/entities/accounts[?prefix=P&after=K&limit=N]   its registered keys, a page
  GET  /v1/machines             supervision tree, status, restarts, sequence numbers
  POST /v1/checkpoint[?name=M]  snapshot now
  GET  /metrics                 Prometheus text format
  GET  /healthz                 liveness (no token needed)

Options:
  --db PATH                  database file (default ${DEFAULT_DB_PATH}); created, with its
                             folder, if missing
  --no-create                refuse to start (exit 1, nothing created) if --db does not exist
  --host H                   interface to listen on (default 127.0.0.1, loopback only)
  --port N                   TCP port, 0 for any free port (default 7411)
  --token T                  require "Authorization: Bearer T" (default: env SSM_TOKEN)
  --durability full|normal   full: fsync before every reply (default); normal: survives a
                             process crash, may lose the last commits on power loss
  --readable                 keep readable tables for the sqlite3 CLI (kv_entries, requests,
                             machine_states; costs write throughput): see the README
  --max-body-bytes N         largest request body (default 1048576)
  --max-connections N        concurrent connections (default 256)
  --resp-port N              also speak the Redis protocol (RESP2/3) on this port, 0 for any
                             free one (same host and token; SELECT n is the (n+1)-th machine);
                             prints "resp listening on redis://HOST:PORT"`;

export async function run(argv: string[]): Promise<number> {
  return usageGuard('serve', async () => {
    const { values } = parseCommand(
      argv,
      {
        db: { type: 'string' },
        'no-create': { type: 'boolean' },
        readable: { type: 'boolean' },
        host: { type: 'string' },
        port: { type: 'string' },
        token: { type: 'string' },
        durability: { type: 'string' },
        'max-body-bytes': { type: 'string' },
        'max-connections': { type: 'string' },
        'resp-port': { type: 'string' },
      },
      USAGE,
      false,
    );
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    const durability = values.durability ?? 'full';
    if (durability !== 'full' && durability !== 'normal') throw new ConfigError(`--durability must be full or normal, got ${JSON.stringify(durability)}`);
    const options = {
      host: values.host,
      port: intFlag('port', values.port) ?? 7411,
      token: values.token ?? (process.env['SSM_TOKEN'] || undefined),
      maxBodyBytes: intFlag('max-body-bytes', values['max-body-bytes']),
      maxConnections: intFlag('max-connections', values['max-connections']),
    };
    // Refuse a bad command line before any database is opened.
    const { host, port } = resolveServeOptions(options);
    const respPort = intFlag('resp-port', values['resp-port']);
    if (respPort !== undefined) resolveRespOptions({ host, port: respPort, token: options.token });
    // Then refuse a busy port, still before any database is opened (or created).
    await assertPortFree(host, port);
    if (respPort) await assertPortFree(host, respPort);
    return serveUntilSignalled(values.db ?? DEFAULT_DB_PATH, { durability, create: !values['no-create'], readable: values.readable === true }, options, respPort);
  });
}

/** A signal this long after the first one to stop forces the exit; sooner, it is a relay of the first. */
const FORCE_AFTER_MS = 1000;

/**
 * SIGINT/SIGTERM as one state: the first stops gracefully; a later one while draining means
 * "now" (exit 130). Ctrl-C under `npm start` reaches us twice, from the terminal (the whole
 * foreground group) and from npm, which relays what it receives to its child: a signal within
 * FORCE_AFTER_MS of the first is that same Ctrl-C. Once stopped, signals are ignored until the
 * process has exited: without a listener a late relay would kill it with the default action.
 */
class StopSignals {
  readonly first: Promise<string>;
  private resolve!: (signal: string) => void;
  private at = 0;
  private stopped = false;
  private readonly listener = (signal: string): void => this.received(signal);

  constructor() {
    this.first = new Promise<string>((resolve) => (this.resolve = resolve));
    process.on('SIGINT', this.listener);
    process.on('SIGTERM', this.listener);
  }

  received(signal: string): void {
    if (this.at === 0) {
      this.at = Date.now();
      this.resolve(signal);
    } else if (!this.stopped && Date.now() - this.at > FORCE_AFTER_MS) process.exit(130);
  }

  /** The graceful stop is over: keep ignoring signals if one started it, otherwise stop listening. */
  done(): void {
    this.stopped = true;
    if (this.at !== 0) return;
    process.off('SIGINT', this.listener);
    process.off('SIGTERM', this.listener);
  }
}

async function serveUntilSignalled(db: string, storage: { durability: Durability; create: boolean; readable: boolean }, options: Omit<ServeOptions, 'app'>, respPort?: number): Promise<number> {
  // Signals are caught from the start: one that arrives during recovery stops the server
  // gracefully as soon as it is up, instead of killing the process mid-start.
  const signals = new StopSignals();
  const orphanWatch = watchForOrphaning((reason) => signals.received(reason));
  try {
    const app = await announcingNewDatabase(db, async (announce) => {
      const started = await startApplication(serveTree(), { db, ...storage });
      announce();
      return started;
    });
    let endpoint;
    let resp;
    try {
      endpoint = await serve({ app, ...options });
      if (respPort !== undefined) resp = await serveResp({ app, host: options.host, port: respPort, token: options.token, maxConnections: options.maxConnections });
    } catch (err) {
      await endpoint?.close();
      await app.stop();
      throw err;
    }
    console.log(`listening on ${endpoint.url}`);
    if (resp) console.log(`resp listening on ${resp.url}`);

    // Wait for a signal, or for the application to stop on its own (root supervisor gave up).
    const outcome = await Promise.race([signals.first, app.stopped]);
    if (typeof outcome === 'string') {
      process.stderr.write(`[ssm] ${outcome}: closing the server, finishing queued work\n`);
      await Promise.all([endpoint.close(), resp?.close()]);
      await app.stop();
      return 0;
    }
    await Promise.all([endpoint.close({ graceMs: 1000 }), resp?.close({ graceMs: 1000 })]);
    if (outcome.reason === 'normal') return 0;
    process.stderr.write('[ssm] the application stopped after a failure; exiting\n');
    return 1;
  } finally {
    signals.done();
    if (orphanWatch) clearInterval(orphanWatch);
  }
}

/**
 * `npx ssm serve` runs us under `sh -c`: npm forwards SIGTERM to that shell, which dies without
 * passing it on, and we would be left running (holding the port and the database lock) with no
 * parent. So when npx started us through a shell whose only command is ours, that shell going
 * away means the same as SIGTERM. Nothing else is watched: a server started with `nohup ... &`,
 * from an npm script or not, must outlive its shell.
 */
function watchForOrphaning(onOrphaned: (reason: string) => void): NodeJS.Timeout | null {
  if (process.env['npm_command'] !== 'exec' || !parentIsNpxShell()) return null;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid !== parent) onOrphaned('SIGTERM (npx, which started us, exited)');
  }, 200);
  timer.unref();
  return timer;
}

/** Whether our parent is the `sh -c 'ssm ...'` that npx runs a package's bin through (Linux /proc; elsewhere, assumed). */
function parentIsNpxShell(): boolean {
  let args: string[];
  try {
    args = readFileSync(`/proc/${process.ppid}/cmdline`, 'utf8').split('\0');
  } catch {
    return true;
  }
  return args[1] === '-c' && /^'?ssm'?(\s|$)/.test(args[2] ?? '');
}
