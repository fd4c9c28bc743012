import { runDemo } from '../../kv/demo.js';
import { parseCommand } from '../args.js';
import { announcingNewDatabase, usageGuard } from '../common.js';
import { DEFAULT_DB_PATH } from '../../storage/store-options.js';

export const summary = 'crash kv2 on purpose and watch it recover x = 1 from its log';

const USAGE = `Usage: ssm demo [--db PATH]

Runs the demo on the KV tree one_for_one[kv1, rest_for_one[kv2, kv3]]: stores x = 1 in
kv2, crashes kv2 on purpose, and shows that the restarted kv2 still answers x = 1 (recovered
from its request log). Run it twice: the second run starts from the first run's data. When
--db names no existing file, a new database is created and stderr says so.

Options:
  --db PATH   database file (default storage/ssm.db)`;

export async function run(argv: string[]): Promise<number> {
  return usageGuard('demo', async () => {
    const { values } = parseCommand(argv, { db: { type: 'string' } }, USAGE, false);
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    const db = values.db ?? DEFAULT_DB_PATH;
    await announcingNewDatabase(db, () => runDemo({ db }));
    return 0;
  });
}
