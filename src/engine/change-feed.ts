/** The public types of change feeds ({@link App.subscribe}); the machinery is in subscriptions.ts. */

/** One committed state-changing request of a machine, as a subscriber sees it. */
export interface ChangeEvent {
  readonly machine: string;
  readonly seq: number;
  /** The logged input (a copy, as replay decodes it). */
  readonly input: unknown;
  /** The step's output (a copy through CBOR; `undefined` if it was not encodable). */
  readonly output: unknown;
}

/** Options of {@link App.subscribe}. */
export interface SubscribeOptions {
  /**
   * First seq to deliver (inclusive): older ones are read back from storage, then delivery goes
   * on live. Past the machine's end: waits for it.
   * @default the machine's next seq (live only)
   */
  readonly fromSeq?: number;
  /**
   * Most events waiting for the listener; beyond it the subscription ends with
   * SubscriberTooSlowError (resumable from its `lastSeq + 1`).
   * @default 10000
   */
  readonly maxBuffered?: number;
}

/** How a subscription ended. */
export type SubscriptionEnd =
  | { readonly reason: 'closed' }
  | { readonly reason: 'stopped' }
  /** SubscriberTooSlowError, LogTruncatedError, the listener's own error, or a storage error while catching up. */
  | { readonly reason: 'error'; readonly error: unknown };

/** A running subscription. */
export interface Subscription {
  /** The seq of the last event the listener finished with (fromSeq - 1 before the first). */
  readonly lastSeq: number;
  readonly ended: Promise<SubscriptionEnd>;
  /** Ends it (idempotent); events not yet delivered are dropped. */
  close(): void;
}

export type ChangeListener = (event: ChangeEvent) => void | Promise<void>;
