import { ConfigError, UnknownMachineError } from '../errors.js';
import type { EntityListing, EntityPageOptions } from '../storage/rows.js';
import type { Persistence } from './persistence.js';
import type { EntityFamilyNode } from './runtime-tree.js';

/** Most entities listed per page by `app.entities()`. */
export const MAX_ENTITY_PAGE = 1000;

/** The number of registered entities of `f`: counted in storage once (an index range), then kept up to date in memory. */
export function knownEntities(persistence: Persistence, f: EntityFamilyNode): number {
  if (f.known === null) {
    try {
      f.known = persistence.entities.count(f.name);
    } catch {
      return 0;
    }
  }
  return f.known;
}

/**
 * One page of family `f`'s registered entities in key order, an awake one with its live seq.
 * Throws UnknownMachineError (no such family), ConfigError, StorageError.
 */
export function listEntities(persistence: Persistence, f: EntityFamilyNode | undefined, name: string, options: EntityPageOptions): EntityListing[] {
  if (!f) throw new UnknownMachineError(name);
  if (options === null || typeof options !== 'object') throw new ConfigError('entities options must be an object');
  const { prefix = '', after = '', limit = 100 } = options;
  if (typeof prefix !== 'string' || typeof after !== 'string') throw new ConfigError('prefix and after must be strings');
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_ENTITY_PAGE) throw new ConfigError(`limit must be an integer in 1..${MAX_ENTITY_PAGE}, got ${String(limit)}`);
  return persistence.entities.page(f.name, prefix, after, limit).map((row) => {
    const w = f.awake.get(row.key);
    if (!w || w.status === 'stopped') return { ...row, awake: false };
    return { key: row.key, seq: w.seq, snapshotSeq: w.snapshotSeq, awake: true };
  });
}
