/**
 * Replies, as values ({@link Reply}) that the command code builds without caring which protocol
 * the client speaks, and their encoding in RESP2 or RESP3 (chosen per connection by HELLO).
 * RESP3 only adds types (null, map, double...): a RESP2 client gets the nearest RESP2 form, a
 * map as a flat array and a null as the nil bulk string, as Redis does.
 */

export type Reply =
  | { readonly t: 'simple'; readonly s: string }
  | { readonly t: 'error'; readonly s: string }
  | { readonly t: 'int'; readonly n: number | bigint }
  | { readonly t: 'bulk'; readonly b: Uint8Array }
  | { readonly t: 'null' }
  | { readonly t: 'nullArray' }
  | { readonly t: 'array'; readonly items: readonly Reply[] }
  | { readonly t: 'map'; readonly pairs: readonly (readonly [Reply, Reply])[] };

/** RESP protocol version of a connection. */
export type Protocol = 2 | 3;

export const OK: Reply = { t: 'simple', s: 'OK' };
export const NIL: Reply = { t: 'null' };
/** The nil array (`*-1` in RESP2): EXEC aborted by WATCH. */
export const NIL_ARRAY: Reply = { t: 'nullArray' };
export const simple = (s: string): Reply => ({ t: 'simple', s });
/** An error reply; `s` starts with its code word (`ERR`, `NOAUTH`, ...), as in Redis. */
export const error = (s: string): Reply => ({ t: 'error', s });
export const int = (n: number | bigint): Reply => ({ t: 'int', n });
export const bulk = (b: Uint8Array | string): Reply => ({ t: 'bulk', b: typeof b === 'string' ? Buffer.from(b, 'utf8') : b });
export const bulkOrNil = (b: Uint8Array | null): Reply => (b === null ? NIL : { t: 'bulk', b });
export const array = (items: readonly Reply[]): Reply => ({ t: 'array', items });
export const map = (pairs: readonly (readonly [Reply, Reply])[]): Reply => ({ t: 'map', pairs });

/** Simple strings and errors are one line: a CR or LF inside would split the reply in two. */
const oneLine = (s: string): string => s.replace(/[\r\n]+/g, ' ');

const CRLF = Buffer.from('\r\n');
const OK_BYTES = Buffer.from('+OK\r\n', 'latin1');

/** Appends the encoding of `r` to `out` (a list of chunks, concatenated once per flush). */
export function encodeInto(r: Reply, proto: Protocol, out: Buffer[]): void {
  switch (r.t) {
    case 'simple':
      if (r === OK) {
        out.push(OK_BYTES);
        return;
      }
      out.push(Buffer.from(`+${oneLine(r.s)}\r\n`, 'utf8'));
      return;
    case 'error':
      out.push(Buffer.from(`-${oneLine(r.s)}\r\n`, 'utf8'));
      return;
    case 'int':
      out.push(Buffer.from(`:${r.n}\r\n`, 'latin1'));
      return;
    case 'bulk':
      out.push(Buffer.from(`$${r.b.length}\r\n`, 'latin1'), Buffer.from(r.b.buffer, r.b.byteOffset, r.b.length), CRLF);
      return;
    case 'null':
      out.push(Buffer.from(proto === 3 ? '_\r\n' : '$-1\r\n', 'latin1'));
      return;
    case 'nullArray':
      out.push(Buffer.from(proto === 3 ? '_\r\n' : '*-1\r\n', 'latin1'));
      return;
    case 'array':
      out.push(Buffer.from(`*${r.items.length}\r\n`, 'latin1'));
      for (const item of r.items) encodeInto(item, proto, out);
      return;
    case 'map':
      out.push(Buffer.from(proto === 3 ? `%${r.pairs.length}\r\n` : `*${r.pairs.length * 2}\r\n`, 'latin1'));
      for (const [k, v] of r.pairs) {
        encodeInto(k, proto, out);
        encodeInto(v, proto, out);
      }
      return;
  }
}

/** The encoding of one reply as one Buffer. */
export function encode(r: Reply, proto: Protocol): Buffer {
  const out: Buffer[] = [];
  encodeInto(r, proto, out);
  return out.length === 1 ? out[0]! : Buffer.concat(out);
}
