import { backupDatabase } from '../../storage/backup.js';
import type { BackupReport } from '../../storage/reports.js';
import { StoreReader } from '../../storage/store-reader.js';
import { parseCommand } from '../args.js';
import { EXIT, usageGuard } from '../common.js';
import { bytes } from '../format.js';
import { progress, type Progress } from '../progress.js';

export const summary = 'copy a database while it serves: consistent, verified, never overwriting';

const USAGE = `Usage: ssm backup [--db PATH] DEST

Copies the database to DEST with SQLite's online backup API: one consistent snapshot, taken
while a server keeps writing (nothing waits for it). The copy is verified (quick_check and every
snapshot and log checksum) before it appears as DEST, its writer claim is cleared, and it is a
database of its own: restore by opening it (ssm serve --db DEST). Never overwrites DEST.
Read-only on the source: safe while a server runs.

Options:
  --db PATH    database to copy (default storage/ssm.db)`;

/** A verified online copy of `store` at `dest`, with a progress bar on a terminal. */
export async function copyWithProgress(store: StoreReader, dest: string): Promise<BackupReport> {
  let bar: Progress | null = null;
  let shown = 0;
  try {
    return await backupDatabase(store.db, store.path, dest, false, {
      onProgress: (done, total) => {
        bar ??= progress('copying pages', total);
        bar.add(done - shown);
        shown = done;
      },
    });
  } finally {
    (bar as Progress | null)?.done();
  }
}

export async function run(argv: string[]): Promise<number> {
  return usageGuard('backup', async () => {
    const { values, positionals } = parseCommand(argv, { db: { type: 'string' } }, USAGE);
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    if (positionals.length !== 1) {
      console.error(USAGE);
      return EXIT.usage;
    }
    const store = StoreReader.open(values.db);
    try {
      const report = await copyWithProgress(store, positionals[0]!);
      console.log(`backed up ${store.path} to ${report.path}: ${bytes(report.bytes)} (${report.pages} pages) in ${Math.round(report.copyMs)} ms, verified in ${Math.round(report.verifyMs)} ms`);
      return 0;
    } finally {
      store.close();
    }
  });
}
