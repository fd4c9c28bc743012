import { SsmError } from '../errors.js';
import type { Request } from './event-loop.js';
import type { Metrics } from './metrics.js';
import type { WorkerNode } from './runtime-tree.js';
import type { TimerDelivery } from './timers.js';

/** A request and its caller's continuation; a class so the hot path allocates no closures. */
export class Pending implements Request<WorkerNode> {
  status: Request<WorkerNode>['status'] = 'queued';
  output?: unknown;
  /** Set when the request fails before or instead of its step (not encodable, machine stopped). */
  error?: unknown;
  /** The CBOR of the input for the request log (null: read-only, not logged). */
  logged: Uint8Array | null = null;
  /** What the step receives: the decoded copy of `logged`, or the input itself if read-only. */
  stepInput: unknown = undefined;
  /** The caller's idempotency key (null: none). */
  idempotencyKey: string | null = null;
  /** The first 16 bytes of sha256 of `logged` (or of `fingerprint`), computed only for a request with an idempotency key. */
  inputHash: Uint8Array | null = null;
  /**
   * For a keyed request to a machine with a `stamp`: the CBOR of its input before it was
   * stamped, which its idempotency key is matched on instead of `logged` (null: `logged`).
   */
  fingerprint: Uint8Array | null = null;
  /** Its seq once stepped and logged (0: not logged). */
  seq = 0;
  /** Set when this request delivers a durable timer's input (null: an ordinary call). */
  timer: TimerDelivery | null = null;
  constructor(
    readonly target: WorkerNode,
    readonly input: unknown,
    /** Reply with the output encoded by the machine's codec (the bytes path) instead of the value. */
    readonly encodeOutput: boolean,
    private readonly resolve: (v: unknown) => void,
    private readonly reject: (e: unknown) => void,
    private readonly metrics: Metrics,
  ) {}

  /** Whether anyone waits for the reply (a cast does not). */
  get awaited(): boolean {
    return this.resolve !== ignore;
  }

  settle(err: unknown, output?: unknown): void {
    if (this.status === 'settled') return;
    this.status = 'settled';
    if (err === undefined) {
      this.resolve(output);
      return;
    }
    if (err instanceof SsmError) this.metrics.error(err.code);
    this.reject(err);
  }
}

/**
 * A request to an entity: counted on its entity while unsettled, so the entity is never put
 * to sleep with a request in flight. A subclass, so requests to machines of the tree pay nothing.
 */
export class EntityPending extends Pending {
  constructor(target: WorkerNode, input: unknown, encodeOutput: boolean, resolve: (v: unknown) => void, reject: (e: unknown) => void, metrics: Metrics) {
    super(target, input, encodeOutput, resolve, reject, metrics);
    target.inFlight++;
  }

  override settle(err: unknown, output?: unknown): void {
    if (this.status !== 'settled') this.target.inFlight--;
    super.settle(err, output);
  }
}

/** The continuation of a cast: nobody waits for its reply. */
export const ignore = (): void => {};
