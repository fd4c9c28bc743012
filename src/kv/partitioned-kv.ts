import type { App } from '../engine/application.js';
import type { CallOptions } from '../engine/options.js';
import { InvalidOperationError, type BatchOp, type EntriesOptions, type WriteOptions } from './kv-api.js';
import { callOptions, checkBatchOps, checkKey, checkPageRange, checkRange, rangeOf } from './kv-checks.js';
import { KvClient } from './kv-client.js';
import type { KvInput } from './kv-machine.js';
import { fanOut } from './fan-out.js';
import { MergedScan } from './kv-merge.js';
import { DEFAULT_PAGE_LIMIT, MAX_PAGE_BYTES, type KvPage } from './kv-page.js';
import { partitionMachine, partitionOf } from './partition-hash.js';
import { PartitionWarmer } from './partition-warm.js';

/**
 * The store of {@link openKV} with `partitions: P`: each key lives in one of P entities of the
 * family `kv` (`kv/p0`..`kv/p<P-1>`, chosen by {@link partitionOf}), each with its own log and
 * snapshots, woken on its first request. A request about one key is one request to its
 * partition, with the single machine's semantics; `size` sums the partitions, range reads merge
 * them (kv-merge.ts), and a batch must stay within one partition to stay atomic.
 */
export class PartitionedKV<V> extends KvClient<V> {
  private readonly machines: string[];
  private readonly warmer: PartitionWarmer;

  constructor(
    private readonly app: App,
    readonly partitions: number,
    warm: boolean,
    /** Most requests a fan-out (size, range reads) keeps in flight: see fanOutWidth. */
    private readonly width: number,
  ) {
    super();
    this.machines = Array.from({ length: partitions }, (_, i) => partitionMachine(i));
    this.warmer = new PartitionWarmer((i) => this.sendPartition(i, { op: 'size' }), partitions, () => this.app.queueDepth > 0);
    if (warm) this.warmer.start();
  }

  get path(): string {
    return this.app.databasePath;
  }

  partitionOf(key: string): number {
    checkKey(key);
    return partitionOf(key, this.partitions);
  }

  protected callFor(key: string | null, bytes: Uint8Array, options: CallOptions): Promise<Uint8Array> {
    return this.app.callBytes(this.machines[key === null ? 0 : partitionOf(key, this.partitions)]!, bytes, options);
  }

  /** {@link request} to partition `partition`. */
  private sendPartition(partition: number, input: KvInput, options: CallOptions = {}): Promise<unknown> {
    return this.request(input, (bytes) => this.app.callBytes(this.machines[partition]!, bytes, options));
  }

  async size(): Promise<number> {
    const sizes = await fanOut(this.machines.map((_, i) => i), (i) => this.sendPartition(i, { op: 'size' }), this.width);
    return (sizes as number[]).reduce((a, b) => a + b, 0);
  }

  /**
   * Atomic only within one partition: ops on keys of several partitions are refused with
   * InvalidOperationError before anything is sent (a step is atomic per machine, and partitions
   * are separate machines; applying each partition's share on its own could leave half a batch
   * after a crash).
   */
  async batch(ops: readonly BatchOp<V>[], options?: WriteOptions): Promise<void> {
    const checked = checkBatchOps(ops);
    const used = [...new Set(checked.map((o) => partitionOf(o.key, this.partitions)))].sort((a, b) => a - b);
    if (used.length > 1) {
      const shown = used.length > 6 ? `${used.slice(0, 6).join(', ')}, ...` : used.join(', ');
      throw new InvalidOperationError(
        `batch: its keys fall in ${used.length} partitions (${shown} of ${this.partitions}), and a batch is atomic only within one partition, so it was refused and nothing was applied. ` +
          `Group the ops by kv.partitionOf(key) and send one batch per partition (each atomic on its own), or use a store without partitions for batches across any keys.`,
      );
    }
    // An empty batch changes nothing; it goes to partition 0 so that its idempotency key is kept as the single machine keeps it.
    await this.sendPartition(used[0] ?? 0, { op: 'batch', ops: checked as KvInput[] }, callOptions(options));
  }

  private scan(options: EntriesOptions): MergedScan<V> {
    return new MergedScan<V>((i, range, limit) => this.sendPartition(i, { op: 'scan', ...range, limit } as KvInput) as Promise<KvPage<V>>, this.partitions, rangeOf(options), this.width);
  }

  async entries(options: EntriesOptions = {}): Promise<[string, V][]> {
    checkRange('entries', options);
    return (await this.scan(options).take(options.limit ?? Number.POSITIVE_INFINITY, null)).entries;
  }

  async page(options: EntriesOptions = {}): Promise<KvPage<V>> {
    checkPageRange(options);
    return this.scan(options).take(options.limit ?? DEFAULT_PAGE_LIMIT, MAX_PAGE_BYTES);
  }

  /** See KV.whenWarm: once warming has been through every partition (at once without `warm`, or once closing stopped it). */
  whenWarm(): Promise<void> {
    return this.warmer.done;
  }

  /** Partitions in memory now (loaded by warming or by a request, not yet put to sleep). */
  awake(): number {
    const root = this.app.status();
    const family = root.kind === 'supervisor' ? root.children.find((c) => c.kind === 'entities') : undefined;
    return family?.kind === 'entities' ? family.awake : 0;
  }

  async close(): Promise<void> {
    this.warmer.stop();
    await this.app.stop();
  }
}
