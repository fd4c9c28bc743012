import { cbor } from '../../src/encoding/cbor.js';
import { ShardedMap } from '../../src/encoding/sharded-map.js';
import { KV_STATE_VERSION } from '../../src/kv/kv-machine.js';
import { Store } from '../../src/storage/store.js';

/**
 * Writes a KV database whose machine `name` holds `entries` keys `key000000`.. (value: the
 * index) as one snapshot at seq 1, through the Store API: seconds faster than that many calls.
 */
export function writeBigKvDb(path: string, entries: number, name = 'big'): void {
  const state = new ShardedMap<number>();
  for (let i = 0; i < entries; i++) state.set(`key${String(i).padStart(6, '0')}`, i);
  const store = Store.open(path);
  try {
    store.registerMachines([{ name, version: KV_STATE_VERSION }]);
    store.writeSnapshot(name, 1, KV_STATE_VERSION, cbor.encode(state), 'test', 2, false);
  } finally {
    store.close();
  }
}
