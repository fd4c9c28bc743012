/**
 * Who may hold a connection: the admission policy of the HTTP server, apart from sockets (the
 * server passes its sockets in; tests pass plain objects).
 *
 * A connection is either busy (a request whose headers have arrived is not yet answered), idle
 * between keep-alive requests (answered, nothing sent since), or *waiting for headers*: it has
 * never completed a request's headers, or it has started sending the next one. Only the last
 * kind can be evicted: a Slowloris connection is always of that kind, while a legitimate client
 * completes its headers within a round trip of connecting.
 *
 * - At most `maxConnections` connections in all. A newcomer beyond it takes the place of the
 *   connection that has been waiting for headers longest (see {@link pickEviction}); when none is
 *   waiting (every connection is busy or idle keep-alive), the newcomer is refused.
 * - At most `maxConnectionsPerAddress` per address group (see {@link addressGroup}), with the same
 *   rule inside the group: a newcomer only ever evicts a connection of its own group there, so
 *   one address flooding with slow connections only displaces itself.
 */

/** What the policy knows of a connection; all times from the `now` of {@link ConnectionTable}. */
export interface ConnectionRecord {
  /** Address group (see {@link addressGroup}). */
  readonly group: string;
  /** Requests whose headers have arrived and that are not yet answered. */
  busy: number;
  /** Requests whose headers have arrived, ever, on this connection. */
  requests: number;
  /** Start of the current wait for headers: connection time, or when the last reply ended. */
  waitingSince: number;
  /** Bytes read on the connection when that wait started. */
  bytesAtWaitStart: number;
}

/** A connection as {@link pickEviction} sees it. */
export interface EvictionCandidate {
  readonly busy: number;
  readonly requests: number;
  readonly waitingSince: number;
  /** Bytes received since the wait started. */
  readonly bytesInWait: number;
}

/**
 * True when the connection waits for request headers: not busy, and either it never completed
 * a request's headers or it has sent part of the next one. An idle keep-alive connection (answered,
 * nothing since) is not: `keepAliveTimeoutMs` closes it, and evicting it would hand its client the
 * keep-alive race (a reset on its next request).
 */
export function isWaitingForHeaders(c: EvictionCandidate): boolean {
  return c.busy === 0 && (c.requests === 0 || c.bytesInWait > 0);
}

/**
 * The index of the connection to evict, or -1 when none may be: among those waiting for headers,
 * the one waiting longest, and among equally long waits the one that sent the fewest bytes.
 * (Fewest bytes alone would evict the newest arrivals first, legitimate ones included, and keep
 * the oldest slow connections for ever.)
 */
export function pickEviction(candidates: readonly EvictionCandidate[]): number {
  let best = -1;
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i]!;
    if (!isWaitingForHeaders(c)) continue;
    if (best < 0) {
      best = i;
      continue;
    }
    const b = candidates[best]!;
    if (c.waitingSince < b.waitingSince || (c.waitingSince === b.waitingSince && c.bytesInWait < b.bytesInWait)) best = i;
  }
  return best;
}

/**
 * The group a remote address counts in for the per-address limit: the address itself for IPv4
 * (IPv4-mapped IPv6 included), its /64 prefix for IPv6 (one host commonly holds a whole /64).
 * Loopback is an address like any other. `undefined` (a socket already reset) is its own group.
 */
export function addressGroup(address: string | undefined): string {
  if (address === undefined || address === '') return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!address.includes(':')) return address;
  const bare = address.split('%')[0]!.toLowerCase();
  const [head = '', tail] = bare.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(Math.max(0, 8 - headGroups.length - tailGroups.length)).fill('0'), ...tailGroups];
  return `${groups.slice(0, 4).map((g) => Number.parseInt(g, 16).toString(16)).join(':')}::/64`;
}

/** What to do with a newcomer. */
export type Admission<C> = { readonly admit: true; readonly evict?: C } | { readonly admit: false };

/** The open connections and their counts per group; `C` is the server's socket type. */
export class ConnectionTable<C> {
  readonly #records = new Map<C, ConnectionRecord>();
  readonly #perGroup = new Map<string, number>();

  constructor(
    private readonly limits: { readonly maxConnections: number; readonly maxConnectionsPerAddress: number },
    private readonly bytesRead: (c: C) => number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get size(): number {
    return this.#records.size;
  }

  /** Open connections of a group. */
  countOf(group: string): number {
    return this.#perGroup.get(group) ?? 0;
  }

  /**
   * Decides on a newcomer (not yet in the table) and, when admitted, records it. The caller
   * closes the evicted connection, or the newcomer when it is refused; an evicted one is already
   * out of the table.
   */
  admit(conn: C, address: string | undefined): Admission<C> {
    const group = addressGroup(address);
    let evict: C | undefined;
    if (this.countOf(group) >= this.limits.maxConnectionsPerAddress) {
      evict = this.#victim(group);
      if (evict === undefined) return { admit: false };
    } else if (this.#records.size >= this.limits.maxConnections) {
      evict = this.#victim(undefined);
      if (evict === undefined) return { admit: false };
    }
    if (evict !== undefined) this.remove(evict);
    this.#records.set(conn, { group, busy: 0, requests: 0, waitingSince: this.now(), bytesAtWaitStart: 0 });
    this.#perGroup.set(group, this.countOf(group) + 1);
    return evict === undefined ? { admit: true } : { admit: true, evict };
  }

  /** A request's headers have arrived on `conn`. */
  requestStarted(conn: C): void {
    const r = this.#records.get(conn);
    if (!r) return;
    r.busy++;
    r.requests++;
  }

  /** A reply on `conn` has ended (sent or aborted). */
  requestEnded(conn: C): void {
    const r = this.#records.get(conn);
    if (!r || r.busy === 0) return;
    if (--r.busy === 0) {
      r.waitingSince = this.now();
      r.bytesAtWaitStart = this.bytesRead(conn);
    }
  }

  /** The connection is gone (idempotent). */
  remove(conn: C): void {
    const r = this.#records.get(conn);
    if (!r) return;
    this.#records.delete(conn);
    const n = this.countOf(r.group) - 1;
    if (n > 0) this.#perGroup.set(r.group, n);
    else this.#perGroup.delete(r.group);
  }

  #victim(group: string | undefined): C | undefined {
    const conns: C[] = [];
    const candidates: EvictionCandidate[] = [];
    for (const [conn, r] of this.#records) {
      if (group !== undefined && r.group !== group) continue;
      conns.push(conn);
      candidates.push({ busy: r.busy, requests: r.requests, waitingSince: r.waitingSince, bytesInWait: this.bytesRead(conn) - r.bytesAtWaitStart });
    }
    const i = pickEviction(candidates);
    return i < 0 ? undefined : conns[i];
  }
}
