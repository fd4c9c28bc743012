import { MAX_PAGE_LIMIT, type KvPage } from '../kv/kv-page.js';
/**
 * Commands over the whole keyspace of the selected machine: DBSIZE, TYPE, KEYS, SCAN. Keys are
 * listed with the machine's sorted, paged `entries` (keysOnly, after, prefix): a pattern's
 * literal head becomes the prefix, the rest is matched here.
 */
import { array, bulk, error, int, simple } from './encoder.js';
import type { Session } from './session.js';
import { ReplyError, SYNTAX, handlersOf, intArg, keyOf, type Handler, type Planner } from './string-commands.js';

/** Redis's glob (`*`, `?`, `[a-z]`, `[^x]`, `\` escapes) as a RegExp over the whole key. */
export function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[\\s\\S]*';
    else if (c === '?') re += '[\\s\\S]';
    else if (c === '\\' && i + 1 < pattern.length) re += escape(pattern[++i]!);
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) {
        re += '\\[';
        continue;
      }
      let body = pattern.slice(i + 1, end);
      const negate = body.startsWith('^');
      if (negate) body = body.slice(1);
      re += `[${negate ? '^' : ''}${body.replace(/[\\\]]/g, '\\$&')}]`;
      i = end;
    } else re += escape(c);
  }
  try {
    return new RegExp(`^${re}$`);
  } catch {
    // e.g. a reversed range `[z-a]`: the client's mistake, not ours.
    throw new ReplyError(error('ERR invalid pattern'));
  }
}

const escape = (c: string): string => c.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');

/** The literal head of a glob pattern (up to its first special character), for `prefix`. */
export function literalPrefix(pattern: string): string {
  const m = /^[^*?[\\]*/.exec(pattern);
  return m ? m[0] : '';
}

/** One page of keys from the machine's ordered index; `next` is null when nothing is left. */
async function listKeys(s: Session, input: { prefix: string; after?: string; limit?: number }): Promise<{ keys: string[]; next: string | null }> {
  const page = await s.server.options.app.callValue<KvPage>(s.machine, { op: 'scan', ...input });
  return { keys: page.entries.map(([k]) => k), next: page.next };
}

/** Every key with `prefix`, a page per request so no single request holds the loop. */
async function allKeys(s: Session, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let after: string | undefined;
  for (;;) {
    const { keys, next } = await listKeys(s, { prefix, ...(after === undefined ? {} : { after }), limit: MAX_PAGE_LIMIT });
    for (const k of keys) out.push(k);
    if (next === null) return out;
    after = next;
  }
}

/** SCAN's COUNT when not given, as in Redis. */
const DEFAULT_COUNT = 10;

const scan: Handler = (s, a) => {
  const cursor = intArg(a[1]!);
  let match: string | undefined;
  let count = DEFAULT_COUNT;
  for (let i = 2; i < a.length; i += 2) {
    const opt = a[i]!.toString('latin1').toUpperCase();
    if (i + 1 >= a.length) throw new ReplyError(SYNTAX);
    if (opt === 'MATCH') match = keyOf(a[i + 1]!);
    else if (opt === 'COUNT') {
      const n = intArg(a[i + 1]!);
      if (n < 1n) throw new ReplyError(SYNTAX);
      count = Number(n > BigInt(MAX_PAGE_LIMIT) ? BigInt(MAX_PAGE_LIMIT) : n);
    } else if (opt === 'TYPE') {
      // Every value is a string: TYPE string lists everything, any other type nothing.
      if (a[i + 1]!.toString('latin1').toLowerCase() !== 'string') return array([bulk('0'), array([])]);
    } else throw new ReplyError(SYNTAX);
  }
  // An unknown cursor (forgotten, or from before a restart) starts over, which SCAN allows:
  // a client may see keys twice, never miss one.
  const after = cursor === 0n ? undefined : s.server.cursors.cursorKey(Number(cursor));
  const prefix = match === undefined ? '' : literalPrefix(match);
  const re = match === undefined ? null : globToRegExp(match);
  return listKeys(s, { prefix, ...(after === undefined ? {} : { after }), limit: count }).then(({ keys, next: last }) => {
    const next = last === null ? 0 : s.server.cursors.cursorFor(last);
    const shown = re ? keys.filter((k) => re.test(k)) : keys;
    return array([bulk(String(next)), array(shown.map((k) => bulk(k)))]);
  });
};

/** The keyspace commands that are one request each, so MULTI can queue them. */
export const KEYSPACE_PLANS: Record<string, readonly [number, Planner]> = {
  dbsize: [1, () => ({ input: { op: 'size' }, reply: (n) => int(n as number) })],
  type: [2, (_s, a) => ({ input: { op: 'has', key: keyOf(a[1]!) }, reply: (has) => simple(has ? 'string' : 'none') })],
};

export const KEYSPACE_COMMANDS: Record<string, readonly [number, Handler]> = {
  ...handlersOf(KEYSPACE_PLANS),
  keys: [
    2,
    (s, a) => {
      const pattern = keyOf(a[1]!);
      const re = globToRegExp(pattern);
      return allKeys(s, literalPrefix(pattern)).then((keys) => array(keys.filter((k) => re.test(k)).map((k) => bulk(k))));
    },
  ],
  scan: [-2, scan],
};
