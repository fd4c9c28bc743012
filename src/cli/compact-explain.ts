import type { StoreReader } from '../storage/store-reader.js';
import { bytes } from './format.js';

/**
 * Why `ssm compact` removed nothing, and what would free space: the lines it prints when it
 * pruned no log row and no snapshot (issue 11.9: "saved 0 B" with no reason reads like a bug).
 * Reads only what the retention rule looks at: each machine's good snapshots and its log.
 */
export function explainNothingPruned(store: StoreReader, names: readonly string[], keep: number, fileBytes: number): string[] {
  const kept = keep === 1 ? 'the newest snapshot of each machine and the log after it are' : `the newest ${keep} snapshots of each machine and the log back to the oldest of them are`;
  const lines = [`nothing could be removed (--keep ${keep}: ${kept} kept):`];
  let logTotal = 0;
  let snapshotTotal = 0;
  let logBeyondNewest = false;
  for (const name of names) {
    const good = store.snapshots(name).filter((s) => s.rejected === null);
    const log = store.logBytes(name);
    logTotal += log;
    for (const s of good) snapshotTotal += s.size;
    const count = `${good.length} snapshot${good.length === 1 ? '' : 's'}`;
    if (log === 0) {
      lines.push(`  ${name}: ${count}, no log left to prune`);
      continue;
    }
    if (good.length < keep) {
      lines.push(`  ${name}: ${count}, fewer than --keep ${keep}, so its whole log (${bytes(log)}) is kept: recovery can still start from init if a snapshot is ever corrupt`);
    } else {
      lines.push(`  ${name}: ${count}; its ${bytes(log)} of log is what the kept snapshots need`);
    }
    // With --keep 1 only the log after the newest snapshot stays, and compact snapshots first.
    if (keep > 1) logBeyondNewest = true;
  }
  lines.push(`the file (${bytes(fileBytes)}) holds ${bytes(logTotal)} of log and ${bytes(snapshotTotal)} of snapshots; the rest is SQLite's own pages (schema, indexes, free space VACUUM could not return)`);
  if (logBeyondNewest) {
    lines.push('to free more: ssm compact --keep 1 keeps only the newest snapshot of each machine and drops the log before it (no older fall-backs, and no history for ssm inspect --at or ssm log)');
  } else {
    lines.push('this is as small as ssm compact makes it: what remains is the newest state of each machine');
  }
  return lines;
}
