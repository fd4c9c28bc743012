/**
 * The request side of RESP, as pure incremental code: bytes go in as they arrive (any
 * fragmentation), whole commands come out, each an array of byte strings. Requests are the same
 * in RESP2 and RESP3 (an array of bulk strings, or an inline line such as `PING\r\n` typed into
 * telnet); the protocol version only changes replies (see encoder.ts).
 *
 * Every size is bounded before anything is allocated for it, so a hostile client cannot make
 * the server buffer more than one bulk string plus one array's worth of arguments.
 */

/** Limits of {@link RespParser}; resolved in options.ts. */
export interface ParserLimits {
  /** Largest bulk string (one argument), in bytes. */
  readonly maxBulkBytes: number;
  /** Most arguments in one command. */
  readonly maxArrayLength: number;
  /** Longest inline command line, in bytes. */
  readonly maxInlineBytes: number;
}

/** A malformed or over-limit stream; the server answers `-ERR Protocol error: ...` and closes. */
export class RespProtocolError extends Error {
  constructor(detail: string) {
    super(`Protocol error: ${detail}`);
    this.name = 'RespProtocolError';
  }
}

const CR = 13;
const LF = 10;
/** Longest `*N` / `$N` header line we wait for: 20 digits and a sign are plenty. */
const MAX_HEADER = 32;

/** Incremental RESP request parser; one per connection. */
export class RespParser {
  #buf: Buffer = Buffer.alloc(0);
  #pos = 0;
  /** Arguments of the array being read, or null between commands. */
  #args: Buffer[] | null = null;
  #remaining = 0;
  /** Length of the bulk string being read, -1 before its `$` header. */
  #bulkLen = -1;

  constructor(readonly limits: ParserLimits) {}

  /** Appends received bytes. */
  push(chunk: Buffer): void {
    if (this.#pos >= this.#buf.length) this.#buf = chunk;
    else this.#buf = Buffer.concat([this.#buf.subarray(this.#pos), chunk]);
    this.#pos = 0;
  }

  /** True when part of a command has arrived but not all of it (for the slow-client timer). */
  get partial(): boolean {
    return this.#args !== null || this.#pos < this.#buf.length;
  }

  /**
   * The next whole command, or null until more bytes arrive.
   * @throws RespProtocolError for a malformed stream or a limit exceeded; the parser is then unusable.
   */
  next(): Buffer[] | null {
    for (;;) {
      if (this.#args === null) {
        if (this.#pos >= this.#buf.length) return this.#drained();
        if (this.#buf[this.#pos] !== 0x2a /* '*' */) {
          const inline = this.#inline();
          if (inline === null) return null;
          if (inline.length === 0) continue; // an empty line, as Redis, is no command
          return inline;
        }
        const n = this.#header('multibulk count');
        if (n === null) return null;
        if (n > this.limits.maxArrayLength) throw new RespProtocolError('invalid multibulk length');
        if (n <= 0) continue; // *0 and *-1 are no command, as in Redis
        this.#args = [];
        this.#remaining = n;
      }
      while (this.#remaining > 0) {
        if (this.#bulkLen < 0) {
          if (this.#pos >= this.#buf.length) return this.#drained();
          const c = this.#buf[this.#pos]!;
          if (c !== 0x24 /* '$' */) throw new RespProtocolError(`expected '$', got '${String.fromCharCode(c)}'`);
          const len = this.#header('bulk length');
          if (len === null) return null;
          if (len < 0 || len > this.limits.maxBulkBytes) throw new RespProtocolError('invalid bulk length');
          this.#bulkLen = len;
        }
        if (this.#buf.length - this.#pos < this.#bulkLen + 2) return null;
        const end = this.#pos + this.#bulkLen;
        if (this.#buf[end] !== CR || this.#buf[end + 1] !== LF) throw new RespProtocolError('bulk string not terminated by CRLF');
        // A copy: a value kept in a machine's state must not pin the whole receive buffer.
        this.#args!.push(Buffer.from(this.#buf.subarray(this.#pos, end)));
        this.#pos = end + 2;
        this.#bulkLen = -1;
        this.#remaining--;
      }
      const out = this.#args!;
      this.#args = null;
      return out;
    }
  }

  #drained(): null {
    this.#buf = Buffer.alloc(0);
    this.#pos = 0;
    return null;
  }

  /** Reads `*N\r\n` or `$N\r\n` at #pos (the type byte included); null if incomplete. */
  #header(what: string): number | null {
    const nl = this.#buf.indexOf(LF, this.#pos);
    if (nl < 0) {
      if (this.#buf.length - this.#pos > MAX_HEADER) throw new RespProtocolError(`too big ${what} string`);
      return null;
    }
    if (nl - this.#pos > MAX_HEADER || this.#buf[nl - 1] !== CR) throw new RespProtocolError(`invalid ${what}`);
    // -?[0-9]+ between the type byte and the CR, read in place (no string per header).
    const buf = this.#buf;
    let i = this.#pos + 1;
    const end = nl - 1;
    const negative = i < end && buf[i] === 0x2d; /* '-' */
    if (negative) i++;
    if (i >= end) throw new RespProtocolError(what === 'bulk length' ? 'invalid bulk length' : 'invalid multibulk length');
    let n = 0;
    for (; i < end; i++) {
      const d = buf[i]! - 0x30;
      if (d < 0 || d > 9) throw new RespProtocolError(what === 'bulk length' ? 'invalid bulk length' : 'invalid multibulk length');
      n = n * 10 + d;
    }
    this.#pos = nl + 1;
    return negative ? -n : n;
  }

  /** An inline command: one line split on spaces, with Redis's quoting; null if incomplete. */
  #inline(): Buffer[] | null {
    const nl = this.#buf.indexOf(LF, this.#pos);
    if (nl < 0) {
      if (this.#buf.length - this.#pos > this.limits.maxInlineBytes) throw new RespProtocolError('too big inline request');
      return null;
    }
    if (nl - this.#pos > this.limits.maxInlineBytes) throw new RespProtocolError('too big inline request');
    const end = nl > this.#pos && this.#buf[nl - 1] === CR ? nl - 1 : nl;
    const line = this.#buf.subarray(this.#pos, end);
    this.#pos = nl + 1;
    const args = splitInline(line);
    if (args.length > this.limits.maxArrayLength) throw new RespProtocolError('invalid multibulk length');
    return args;
  }
}

/** Splits an inline line on blanks; "double" (with \n, \t, \xHH, \\ escapes) and 'single' quotes group. */
export function splitInline(line: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  const blank = (c: number | undefined): boolean => c === 0x20 || c === 0x09;
  while (i < line.length) {
    while (blank(line[i])) i++;
    if (i >= line.length) break;
    const bytes: number[] = [];
    const quote = line[i] === 0x22 || line[i] === 0x27 ? line[i++]! : 0;
    for (;;) {
      if (i >= line.length) {
        if (quote) throw new RespProtocolError('unbalanced quotes in request');
        break;
      }
      const c = line[i]!;
      if (quote && c === quote) {
        i++;
        if (i < line.length && !blank(line[i])) throw new RespProtocolError('unbalanced quotes in request');
        break;
      }
      if (!quote && blank(c)) break;
      if (quote === 0x22 && c === 0x5c /* \ */ && i + 1 < line.length) {
        const e = line[i + 1]!;
        const hex = line.toString('latin1', i + 2, i + 4);
        if (e === 0x78 /* x */ && /^[0-9a-fA-F]{2}$/.test(hex)) {
          bytes.push(Number.parseInt(hex, 16));
          i += 4;
          continue;
        }
        bytes.push(e === 0x6e ? LF : e === 0x72 ? CR : e === 0x74 ? 9 : e === 0x62 ? 8 : e === 0x61 ? 7 : e);
        i += 2;
        continue;
      }
      bytes.push(c);
      i++;
    }
    out.push(Buffer.from(bytes));
  }
  return out;
}
