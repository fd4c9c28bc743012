import { LEAF_BUILD, SortedKeys } from './sorted-keys.js';

/**
 * Builds the ordered key index of a {@link ShardedMap} in bounded slices, so that no single
 * macrotask holds the one event loop for long (issue 18.7: one synchronous sort of every key
 * took 0.3-1.1 s at 300k keys and ~3.6 s at 1M, stalling every other client).
 *
 * A merge sort that can stop after any element: shards are collected (whole shards at a time)
 * into runs of about {@link RUN_KEYS} keys, each sorted natively, then runs are merged two at a
 * time, oldest first, until one remains, which becomes the leaves of a {@link SortedKeys}.
 *
 * Writes between slices: a shard not yet collected will be read as it is when collected; for
 * the shards already collected, `noted` keeps the difference between what was collected and the
 * map now (keys added since, keys removed since), applied when the sorted keys are turned into
 * the index. So the result is exactly the map's keys at the moment it is finished.
 *
 * Derived data only: nothing here changes what a read returns, only when its cost is paid.
 */

/** Keys per run sorted natively in one go (a few ms at most). */
export const RUN_KEYS = 8192;

/** Elements merged between two looks at the clock. */
export const MERGE_CHUNK = 4096;

/** Sizes of the units of work; smaller ones let tests interleave writes with every phase. */
export interface IndexBuildSizes {
  /** @default {@link RUN_KEYS} */
  readonly runKeys?: number;
  /** @default {@link MERGE_CHUNK} */
  readonly mergeChunk?: number;
}

interface Merge {
  readonly a: string[];
  readonly b: string[];
  /** Allocated at its final length: growing a million-element array by pushes copies it repeatedly. */
  readonly out: string[];
  i: number;
  j: number;
  k: number;
}

/** The last phase: the one sorted run cut into leaves, a leaf at a time. */
interface Leaves {
  readonly sorted: string[];
  readonly leaves: string[][];
  at: number;
}

export class IndexBuild {
  readonly #shards: readonly ReadonlyMap<string, unknown>[];
  /** Shards collected so far: writes to a shard below this are noted, above it they are seen when it is collected. */
  #collected = 0;
  #gathering: string[] = [];
  /** Sorted runs waiting to be merged, oldest first. */
  readonly #runs: string[][] = [];
  #merge: Merge | null = null;
  #leaves: Leaves | null = null;
  /** Keys added to (and removed from) collected shards since they were collected. */
  readonly #added = new Set<string>();
  readonly #removed = new Set<string>();

  readonly #runKeys: number;
  readonly #mergeChunk: number;

  constructor(shards: readonly ReadonlyMap<string, unknown>[], sizes: IndexBuildSizes = {}) {
    this.#shards = shards;
    this.#runKeys = sizes.runKeys ?? RUN_KEYS;
    this.#mergeChunk = sizes.mergeChunk ?? MERGE_CHUNK;
  }

  /** Call after `key` became a key of shard `shard` (it was not one before). */
  noteAdded(shard: number, key: string): void {
    if (shard >= this.#collected) return;
    if (!this.#removed.delete(key)) this.#added.add(key);
  }

  /** Call after `key` stopped being a key of shard `shard`. */
  noteRemoved(shard: number, key: string): void {
    if (shard >= this.#collected) return;
    if (!this.#added.delete(key)) this.#removed.add(key);
  }

  /**
   * Works for about `budgetMs` (at least one unit of work: a shard, a run's sort, or
   * {@link MERGE_CHUNK} merged keys); returns the index once done, else null. `Infinity`
   * finishes it now.
   */
  step(budgetMs: number): SortedKeys | null {
    const deadline = performance.now() + budgetMs;
    for (;;) {
      if (this.#collected < this.#shards.length) {
        // One shard's keys at a time (about n / 256 with the default shard count).
        for (const k of this.#shards[this.#collected]!.keys()) this.#gathering.push(k);
        this.#collected++;
        const last = this.#collected === this.#shards.length;
        if (this.#gathering.length >= this.#runKeys || (last && this.#gathering.length > 0)) {
          this.#runs.push(this.#gathering.sort());
          this.#gathering = [];
        }
      } else if (this.#merge || this.#runs.length > 1) {
        this.#mergeSome(deadline);
      } else {
        this.#leaves ??= { sorted: this.#runs.pop() ?? [], leaves: [], at: 0 };
        if (this.#cutLeaves(this.#leaves, deadline)) return this.#finish(this.#leaves.leaves);
      }
      if (performance.now() >= deadline) return null;
    }
  }

  /** Advances the current merge (starting the next one if none) until done or past `deadline`. */
  #mergeSome(deadline: number): void {
    if (!this.#merge) {
      const a = this.#runs.shift()!;
      const b = this.#runs.shift()!;
      this.#merge = { a, b, out: new Array<string>(a.length + b.length), i: 0, j: 0, k: 0 };
    }
    const m = this.#merge;
    const { a, b, out } = m;
    let { i, j, k } = m;
    while (i < a.length && j < b.length) {
      const stop = k + this.#mergeChunk;
      while (k < stop && i < a.length && j < b.length) out[k++] = a[i]! < b[j]! ? a[i++]! : b[j++]!;
      if (performance.now() >= deadline) break;
    }
    if (i < a.length && j < b.length) {
      m.i = i;
      m.j = j;
      m.k = k;
      return;
    }
    // One side is exhausted: the rest of the other is already in order.
    for (; i < a.length; i++) out[k++] = a[i]!;
    for (; j < b.length; j++) out[k++] = b[j]!;
    this.#runs.push(out);
    this.#merge = null;
  }

  /** Cuts leaves of {@link LEAF_BUILD} keys, leaving out keys removed since; true once all are cut. */
  #cutLeaves(l: Leaves, deadline: number): boolean {
    const removed = this.#removed;
    while (l.at < l.sorted.length) {
      const end = Math.min(l.at + LEAF_BUILD * 8, l.sorted.length);
      for (; l.at < end; l.at += LEAF_BUILD) {
        const leaf = l.sorted.slice(l.at, Math.min(l.at + LEAF_BUILD, end));
        const kept = removed.size === 0 ? leaf : leaf.filter((key) => !removed.has(key));
        if (kept.length > 0) l.leaves.push(kept);
      }
      if (performance.now() >= deadline) return false;
    }
    return true;
  }

  /** The index of the leaves cut, plus the keys added since their shards were collected. */
  #finish(leaves: string[][]): SortedKeys {
    const index = SortedKeys.fromLeaves(leaves);
    for (const k of this.#added) index.add(k);
    return index;
  }
}
