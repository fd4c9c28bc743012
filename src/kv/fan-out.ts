/**
 * Requests to many partitions at once, at most {@link FAN_OUT} in flight: enough to fill a batch
 * (one group commit, one trip through the event loop), while a store of thousands of partitions
 * does not fill the application's queue (`queueCapacity`, 1024 by default) by itself and turn a
 * `size` into QueueFullError.
 */
export const FAN_OUT = 64;

/** `fn(i)` for every `i` of `items`, at most {@link FAN_OUT} pending at once; results in order. */
export async function fanOut<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(FAN_OUT, items.length) }, lane));
  return out;
}
