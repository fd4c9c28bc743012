/**
 * Slowloris (issue 18.8): connections that trickle their headers must not lock legitimate
 * clients out. The policy (src/http/connections.ts) on its own, then real sockets: 300 slow
 * connections against a cap of 32 while a legitimate client is served, and the per-address limit.
 */
import test from 'ava';
import { request as httpRequest } from 'node:http';
import net from 'node:net';
import { addressGroup, ConnectionTable, pickEviction, type EvictionCandidate } from '../src/http/connections.js';
import { resolveServeOptions } from '../src/http/options.js';
import { ConfigError } from '../src/errors.js';
import { startHarness } from './fixtures/serve-helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const waiting = (waitingSince: number, bytesInWait: number, requests = 0): EvictionCandidate => ({ busy: 0, requests, waitingSince, bytesInWait });

test('pickEviction: the connection waiting longest for headers, then the one that sent fewest bytes; never a busy or idle keep-alive one', (t) => {
  t.is(pickEviction([]), -1);
  t.is(pickEviction([waiting(5, 3), waiting(2, 9), waiting(7, 0)]), 1);
  t.is(pickEviction([waiting(2, 9), waiting(2, 4), waiting(2, 6)]), 1);
  // busy (headers in, not answered), idle keep-alive (answered, nothing since): not evictable.
  const busy: EvictionCandidate = { busy: 1, requests: 1, waitingSince: 0, bytesInWait: 500 };
  const idleKeepAlive = waiting(0, 0, 3);
  t.is(pickEviction([busy, idleKeepAlive]), -1);
  // A keep-alive connection that started its next request's headers is waiting again.
  t.is(pickEviction([busy, idleKeepAlive, waiting(1, 1, 3), waiting(4, 0)]), 2);
});

test('addressGroup: IPv4 as is (mapped too), IPv6 by /64, loopback an address like any other', (t) => {
  t.is(addressGroup('127.0.0.1'), '127.0.0.1');
  t.is(addressGroup('::ffff:10.1.2.3'), '10.1.2.3');
  t.is(addressGroup('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  t.is(addressGroup('2001:0db8:0001:0002:ffff:0:0:9'), '2001:db8:1:2::/64');
  t.is(addressGroup('2001:db8::1'), '2001:db8:0:0::/64');
  t.is(addressGroup('fe80::1%eth0'), 'fe80:0:0:0::/64');
  t.is(addressGroup('::1'), '0:0:0:0::/64');
  t.is(addressGroup(undefined), 'unknown');
});

test('ConnectionTable: evicts within the address at its limit, globally at the cap, refuses when nothing waits', (t) => {
  let clock = 0;
  const bytes = new Map<string, number>();
  const table = new ConnectionTable<string>({ maxConnections: 4, maxConnectionsPerAddress: 2 }, (c) => bytes.get(c) ?? 0, () => clock);
  const add = (c: string, address: string) => {
    clock++;
    return table.admit(c, address);
  };
  t.deepEqual(add('a1', '10.0.0.1'), { admit: true });
  t.deepEqual(add('a2', '10.0.0.1'), { admit: true });
  // a1 and a2 wait for headers: the third from the same address replaces the older one.
  t.deepEqual(add('a3', '10.0.0.1'), { admit: true, evict: 'a1' });
  t.is(table.countOf('10.0.0.1'), 2);
  // a2 and a3 get their headers in: nothing of 10.0.0.1 can be evicted, so a4 is refused.
  table.requestStarted('a2');
  table.requestStarted('a3');
  t.deepEqual(add('a4', '10.0.0.1'), { admit: false });
  t.deepEqual(add('b1', '10.0.0.2'), { admit: true });
  t.deepEqual(add('c1', '10.0.0.3'), { admit: true });
  t.is(table.size, 4);
  // At the cap: b1 (older) goes before c1, whatever their address.
  t.deepEqual(add('d1', '10.0.0.4'), { admit: true, evict: 'b1' });
  // a2 answered with nothing since: idle keep-alive, not evictable; c1 and d1 still are.
  bytes.set('a2', 300);
  table.requestEnded('a2');
  t.deepEqual(add('e1', '10.0.0.5'), { admit: true, evict: 'c1' });
  table.requestStarted('d1');
  table.requestStarted('e1');
  t.deepEqual(add('f1', '10.0.0.6'), { admit: false }, 'every connection busy or idle: the newcomer is refused');
  // a2 starts its next request's headers: waiting again, so evictable.
  bytes.set('a2', 310);
  t.deepEqual(add('f2', '10.0.0.6'), { admit: true, evict: 'a2' });
  t.is(table.countOf('10.0.0.1'), 1);
  table.remove('a3');
  table.remove('a3');
  t.is(table.size, 3);
  t.is(table.countOf('10.0.0.1'), 0);
});

test('maxConnectionsPerAddress: half of maxConnections, at least 64, at most maxConnections; validated', (t) => {
  t.is(resolveServeOptions({}).maxConnectionsPerAddress, 128);
  t.is(resolveServeOptions({ maxConnections: 1000 }).maxConnectionsPerAddress, 500);
  t.is(resolveServeOptions({ maxConnections: 100 }).maxConnectionsPerAddress, 64);
  t.is(resolveServeOptions({ maxConnections: 32 }).maxConnectionsPerAddress, 32);
  t.is(resolveServeOptions({ maxConnections: 32, maxConnectionsPerAddress: 4 }).maxConnectionsPerAddress, 4);
  for (const bad of [0, -1, 2.5, Number.NaN]) t.throws(() => resolveServeOptions({ maxConnectionsPerAddress: bad }), { instanceOf: ConfigError });
  t.throws(() => resolveServeOptions({ maxConnections: 32, maxConnectionsPerAddress: 33 }), { instanceOf: ConfigError, message: /must not exceed maxConnections/ });
});

/** GET /healthz on a fresh connection (no agent), optionally from a given local address. */
function getOnce(port: number, localAddress?: string): Promise<number | string> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/healthz', agent: false, localAddress }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    req.end();
  });
}

test('300 connections trickling header bytes (and reconnecting when cut) against a cap of 32: every legitimate request is served', async (t) => {
  // headersTimeoutMs stays at its default (10 s): within this test only eviction can help.
  const h = await startHarness(t, {}, { maxConnections: 32 });
  const port = h.endpoint.port;
  let attacking = true;
  let cut = 0;
  const open = new Set<net.Socket>();
  const allClosed: Promise<void>[] = [];
  const slow = (i: number): void => {
    const header = `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow-${i}: ${'a'.repeat(4000)}`;
    const s = net.connect(port, '127.0.0.1');
    s.setNoDelay(true);
    open.add(s);
    let pos = 0;
    let timer: NodeJS.Timeout | undefined;
    const tick = (): void => {
      if (!attacking || s.destroyed) return;
      s.write(header[pos++ % header.length]!);
      timer = setTimeout(tick, 200 + Math.random() * 800);
    };
    s.once('connect', tick);
    s.on('error', () => undefined);
    allClosed.push(
      new Promise((r) =>
        s.once('close', () => {
          clearTimeout(timer);
          open.delete(s);
          if (attacking) {
            cut++;
            setTimeout(() => attacking && slow(i), 200 + Math.random() * 800);
          }
          r();
        }),
      ),
    );
  };
  for (let i = 0; i < 300; i++) slow(i);
  await sleep(500);

  const statuses: (number | string)[] = [];
  const started = performance.now();
  for (let i = 0; i < 30; i++) {
    statuses.push(await getOnce(port));
    await sleep(80);
  }
  const ms = performance.now() - started;
  attacking = false;
  const cutDuringAttack = cut;
  for (const s of open) s.destroy();
  await Promise.all(allClosed);

  t.log(`30 requests in ${Math.round(ms)} ms; ${cutDuringAttack} slow connections cut`);
  t.deepEqual(statuses, Array<number>(30).fill(200), 'every legitimate request got 200');
  t.true(cutDuringAttack >= 300 - 32, `slow connections were cut to make room (${cutDuringAttack})`);
  t.is((await getOnce(port)), 200);
});

test('per-address limit: a newcomer evicts its own address\'s slow connection, is refused when none is slow; other addresses unaffected', async (t) => {
  const h = await startHarness(t, {}, { maxConnections: 32, maxConnectionsPerAddress: 4 });
  const port = h.endpoint.port;
  const connect = (localAddress = '127.0.0.1'): Promise<{ socket: net.Socket; closed: Promise<string> }> =>
    new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress });
      let data = '';
      socket.on('data', (d) => (data += d.toString('latin1')));
      socket.on('error', () => undefined);
      const closed = new Promise<string>((r) => socket.once('close', () => r(data)));
      socket.once('connect', () => resolve({ socket, closed }));
      socket.once('error', reject);
    });
  const until = async (cond: () => boolean): Promise<void> => {
    for (let i = 0; i < 200 && !cond(); i++) await sleep(10);
  };

  // Four silent connections fill 127.0.0.1's share; a fifth legitimate request evicts the oldest.
  const silent = [];
  for (let i = 0; i < 4; i++) {
    silent.push(await connect());
    await sleep(5);
  }
  t.is(await getOnce(port), 200);
  t.is(await silent[0]!.closed, '', 'the oldest silent connection was evicted');

  // Four keep-alive connections that completed a request: none waits for headers.
  for (const s of silent) s.socket.destroy();
  const idle = [];
  for (let i = 0; i < 4; i++) {
    const c = await connect();
    let got = '';
    c.socket.on('data', (d) => (got += d.toString('latin1')));
    c.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => /"status":"ok"/.test(got) || c.socket.destroyed);
    t.regex(got, /^HTTP\/1\.1 200/);
    idle.push(c);
  }
  const refused = await connect();
  refused.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  t.is(await refused.closed, '', 'a fifth connection from 127.0.0.1 is refused');
  for (const c of idle) t.false(c.socket.destroyed, 'the keep-alive connections stay');

  // Another loopback address (127.0.0.2, still loopback on Linux) has its own share.
  const other = await getOnce(port, '127.0.0.2');
  t.is(other, 200);
  for (const c of idle) c.socket.destroy();
});
