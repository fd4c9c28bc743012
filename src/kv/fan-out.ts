/**
 * Requests to many partitions at once, at most {@link FAN_OUT} in flight: enough to fill a batch
 * (one group commit, one trip through the event loop), while a store of thousands of partitions
 * does not fill the application's queue (`queueCapacity`, 1024 by default) by itself and turn a
 * `size` into QueueFullError.
 */
export const FAN_OUT = 64;

/** At most how many requests a fan-out keeps in flight for an application of `queueCapacity`: a quarter of it, so that a range read leaves room for other callers. */
export function fanOutWidth(queueCapacity: number): number {
  return Math.max(1, Math.min(FAN_OUT, Math.floor(queueCapacity / 4)));
}

/**
 * `fn(i)` for every `i` of `items`, at most `width` pending at once; results in order. The first
 * failure stops sending more (those in flight finish) and is what it rejects with.
 */
export async function fanOut<T, R>(items: readonly T[], fn: (item: T) => Promise<R>, width = FAN_OUT): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const lane = async (): Promise<void> => {
    while (next < items.length && !failed) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
  return out;
}
