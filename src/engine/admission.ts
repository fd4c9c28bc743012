import { ApplicationStoppedError, CallTimeoutError, ConfigError, DecodeError, MachineHeldError, MachineRestartingError, MachineStoppedError, PayloadTooLargeError, SsmError, UnknownMachineError, describe } from '../errors.js';
import { cbor } from '../encoding/cbor.js';
import { retryAfterMs } from './restart-backoff.js';
import { Deadlines } from './deadlines.js';
import { checkIdempotencyKey } from './idempotency.js';
import type { EventLoop } from './event-loop.js';
import type { Metrics } from './metrics.js';
import type { CallOptions } from './options.js';
import { EntityPending, Pending, ignore } from './pending.js';
import type { EntityRuntime } from './entities.js';
import type { WorkerNode } from './runtime-tree.js';
import { MAX_TIMER_MS } from './snapshot-scheduler.js';

type Resolve = (v: unknown) => void;
type Reject = (e: unknown) => void;

const NO_TIMEOUT: CallOptions = { timeoutMs: 0 };

/**
 * The door of the event loop: finds the target, refuses what can be refused before queueing
 * (unknown or stopped machine, undecodable or oversized input, application stopped), queues
 * the rest and arms their deadlines. Every refusal is a typed error, counted in the metrics.
 */
export class Admission {
  /** Whether new calls are taken (false before start and from the first moment of stop). */
  accepting = false;
  // A request still queued is withdrawn and never applied. One already taken (a crashed request
  // waiting for its supervisor) has been stepped: only its reply is replaced by the timeout.
  private readonly deadlines = new Deadlines<Pending>(
    (req, ms) => {
      if (req.status === 'queued') this.loop.cancel(req);
      req.settle(new CallTimeoutError(req.target.name, ms));
    },
    (req) => req.status === 'queued' || req.status === 'taken',
  );

  constructor(
    private readonly workers: ReadonlyMap<string, WorkerNode>,
    private readonly loop: EventLoop<WorkerNode>,
    private readonly metrics: Metrics,
    private readonly limits: { readonly callTimeoutMs: number; readonly maxPayloadBytes: number },
    private readonly isEnded: () => boolean,
    /** Entities, looked up only for a name that is not a machine of the tree. */
    private readonly entities: EntityRuntime | null = null,
  ) {}

  /** The machine `name` addresses: of the tree, or of an entity family (nothing is woken). */
  private machineOf(name: string): WorkerNode['machine'] | undefined {
    return this.workers.get(name)?.machine ?? this.entities?.machineOf(name);
  }

  /** A trusted input, stepped as given; the reply is the output value. */
  admitValue(name: string, input: unknown, options: CallOptions, resolve: Resolve, reject: Reject): void {
    this.submit(name, input, false, options, resolve, reject);
  }

  /** An input from an untrusted source, already decoded: the machine's `validate` runs first. */
  admitUntrusted(name: string, input: unknown, options: CallOptions, resolve: Resolve, reject: Reject): void {
    const machine = this.machineOf(name);
    if (!machine) return this.refuse(reject, new UnknownMachineError(name));
    let valid: unknown;
    try {
      valid = machine.validate(input);
    } catch (err) {
      return this.refuse(reject, err instanceof DecodeError ? err : new DecodeError(`invalid input for ${name}: ${describe(err)}`, { cause: err }));
    }
    this.submit(name, valid, false, options, resolve, reject);
  }

  /** Wire bytes, decoded and validated by the machine's codec; the reply is encoded by it too. */
  admitBytes(name: string, bytes: Uint8Array, options: CallOptions, resolve: Resolve, reject: Reject): void {
    const machine = this.machineOf(name);
    if (!machine) return this.refuse(reject, new UnknownMachineError(name));
    if (bytes.byteLength > this.limits.maxPayloadBytes) return this.refuse(reject, new PayloadTooLargeError(bytes.byteLength, this.limits.maxPayloadBytes));
    let input: unknown;
    try {
      input = machine.validate(machine.codec.decode(bytes));
    } catch (err) {
      return this.refuse(reject, err instanceof DecodeError ? err : new DecodeError(`undecodable input for ${name}: ${describe(err)}`, { cause: err }));
    }
    this.submit(name, input, true, options, resolve, reject);
  }

  /** Fire-and-forget: throws when the request cannot be queued. */
  admitCast(name: string, input: unknown): void {
    let error: unknown;
    this.submit(name, input, false, NO_TIMEOUT, ignore, (e) => (error = e));
    if (error) throw error;
  }

  /** Drops every deadline (shutdown). */
  clear(): void {
    this.deadlines.clear();
  }

  private refuse(reject: Reject, err: unknown): void {
    if (err instanceof SsmError) this.metrics.error(err.code);
    reject(err);
  }

  private submit(name: string, input: unknown, encodeOutput: boolean, options: CallOptions, resolve: Resolve, reject: Reject): void {
    const { timeoutMs, idempotencyKey } = options;
    if (timeoutMs !== undefined && !(timeoutMs >= 0)) return this.refuse(reject, new ConfigError(`timeoutMs must be a number >= 0, got ${timeoutMs}`));
    if (idempotencyKey !== undefined) {
      try {
        checkIdempotencyKey(idempotencyKey);
      } catch (err) {
        return this.refuse(reject, err);
      }
    }
    if (!this.accepting) return this.refuse(reject, new ApplicationStoppedError());
    let w = this.workers.get(name);
    let entity = false;
    if (w) {
      if (w.status === 'backoff' && w.backoff?.whileWaiting === 'fail') return this.refuse(reject, new MachineRestartingError(name, retryAfterMs(w)));
      if (w.status === 'held' && w.held) return this.refuse(reject, new MachineHeldError(name, w.held.runs, w.held.windowMs));
      if ((w.status === 'stopped' || w.status === 'failed') && !this.isEnded() && (w.restart === 'temporary' || w.status === 'failed')) return this.refuse(reject, new MachineStoppedError(name));
    } else {
      // Not a machine of the tree: an entity '<family>/<key>', woken here if it sleeps.
      try {
        w = this.entities?.resolve(name);
      } catch (err) {
        return this.refuse(reject, err);
      }
      if (!w) return this.refuse(reject, new UnknownMachineError(name));
      entity = true;
    }
    let fingerprint: Uint8Array | null = null;
    if (w.machine.stamp) {
      // The key is matched on the input as the caller sent it: a retry is stamped anew.
      if (idempotencyKey !== undefined) {
        try {
          fingerprint = cbor.encode(input);
        } catch {
          // Not encodable: the log encoding fails too, with its own EncodeError.
        }
      }
      try {
        input = w.machine.stamp(input);
      } catch (err) {
        return this.refuse(reject, err instanceof SsmError ? err : new DecodeError(`invalid input for ${name}: ${describe(err)}`, { cause: err }));
      }
    }
    const req = entity ? new EntityPending(w, input, encodeOutput, resolve, reject, this.metrics) : new Pending(w, input, encodeOutput, resolve, reject, this.metrics);
    if (idempotencyKey !== undefined) req.idempotencyKey = idempotencyKey;
    req.fingerprint = fingerprint;
    try {
      this.loop.enqueue(req);
    } catch (err) {
      return this.refuse(reject, err);
    }
    this.metrics.calls++;
    const ms = timeoutMs ?? this.limits.callTimeoutMs;
    // 0, Infinity and anything beyond what a Node.js timer can hold (~24.8 days) mean no timeout.
    if (ms > 0 && ms <= MAX_TIMER_MS && req.awaited) this.deadlines.add(req, ms);
  }
}
