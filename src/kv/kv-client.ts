import { decodeCbor, cbor } from '../encoding/cbor.js';
import type { CallOptions } from '../engine/options.js';
import { EncodeError, describe } from '../errors.js';
import { DEFAULT_UPDATE_ATTEMPTS, InvalidOperationError, UpdateConflictError, type BatchOp, type EntriesOptions, type KV, type SetOptions, type UpdateOptions, type WriteOptions } from './kv-api.js';
import { callOptions, checkKey, checkTtl, ttlField } from './kv-checks.js';
import type { KvInput } from './kv-machine.js';
import type { KvPage } from './kv-page.js';

/**
 * What both embedded KV stores share: every method about one key is one request to the machine
 * that holds the key, checked and encoded the same way. The single-machine store and the
 * partitioned one differ only in where a key's request goes ({@link KvClient.callFor}) and in
 * the methods about many keys (size, batch, range reads).
 */
export abstract class KvClient<V> implements KV<V> {
  abstract readonly path: string;
  abstract readonly partitions: number;
  abstract partitionOf(key: string): number;
  abstract size(): Promise<number>;
  abstract batch(ops: readonly BatchOp<V>[], options?: WriteOptions): Promise<void>;
  abstract entries(options?: EntriesOptions): Promise<[string, V][]>;
  abstract page(options?: EntriesOptions): Promise<KvPage<V>>;
  abstract close(): Promise<void>;
  abstract whenWarm(): Promise<void>;

  /** Sends encoded `bytes` to the machine that holds `key` (any machine for `key` null). */
  protected abstract callFor(key: string | null, bytes: Uint8Array, options: CallOptions): Promise<Uint8Array>;

  /** Encodes `input` (EncodeError for a value CBOR cannot hold), sends it with `call`, decodes the reply. */
  protected async request(input: KvInput, call: (bytes: Uint8Array) => Promise<Uint8Array>): Promise<unknown> {
    let bytes: Uint8Array;
    try {
      bytes = cbor.encode(input);
    } catch (err) {
      throw new EncodeError(`value is not encodable as CBOR: ${describe(err)}`, { cause: err });
    }
    return decodeCbor(await call(bytes));
  }

  /** {@link request} to the machine that holds `key`. */
  protected send(key: string | null, input: KvInput, options: CallOptions = {}): Promise<unknown> {
    return this.request(input, (bytes) => this.callFor(key, bytes, options));
  }

  async get(key: string): Promise<V | undefined> {
    checkKey(key);
    return (await this.send(key, { op: 'lookup', key })) as V | undefined;
  }

  async set(key: string, value: V, options?: SetOptions): Promise<void> {
    checkKey(key);
    const ttlMs = checkTtl(options?.ttlMs);
    await this.send(key, { op: 'store', key, value, ...ttlField(ttlMs) }, callOptions(options));
  }

  async delete(key: string, options?: WriteOptions): Promise<boolean> {
    checkKey(key);
    return (await this.send(key, { op: 'delete', key }, callOptions(options))) as boolean;
  }

  async has(key: string): Promise<boolean> {
    checkKey(key);
    return (await this.send(key, { op: 'has', key })) as boolean;
  }

  async ttl(key: string): Promise<number | null | undefined> {
    checkKey(key);
    const ms = (await this.send(key, { op: 'ttl', key })) as number;
    return ms === -2 ? undefined : ms === -1 ? null : ms;
  }

  async expire(key: string, ttlMs: number, options?: WriteOptions): Promise<boolean> {
    checkKey(key);
    if (ttlMs === undefined) throw new InvalidOperationError('expire needs a ttlMs');
    return (await this.send(key, { op: 'expire', key, ttlMs: checkTtl(ttlMs)! }, callOptions(options))) as boolean;
  }

  async persist(key: string, options?: WriteOptions): Promise<boolean> {
    checkKey(key);
    return (await this.send(key, { op: 'persist', key }, callOptions(options))) as boolean;
  }

  async setIfAbsent(key: string, value: V, options?: SetOptions): Promise<boolean> {
    checkKey(key);
    const ttlMs = checkTtl(options?.ttlMs);
    const out = (await this.send(key, { op: 'storeIf', key, value, when: 'absent', returnOld: false, ...ttlField(ttlMs) }, callOptions(options))) as { stored: boolean };
    return out.stored;
  }

  async compareAndSet(key: string, expected: V | undefined, next: V, options?: SetOptions): Promise<boolean> {
    checkKey(key);
    const ttlMs = checkTtl(options?.ttlMs);
    return (await this.send(key, { op: 'compareAndSet', key, expected, value: next, ...ttlField(ttlMs) }, callOptions(options))) as boolean;
  }

  async update(key: string, fn: (value: V | undefined) => V, options: UpdateOptions = {}): Promise<V> {
    checkKey(key);
    if (typeof fn !== 'function') throw new InvalidOperationError('update needs a function');
    const attempts = options.maxAttempts ?? DEFAULT_UPDATE_ATTEMPTS;
    if (!Number.isSafeInteger(attempts) || attempts < 1) throw new InvalidOperationError(`update: maxAttempts must be a positive integer, got ${String(attempts)}`);
    const ttlMs = checkTtl(options.ttlMs);
    for (let i = 0; i < attempts; i++) {
      const current = await this.get(key);
      const next = fn(current);
      if (await this.compareAndSet(key, current, next, ttlField(ttlMs))) return next;
    }
    throw new UpdateConflictError(key, attempts);
  }
}
