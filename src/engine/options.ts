import { ConfigError } from '../errors.js';
import { DEFAULT_DB_PATH, resolveStoreOptions, type Durability, type StoreFaults } from '../storage/store-options.js';
import { stderrLogger, silentLogger, type Logger } from './logger.js';
import { resolveSnapshotPolicy, type ResolvedSnapshotPolicy, type SnapshotPolicy } from './snapshot-policy.js';

/** {@link ApplicationOptions.queueCapacity}'s default. */
export const DEFAULT_QUEUE_CAPACITY = 1024;

/** Options of {@link startApplication}. Every invalid value is refused with a ConfigError. */
export interface ApplicationOptions {
  /**
   * SQLite database file (its folder is created); `':memory:'` for tests.
   * @default 'storage/ssm.db'
   */
  db?: string;
  /**
   * Create the database when it does not exist; `false` refuses (StorageError, nothing created).
   * @default true
   */
  create?: boolean;
  /**
   * `'full'`: a reply is released only after fsync. See {@link Durability}.
   * @default 'full'
   */
  durability?: Durability;
  /**
   * Most requests waiting in the queue; beyond it calls fail with QueueFullError.
   * @default 1024
   */
  queueCapacity?: number;
  /**
   * Most requests stepped per batch (one group commit).
   * @default 512
   */
  maxBatch?: number;
  /**
   * Call timeout in ms; `Infinity` (or 0) for none.
   * @default 5000
   */
  callTimeoutMs?: number;
  /**
   * Largest accepted `callBytes` payload, in bytes.
   * @default 1048576 (1 MiB)
   */
  maxPayloadBytes?: number;
  /**
   * When to snapshot; see {@link SnapshotPolicy} for each field's default.
   * @default {}
   */
  snapshot?: SnapshotPolicy;
  /**
   * Lifecycle events; `false` silences them.
   * @default concise lines on stderr ({@link stderrLogger})
   */
  logger?: Logger | false;
  /**
   * How long idempotency keys are remembered; see {@link IdempotencyRetentionOptions}.
   * @default {}
   */
  idempotency?: IdempotencyRetentionOptions;
  /**
   * Readable tables for the sqlite3 CLI (`kv_entries`, `machine_states`, the `requests` and
   * `failed_inputs` views): `true` for every machine, `false` for none, or `{ except: [names] }`.
   * Off by default because they cost throughput: each write renders JSON and updates a row in its
   * commit (about half the durable writes per second at 256 callers: README, Benchmarks);
   * recovery never reads them. `ssm serve --readable` turns them on for the server.
   * @default false
   */
  readable?: boolean | { readonly except: readonly string[] };
  /**
   * Crash loops across process starts: a machine that crashed (a step threw, or its start
   * failed) in `runs` different runs of the application within `windowMs` is held back from its
   * next start on (status `held`, calls refused with MachineHeldError) while the rest of the tree
   * serves, until `ssm release NAME` or {@link App.release}. Crashes are kept in the
   * `crash_history` table, holds in `held_machines`. `false`: never hold a machine back.
   * @default { runs: 5, windowMs: 600000 }
   */
  crashLoop?: false | CrashLoopOptions;
  /** Test seams for fault injection; never set in production. */
  faults?: StoreFaults;
}

/** {@link CrashLoopOptions} with its defaults applied; null: crash loops are not watched. */
export type ResolvedCrashLoop = { readonly runs: number; readonly windowMs: number } | null;

/** See {@link ApplicationOptions.crashLoop}. */
export interface CrashLoopOptions {
  /**
   * Runs of the application (process starts) with a crash of the machine that make a crash loop.
   * @default 5
   */
  runs?: number;
  /**
   * Window within which those runs' crashes count, in ms.
   * @default 600000 (10 min)
   */
  windowMs?: number;
}

/**
 * Retention of idempotency keys ({@link CallOptions.idempotencyKey}). A retry after its key has
 * been removed is applied again: keep keys longer than any client retries.
 */
export interface IdempotencyRetentionOptions {
  /**
   * A key is remembered this long (ms) after its request was committed.
   * @default 86400000 (24 h)
   */
  retainMs?: number;
  /**
   * Most keys remembered, over all machines; beyond it the oldest are removed first.
   * @default 1000000
   */
  maxKeys?: number;
}

/** Options of one call. */
export interface CallOptions {
  /**
   * Timeout of this call in ms; 0 or `Infinity` for none.
   * @default the application's `callTimeoutMs`
   */
  timeoutMs?: number;
  /**
   * Makes a state-changing call safe to retry: the first call with this key on this machine is
   * applied and its reply stored in the same commit as its log entry; a later call with the same
   * key and the same input (in flight, committed, or after a crash and restart) gets that reply
   * and is not applied again. The same key with another input is refused with
   * IdempotencyKeyReusedError. A non-empty string of at most 1024 bytes of UTF-8. Ignored on
   * read-only inputs (they change nothing, so retrying them is already safe). A call that crashed
   * its machine was not applied and records no key. Kept per {@link IdempotencyRetentionOptions}.
   * @default none
   */
  idempotencyKey?: string;
}

/** {@link ApplicationOptions} with every default applied and every value checked. */
export interface ResolvedApplicationOptions {
  readonly db: string;
  readonly durability: Durability;
  readonly create: boolean;
  readonly queueCapacity: number;
  readonly maxBatch: number;
  readonly callTimeoutMs: number;
  readonly maxPayloadBytes: number;
  readonly snapshot: ResolvedSnapshotPolicy;
  readonly idempotency: Required<IdempotencyRetentionOptions>;
  readonly crashLoop: ResolvedCrashLoop;
  /** Whether machine `name` keeps readable tables. */
  readonly readable: (name: string) => boolean;
  /** Never throws: a failing user logger must not break a batch half-way or a restart. */
  readonly logger: Logger;
  readonly faults: StoreFaults;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new ConfigError(`${name} must be an integer >= 1, got ${String(value)}`);
  return value;
}

/** Applies the defaults documented on {@link ApplicationOptions}, in this one place. */
export function resolveApplicationOptions(options: ApplicationOptions = {}): ResolvedApplicationOptions {
  const { durability, create, faults } = resolveStoreOptions(options);
  const callTimeoutMs = options.callTimeoutMs ?? 5000;
  if (typeof callTimeoutMs !== 'number' || !(callTimeoutMs > 0)) throw new ConfigError(`callTimeoutMs must be > 0 (Infinity for none), got ${String(callTimeoutMs)}`);
  const db = options.db ?? DEFAULT_DB_PATH;
  if (typeof db !== 'string' || db === '') throw new ConfigError('db must be a non-empty path');
  const user = options.logger === false ? silentLogger : (options.logger ?? stderrLogger);
  if (typeof user !== 'function') throw new ConfigError('logger must be a function or false');
  return {
    db,
    durability,
    create,
    queueCapacity: positiveInteger('queueCapacity', options.queueCapacity ?? DEFAULT_QUEUE_CAPACITY),
    maxBatch: positiveInteger('maxBatch', options.maxBatch ?? 512),
    callTimeoutMs,
    maxPayloadBytes: positiveInteger('maxPayloadBytes', options.maxPayloadBytes ?? 1024 * 1024),
    snapshot: resolveSnapshotPolicy(options.snapshot),
    idempotency: {
      retainMs: positiveInteger('idempotency.retainMs', options.idempotency?.retainMs ?? 24 * 3600 * 1000),
      maxKeys: positiveInteger('idempotency.maxKeys', options.idempotency?.maxKeys ?? 1_000_000),
    },
    readable: readableFilter(options.readable),
    crashLoop: resolveCrashLoop(options.crashLoop),
    logger: (event) => {
      try {
        user(event);
      } catch {
        // Nothing sensible to do with a failing logger but keep serving.
      }
    },
    faults,
  };
}

function resolveCrashLoop(option: ApplicationOptions['crashLoop']): ResolvedCrashLoop {
  if (option === false) return null;
  if (option !== undefined && (typeof option !== 'object' || option === null)) throw new ConfigError('crashLoop must be false or { runs?, windowMs? }');
  return { runs: positiveInteger('crashLoop.runs', option?.runs ?? 5), windowMs: positiveInteger('crashLoop.windowMs', option?.windowMs ?? 600_000) };
}

function readableFilter(option: ApplicationOptions['readable']): (name: string) => boolean {
  if (option === true) return () => true;
  if (option === undefined || option === false) return () => false;
  if (typeof option !== 'object' || option === null || !Array.isArray(option.except) || !option.except.every((n) => typeof n === 'string')) {
    throw new ConfigError('readable must be true, false or { except: [machine names] }');
  }
  const except = new Set(option.except);
  return (name) => !except.has(name);
}
