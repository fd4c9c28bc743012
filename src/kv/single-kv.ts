import type { App } from '../engine/application.js';
import type { CallOptions } from '../engine/options.js';
import type { BatchOp, EntriesOptions, WriteOptions } from './kv-api.js';
import { callOptions, checkBatchOps, checkKey, checkPageRange, checkRange, rangeOf } from './kv-checks.js';
import { KvClient } from './kv-client.js';
import type { KvInput } from './kv-machine.js';
import { MAX_PAGE_LIMIT, type KvPage } from './kv-page.js';

/** Name of the one machine behind an {@link openKV} store without partitions (as seen by `ssm inspect`). */
export const KV_MACHINE = 'kv';

/** The store of {@link openKV} without `partitions`: every request goes to the one machine {@link KV_MACHINE}. */
export class SingleKV<V> extends KvClient<V> {
  readonly partitions = 1;

  constructor(private readonly app: App) {
    super();
  }

  get path(): string {
    return this.app.databasePath;
  }

  partitionOf(key: string): number {
    checkKey(key);
    return 0;
  }

  protected callFor(_key: string | null, bytes: Uint8Array, options: CallOptions): Promise<Uint8Array> {
    return this.app.callBytes(KV_MACHINE, bytes, options);
  }

  async size(): Promise<number> {
    return (await this.send(null, { op: 'size' })) as number;
  }

  async batch(ops: readonly BatchOp<V>[], options?: WriteOptions): Promise<void> {
    const checked = checkBatchOps(ops);
    await this.send(null, { op: 'batch', ops: checked as KvInput[] }, callOptions(options));
  }

  async entries(options: EntriesOptions = {}): Promise<[string, V][]> {
    checkRange('entries', options);
    const { limit = Number.POSITIVE_INFINITY } = options;
    const out: [string, V][] = [];
    const range = rangeOf(options);
    while (out.length < limit) {
      const page = (await this.send(null, { op: 'scan', ...range, limit: Math.min(limit - out.length, MAX_PAGE_LIMIT) } as KvInput)) as KvPage<V>;
      out.push(...page.entries);
      if (page.next === null) break;
      range['after'] = page.next;
    }
    return out;
  }

  async page(options: EntriesOptions = {}): Promise<KvPage<V>> {
    checkPageRange(options);
    return (await this.send(null, { op: 'scan', ...rangeOf(options), limit: options.limit } as KvInput)) as KvPage<V>;
  }

  whenWarm(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return this.app.stop();
  }
}
