/**
 * Connection and server commands: PING, ECHO, HELLO, AUTH, SELECT, CLIENT, INFO, CONFIG GET,
 * QUIT. INFO reports our own figures (app.status(), app.metrics), under Redis's section names
 * so that tools which read INFO find their way.
 */
import type { StatusNode } from '../engine/runtime-tree.js';
import { NIL, OK, array, bulk, error, int, map, simple, type Reply } from './encoder.js';
import type { Session } from './session.js';
import { NOT_INTEGER, ReplyError, SYNTAX, type Handler } from './string-commands.js';

/** The Redis version we answer to (HELLO, INFO): the command set we follow is Redis 7's. */
export const REDIS_COMPAT_VERSION = '7.0.0';

const WRONGPASS = error('WRONGPASS invalid username-password pair or user is disabled.');

function authenticate(s: Session, user: Buffer | undefined, password: Buffer): Reply | null {
  if (s.server.options.token === undefined) {
    return error('ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?');
  }
  // The token is checked even for a wrong user name: the same work on every path.
  const ok = s.server.checkToken(password) && (user === undefined || user.toString('latin1') === 'default');
  if (!ok) return WRONGPASS;
  s.authenticated = true;
  return null;
}

const hello: Handler = (s, a) => {
  let proto = s.protocol;
  if (a.length > 1) {
    const v = a[1]!.toString('latin1');
    if (v !== '2' && v !== '3') return error('NOPROTO unsupported protocol version');
    proto = v === '3' ? 3 : 2;
  }
  for (let i = 2; i < a.length; i++) {
    const opt = a[i]!.toString('latin1').toUpperCase();
    if (opt === 'AUTH' && i + 2 < a.length) {
      const refused = authenticate(s, a[i + 1], a[i + 2]!);
      if (refused) return refused;
      i += 2;
    } else if (opt === 'SETNAME' && i + 1 < a.length) s.name = a[++i]!.toString('utf8');
    else throw new ReplyError(SYNTAX);
  }
  if (!s.authenticated) return error('NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time');
  s.protocol = proto;
  return map([
    [bulk('server'), bulk('ssm')],
    [bulk('version'), bulk(REDIS_COMPAT_VERSION)],
    [bulk('proto'), int(proto)],
    [bulk('id'), int(s.id)],
    [bulk('mode'), bulk('standalone')],
    [bulk('role'), bulk('master')],
    [bulk('modules'), array([])],
  ]);
};

const client: Handler = (s, a) => {
  const sub = a[1]!.toString('latin1').toUpperCase();
  if (sub === 'ID' && a.length === 2) return int(s.id);
  if (sub === 'GETNAME' && a.length === 2) return s.name === null ? NIL : bulk(s.name);
  if (sub === 'SETNAME' && a.length === 3) {
    const name = a[2]!.toString('utf8');
    if (/[\s]/.test(name)) return error('ERR Client names cannot contain spaces, newlines or special characters.');
    s.name = name === '' ? null : name;
    return OK;
  }
  // Client libraries announce themselves (node-redis, redis-py); nothing to keep.
  if (sub === 'SETINFO' && a.length === 4) return OK;
  return error(`ERR unknown subcommand or wrong number of arguments for 'CLIENT|${sub}'`);
};

function countWorkers(node: StatusNode, into: Map<string, string>): void {
  if (node.kind === 'worker') into.set(node.name, node.status);
  else if (node.kind === 'supervisor') for (const c of node.children) countWorkers(c, into);
}

const info: Handler = (s, a) => {
  const { app, machines } = s.server.options;
  const wanted = new Set(a.slice(1).map((b) => b.toString('latin1').toLowerCase()));
  const want = (section: string): boolean => wanted.size === 0 || wanted.has(section) || wanted.has('all') || wanted.has('everything') || wanted.has('default');
  // Issued first and synchronously, like every call (pipeline order); answered with the rest.
  const sizes = want('keyspace') ? machines.map((m) => app.callValue<{ keys: number; expiring: number }>(m, { op: 'size', expiring: true }).catch(() => ({ keys: -1, expiring: -1 }))) : [];
  const m = app.metrics;
  const status = new Map<string, string>();
  countWorkers(app.status(), status);
  const sections: [string, [string, string | number][]][] = [];
  if (want('server'))
    sections.push(['Server', [
      ['redis_version', REDIS_COMPAT_VERSION], ['ssm_server', 'supervised-state-machines'], ['redis_mode', 'standalone'],
      ['process_id', process.pid], ['tcp_port', s.server.port], ['uptime_in_seconds', Math.floor((Date.now() - s.server.startedAt) / 1000)],
    ]]);
  if (want('clients')) sections.push(['Clients', [['connected_clients', s.server.connected], ['maxclients', s.server.options.maxConnections]]]);
  if (want('persistence'))
    sections.push(['Persistence', [
      ['loading', 0], ['ssm_database', app.databasePath], ['ssm_logged_requests', m.loggedRequests], ['ssm_commits', m.commitSeconds.count],
      ['ssm_commit_seconds_avg', m.commitSeconds.count ? (m.commitSeconds.sum / m.commitSeconds.count).toFixed(6) : 0], ['ssm_snapshots', m.snapshots],
      ['ssm_integrity', app.integrity.state],
    ]]);
  if (want('stats'))
    sections.push(['Stats', [
      ['total_connections_received', s.server.connectionsReceived], ['rejected_connections', s.server.connectionsRejected],
      ['total_commands_processed', s.server.commandsProcessed], ['ssm_calls', m.calls], ['ssm_queue_depth', app.queueDepth],
      ['ssm_restarts', m.restarts], ['ssm_crashes', m.crashes], ...[...m.errors].map(([code, n]): [string, number] => [`ssm_errors_${code.toLowerCase()}`, n]),
    ]]);
  return Promise.all(sizes).then((counts) => {
    if (want('keyspace'))
      sections.push(['Keyspace', machines.map((name, i): [string, string] => [`db${i}`, `keys=${counts[i]!.keys},expires=${counts[i]!.expiring},avg_ttl=0,machine=${name},status=${status.get(name) ?? 'unknown'}`])]);
    const text = sections.map(([title, rows]) => [`# ${title}`, ...rows.map(([k, v]) => `${k}:${v}`)].join('\r\n')).join('\r\n\r\n');
    return bulk(`${text}\r\n`);
  });
};

export const SERVER_COMMANDS: Record<string, readonly [number, Handler]> = {
  ping: [-1, (s, a) => (a.length > 2 ? error("ERR wrong number of arguments for 'ping' command") : a.length === 2 ? bulk(a[1]!) : simple('PONG'))],
  echo: [2, (_s, a) => bulk(a[1]!)],
  hello: [-1, hello],
  auth: [
    -2,
    (s, a) => {
      if (a.length > 3) throw new ReplyError(SYNTAX);
      return authenticate(s, a.length === 3 ? a[1] : undefined, a[a.length - 1]!) ?? OK;
    },
  ],
  select: [
    2,
    (s, a) => {
      const t = a[1]!.toString('latin1');
      if (!/^-?[0-9]{1,10}$/.test(t)) return NOT_INTEGER;
      const n = Number(t);
      if (n < 0 || n >= s.server.options.machines.length) return error('ERR DB index is out of range');
      s.db = n;
      return OK;
    },
  ],
  client: [-2, client],
  info: [-1, info],
  // redis-benchmark reads a few settings at start; we have none of Redis's to report.
  config: [-2, (s) => (s.protocol === 3 ? map([]) : array([]))],
  quit: [
    -1,
    (s) => {
      s.quitting = true;
      return OK;
    },
  ],
};
