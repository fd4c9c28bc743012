import type { SnapshotMeta } from '../storage/rows.js';
import type { Persistence } from './persistence.js';
import type { EntityFamilyNode, WorkerNode } from './runtime-tree.js';

/**
 * `App.checkpoint` for entities: snapshots `named` (an entity just resolved, so woken if it
 * slept) or, without one, every entity of `families` whose log goes past its last snapshot:
 * awake ones as they are, sleeping ones rebuilt aside (`aside`) without waking them, so no hooks
 * run and `maxActive` holds, one at a time. Found from the log's index: the time grows with the
 * entities that have log rows, not with those asleep and unchanged. Under the loop's lock.
 * Throws StorageError or RecoveryError.
 */
export async function checkpointEntities(
  families: Iterable<EntityFamilyNode>,
  persistence: Persistence,
  named: WorkerNode | undefined,
  aside: (f: EntityFamilyNode, key: string, name: string) => WorkerNode,
): Promise<SnapshotMeta[]> {
  const out: SnapshotMeta[] = [];
  const take = async (w: WorkerNode): Promise<void> => {
    const meta = await persistence.checkpoint(w, 'checkpoint');
    if (meta) out.push(meta);
  };
  if (named) {
    if (named.transition) await named.transition;
    if (named.status === 'running') await take(named);
    return out;
  }
  for (const f of families) {
    for (const name of persistence.entities.changedSinceSnapshot(f.name)) {
      const key = name.slice(f.name.length + 1);
      const awake = f.awake.get(key);
      if (awake) {
        if (awake.status === 'running') await take(awake);
        continue;
      }
      const w = aside(f, key, name);
      persistence.restore(w);
      await take(w);
    }
  }
  return out;
}
