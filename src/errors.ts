/**
 * Typed errors. Every failure a caller can see is one of these classes, each with a stable
 * `code` string so that the HTTP layer, the CLI and users can switch on it without parsing
 * messages.
 */

/** Base class of every error this library raises on purpose. */
export class SsmError extends Error {
  /** Stable machine-readable code, e.g. `QUEUE_FULL`. */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The request queue is at capacity; nothing was enqueued. Retry later (backpressure). */
export class QueueFullError extends SsmError {
  constructor(readonly capacity: number) {
    super('QUEUE_FULL', `request queue is full (capacity ${capacity})`);
  }
}

/**
 * The call did not complete within its timeout. If the request was still queued it was removed
 * and never applied; if it was already being stepped it completed and only the reply was dropped.
 */
export class CallTimeoutError extends SsmError {
  constructor(readonly machine: string, readonly timeoutMs: number) {
    super('CALL_TIMEOUT', `call to ${machine} timed out after ${timeoutMs} ms`);
  }
}

/** No machine of that name exists in the supervision tree. */
export class UnknownMachineError extends SsmError {
  constructor(readonly machine: string) {
    super('UNKNOWN_MACHINE', `unknown machine: ${JSON.stringify(machine)}`);
  }
}

/**
 * The machine exists but is not running: a `temporary` child that crashed, a `transient` or
 * `temporary` one that stopped normally (stopNormally), or a failed subtree.
 */
export class MachineStoppedError extends SsmError {
  constructor(readonly machine: string) {
    super('MACHINE_STOPPED', `machine ${machine} is not running`);
  }
}

/**
 * The machine is held back: it crashed in too many runs of the application within the crash-loop
 * window (ApplicationOptions.crashLoop). Nothing was applied. `ssm release NAME` or
 * app.release(name) lets it run again.
 */
export class MachineHeldError extends SsmError {
  constructor(readonly machine: string, readonly runs: number, readonly windowMs: number) {
    super('MACHINE_HELD', `machine ${machine} is held back: it crashed in ${runs} runs of the application within ${windowMs} ms; release it with ssm release ${machine} (or app.release) once it is fixed`);
  }
}

/**
 * The machine is waiting for its delayed restart (WorkerOptions.backoff with whileWaiting
 * 'fail'): nothing was applied; it restarts in about `retryAfterMs`.
 */
export class MachineRestartingError extends SsmError {
  constructor(readonly machine: string, readonly retryAfterMs: number) {
    super('MACHINE_RESTARTING', `machine ${machine} is restarting after a crash (backoff); retry in ${retryAfterMs} ms`);
  }
}

/** Bytes that the machine's codec could not decode. The machine was not touched. */
export class DecodeError extends SsmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('DECODE_ERROR', message, options);
  }
}

/** An output or input that could not be encoded (e.g. a function inside it). */
export class EncodeError extends SsmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCODE_ERROR', message, options);
  }
}

/** A payload larger than the configured limit. */
export class PayloadTooLargeError extends SsmError {
  constructor(readonly size: number, readonly limit: number) {
    super('PAYLOAD_TOO_LARGE', `payload of ${size} bytes exceeds the limit of ${limit} bytes`);
  }
}

/** The machine's `step` threw while handling this request. The supervisor restarts it. */
export class MachineCrashedError extends SsmError {
  constructor(readonly machine: string, cause: unknown) {
    super('MACHINE_CRASHED', `${machine} crashed: ${describe(cause)}`, { cause });
  }
}

/** The application has stopped (normally, or because the root supervisor gave up). */
export class ApplicationStoppedError extends SsmError {
  constructor(reason = 'application stopped') {
    super('APPLICATION_STOPPED', reason);
  }
}

/**
 * Writing to the database failed (disk full, I/O error). Nothing of the failed batch was
 * acknowledged; the machines involved were restored from storage.
 */
export class StorageError extends SsmError {
  constructor(message: string, options?: { cause?: unknown }, code = 'STORAGE_ERROR') {
    super(code, message, options);
  }
}

/**
 * The database file, or its folder (where SQLite creates the `-wal` and `-shm` files), cannot be
 * written: a writer cannot open it. Read-only tools (`ssm inspect`, `ssm verify`) still can.
 */
export class ReadOnlyDatabaseError extends StorageError {
  constructor(readonly path: string, reason: string, options?: { cause?: unknown }) {
    super(`database ${path} cannot be opened for writing: ${reason}. Make the file and its folder writable by this user (or open it with a read-only tool such as ssm inspect)`, options, 'DATABASE_READ_ONLY');
  }
}

/** A machine's state could not be recovered from storage. Nothing was deleted. */
export class RecoveryError extends SsmError {
  constructor(readonly machine: string, readonly seq: number | null, message: string, options?: { cause?: unknown }) {
    super('RECOVERY_ERROR', `recovery of ${machine} failed${seq === null ? '' : ` at seq ${seq}`}: ${message}`, options);
  }
}

/**
 * A machine could not be started (OTP's `{failed_to_start_child, Id, Reason}`): `machine` names
 * it and `cause` keeps what its start threw, e.g. an `init()` that threw. A state that cannot be
 * recovered is reported as the more specific {@link RecoveryError}, which names the machine too.
 */
export class StartError extends SsmError {
  constructor(readonly machine: string, cause: unknown) {
    super('START_ERROR', `${machine} failed to start: ${describe(cause)}`, { cause });
  }
}

/** Another live application (process) holds this database. */
export class DatabaseLockedError extends SsmError {
  constructor(readonly path: string, readonly holder: string) {
    super('DATABASE_LOCKED', `database ${path} is in use by ${holder}`);
  }
}

/** The database schema is newer than this version of the library understands, or unreadable. */
export class SchemaVersionError extends SsmError {
  constructor(message: string) {
    super('SCHEMA_VERSION', message);
  }
}

/** The supervision tree or options are invalid (duplicate names, bad strategy, ...). */
export class ConfigError extends SsmError {
  constructor(message: string) {
    super('CONFIG_ERROR', message);
  }
}

/**
 * An idempotency key already used on this machine for a different input. Nothing was applied:
 * the key's first request stands, and its reply is kept for retries with the same input.
 */
export class IdempotencyKeyReusedError extends SsmError {
  constructor(readonly machine: string, readonly key: string) {
    super('IDEMPOTENCY_KEY_REUSED', `idempotency key ${JSON.stringify(key)} was already used on ${machine} for a different input; nothing was applied`);
  }
}

/**
 * A subscriber fell more than `maxBuffered` events behind and was cut off (the engine never waits
 * for one, nor buffers without bound). Resume with `fromSeq: lastSeq + 1`.
 */
export class SubscriberTooSlowError extends SsmError {
  constructor(readonly machine: string, readonly lastSeq: number, readonly maxBuffered: number) {
    super('SUBSCRIBER_TOO_SLOW', `subscriber of ${machine} fell more than ${maxBuffered} events behind and was cut off after seq ${lastSeq}; resume from seq ${lastSeq + 1}`);
  }
}

/** The requests asked for are no longer retained (covered by snapshots, their log trimmed). */
export class LogTruncatedError extends SsmError {
  constructor(readonly machine: string, readonly fromSeq: number, readonly oldestSeq: number) {
    super('LOG_TRUNCATED', `${machine}'s requests from seq ${fromSeq} are no longer retained: the oldest a subscriber can start from is seq ${oldestSeq} (keep more with snapshot.retainLog or keepSnapshots)`);
  }
}

/** Short, single-line description of any thrown value. */
export function describe(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  try {
    return typeof err === 'string' ? err : JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}
