const NONE: readonly number[] = [];

/**
 * The idempotency keys retained on disk, in memory as 32-bit fingerprints: says which record
 * rows may hold a key without reading the database, so a new key (the common case) costs a hash
 * and a probe, and a retry one read of its row. About 20 bytes a key. A record is the keys of one
 * machine in one batch; records are kept in commit order and retention forgets the oldest first.
 * An open-addressing table with linear probing; a slot is empty when its record id is 0.
 */
export class IdempotencyIndex {
  private fps = new Uint32Array(1024);
  private recs = new Float64Array(1024);
  private mask = 1023;
  private used = 0;
  // The records, oldest first, from `head` on.
  private ids: number[] = [];
  private createdAt: number[] = [];
  private members: Uint32Array[] = [];
  private head = 0;
  private keys = 0;
  private newest = 0;

  /** Keys retained. */
  get size(): number {
    return this.keys;
  }

  /** The highest record id ever added (0: none). */
  get lastId(): number {
    return this.newest;
  }

  /** A committed record: `fingerprints` of its keys, committed at `createdAtMs`. Ids must increase. */
  add(id: number, createdAtMs: number, fingerprints: Uint32Array): void {
    while ((this.used + fingerprints.length) * 2 > this.fps.length) this.grow();
    for (const fp of fingerprints) this.insert(fp, id);
    this.ids.push(id);
    this.createdAt.push(createdAtMs);
    this.members.push(fingerprints);
    this.keys += fingerprints.length;
    this.newest = id;
  }

  /** Ids of the records that may hold a key of fingerprint `fp`; empty: it is certainly not retained. */
  candidates(fp: number): readonly number[] {
    const { fps, recs, mask } = this;
    let out: number[] | null = null;
    for (let i = fp & mask; recs[i] !== 0; i = (i + 1) & mask) if (fps[i] === fp) (out ??= []).push(recs[i]!);
    return out ?? NONE;
  }

  /**
   * Forgets the records committed before `beforeMs`, then the oldest beyond `maxKeys` keys.
   * Returns the highest id forgotten (null: none), for the rows to remove.
   */
  expire(beforeMs: number, maxKeys: number): number | null {
    let last: number | null = null;
    while (this.head < this.ids.length && (this.createdAt[this.head]! < beforeMs || this.keys > maxKeys)) {
      const id = this.ids[this.head]!;
      const fps = this.members[this.head]!;
      for (const fp of fps) this.remove(fp, id);
      this.keys -= fps.length;
      last = id;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.ids.length) {
      this.ids = this.ids.slice(this.head);
      this.createdAt = this.createdAt.slice(this.head);
      this.members = this.members.slice(this.head);
      this.head = 0;
    }
    return last;
  }

  private insert(fp: number, id: number): void {
    let i = fp & this.mask;
    while (this.recs[i] !== 0) i = (i + 1) & this.mask;
    this.fps[i] = fp;
    this.recs[i] = id;
    this.used++;
  }

  /** Removes one (fp, id) slot, shifting the rest of its probe run back so no lookup stops short. */
  private remove(fp: number, id: number): void {
    const { fps, recs, mask } = this;
    let i = fp & mask;
    while (recs[i] !== 0 && !(fps[i] === fp && recs[i] === id)) i = (i + 1) & mask;
    if (recs[i] === 0) return;
    for (let j = (i + 1) & mask; recs[j] !== 0; j = (j + 1) & mask) {
      const home = fps[j]! & mask;
      // The entry at j may move to the hole at i only if its home is not cyclically in (i, j].
      const stays = i <= j ? home > i && home <= j : home > i || home <= j;
      if (stays) continue;
      fps[i] = fps[j]!;
      recs[i] = recs[j]!;
      i = j;
    }
    recs[i] = 0;
    this.used--;
  }

  private grow(): void {
    const oldFps = this.fps;
    const oldRecs = this.recs;
    this.fps = new Uint32Array(oldFps.length * 2);
    this.recs = new Float64Array(oldFps.length * 2);
    this.mask = this.fps.length - 1;
    this.used = 0;
    for (let i = 0; i < oldFps.length; i++) if (oldRecs[i] !== 0) this.insert(oldFps[i]!, oldRecs[i]!);
  }
}
