/**
 * An ordered set of strings (UTF-16 code unit order) for range reads: a list of sorted leaves of
 * at most {@link LEAF_MAX} keys, found by binary search over each leaf's last key (the layout of
 * Python's `sortedcontainers`). Insert and delete cost O(log n + LEAF_MAX) (a binary search and
 * one short `splice`); a page of `limit` keys after a cursor costs O(log n + limit).
 *
 * Why not a sorted array with a pending-insert buffer: merging the buffer is O(n) per read that
 * follows a write, so paging through a store under writes would cost O(n) per page. Why not a
 * B+tree: the same bounds with far more code; with leaves of ~1,000 keys the leaf index of a
 * million keys is only ~1,000 entries, so a flat array of leaves is enough.
 *
 * Pure data: no I/O, never persisted (it is derived from the keys of a map).
 */

/** Keys a leaf holds at most before it splits in two. */
export const LEAF_MAX = 1024;

/** Keys of each leaf of a fresh build: half full leaves leave room for inserts before the first splits. */
export const LEAF_BUILD = LEAF_MAX / 2;

/** First index in the sorted `arr` whose element is > `key` (`strict`) or >= `key`. */
function bound(arr: readonly string[], key: string, strict: boolean): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const v = arr[mid]!;
    if (v < key || (strict && v === key)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class SortedKeys {
  /** Non-empty sorted leaves, in order; every key of leaf i is below every key of leaf i + 1. */
  #leaves: string[][] = [];
  /** The last key of each leaf (what the binary search over leaves compares with). */
  #maxes: string[] = [];
  #size = 0;

  /** Builds from any keys, unsorted and without duplicates (the keys of a map). */
  static fromUnsorted(keys: string[]): SortedKeys {
    return SortedKeys.fromSorted(keys.sort());
  }

  /** Builds from keys already in ascending order, without duplicates (adopts nothing: copies into leaves). */
  static fromSorted(keys: readonly string[]): SortedKeys {
    const leaves: string[][] = [];
    for (let i = 0; i < keys.length; i += LEAF_BUILD) leaves.push(keys.slice(i, i + LEAF_BUILD));
    return SortedKeys.fromLeaves(leaves);
  }

  /**
   * Adopts leaves already cut: each non-empty and sorted, each wholly below the next, at most
   * {@link LEAF_MAX} keys (the incremental build cuts them in slices, see `index-build.ts`).
   */
  static fromLeaves(leaves: string[][]): SortedKeys {
    const s = new SortedKeys();
    s.#leaves = leaves;
    s.#maxes = leaves.map((leaf) => leaf[leaf.length - 1]!);
    for (const leaf of leaves) s.#size += leaf.length;
    return s;
  }

  get size(): number {
    return this.#size;
  }

  /** Adds `key`; returns false if it was already there. */
  add(key: string): boolean {
    if (this.#leaves.length === 0) {
      this.#leaves.push([key]);
      this.#maxes.push(key);
      this.#size = 1;
      return true;
    }
    // The first leaf whose last key is >= key; past the end: the last leaf (key is a new maximum).
    let li = bound(this.#maxes, key, false);
    if (li === this.#leaves.length) li--;
    const leaf = this.#leaves[li]!;
    const at = bound(leaf, key, false);
    if (leaf[at] === key) return false;
    leaf.splice(at, 0, key);
    this.#maxes[li] = leaf[leaf.length - 1]!;
    this.#size++;
    if (leaf.length > LEAF_MAX) {
      const upper = leaf.splice(leaf.length >>> 1);
      this.#leaves.splice(li + 1, 0, upper);
      this.#maxes.splice(li, 1, leaf[leaf.length - 1]!, upper[upper.length - 1]!);
    }
    return true;
  }

  /** Removes `key`; returns false if it was not there. */
  delete(key: string): boolean {
    const li = bound(this.#maxes, key, false);
    const leaf = this.#leaves[li];
    if (!leaf) return false;
    const at = bound(leaf, key, false);
    if (leaf[at] !== key) return false;
    leaf.splice(at, 1);
    this.#size--;
    if (leaf.length === 0) {
      this.#leaves.splice(li, 1);
      this.#maxes.splice(li, 1);
    } else {
      this.#maxes[li] = leaf[leaf.length - 1]!;
    }
    return true;
  }

  has(key: string): boolean {
    const leaf = this.#leaves[bound(this.#maxes, key, false)];
    return leaf !== undefined && leaf[bound(leaf, key, false)] === key;
  }

  /**
   * Keys in ascending order, starting after `after` (exclusive; from the first key if
   * undefined) or at `from` (inclusive), whichever is later. Lazy: the caller stops it.
   */
  *from(after: string | undefined, from = ''): Generator<string> {
    const startAfter = after !== undefined && after >= from;
    const key = startAfter ? after : from;
    let li = bound(this.#maxes, key, startAfter);
    if (li >= this.#leaves.length) return;
    let at = bound(this.#leaves[li]!, key, startAfter);
    for (; li < this.#leaves.length; li++, at = 0) {
      const leaf = this.#leaves[li]!;
      for (; at < leaf.length; at++) yield leaf[at]!;
    }
  }

  /**
   * Keys in descending order, starting below `before` (exclusive; from the last key if
   * undefined). Lazy: the caller stops it (range reads in reverse).
   */
  *below(before: string | undefined): Generator<string> {
    let li: number;
    let at: number;
    if (before === undefined) {
      li = this.#leaves.length - 1;
      at = li >= 0 ? this.#leaves[li]!.length - 1 : -1;
    } else {
      // The first leaf whose last key is >= before; its keys below `before` come first.
      li = bound(this.#maxes, before, false);
      if (li === this.#leaves.length) {
        li--;
        at = li >= 0 ? this.#leaves[li]!.length - 1 : -1;
      } else {
        at = bound(this.#leaves[li]!, before, false) - 1;
      }
    }
    for (; li >= 0; li--, at = li >= 0 ? this.#leaves[li]!.length - 1 : -1) {
      const leaf = this.#leaves[li]!;
      for (; at >= 0; at--) yield leaf[at]!;
    }
  }
}
