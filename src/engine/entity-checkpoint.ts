import type { SnapshotMeta } from '../storage/rows.js';
import type { Persistence } from './persistence.js';
import type { EntityFamilyNode, WorkerNode } from './runtime-tree.js';

/**
 * `App.checkpoint` for entities: snapshots entity `named` (resolved, so woken if it slept) or,
 * without one, every entity of `families` whose log goes past its last snapshot: awake ones as
 * they are, sleeping ones rebuilt aside (`aside`) without waking them, so no hooks run and
 * `maxActive` holds. Found from the log's index: the time grows with the entities that have log
 * rows, not with those asleep and unchanged. Each entity under the loop's lock (`exclusive`) in
 * turn, so requests are served between them. Throws StorageError or RecoveryError.
 */
export async function checkpointEntities(
  families: Iterable<EntityFamilyNode>,
  persistence: Persistence,
  named: string | undefined,
  resolve: (name: string) => WorkerNode,
  aside: (f: EntityFamilyNode, key: string, name: string) => WorkerNode,
  exclusive: <T>(fn: () => Promise<T>) => Promise<T>,
): Promise<SnapshotMeta[]> {
  const out: SnapshotMeta[] = [];
  const take = async (w: WorkerNode): Promise<void> => {
    if (w.status !== 'running') return;
    const meta = await persistence.checkpoint(w, 'checkpoint');
    if (meta) out.push(meta);
  };
  if (named !== undefined) {
    await exclusive(async () => {
      const w = resolve(named);
      if (w.transition) await w.transition;
      await take(w);
    });
    return out;
  }
  for (const f of [...families]) {
    for (const name of persistence.entities.changedSinceSnapshot(f.name)) {
      const key = name.slice(f.name.length + 1);
      await exclusive(async () => {
        // Looked up under the lock: it may have woken or gone to sleep since the listing.
        const awake = f.awake.get(key);
        if (awake) return take(awake);
        const w = aside(f, key, name);
        persistence.restore(w);
        w.status = 'running';
        await take(w);
      });
    }
  }
  return out;
}
