import { DatabaseLockedError, SsmError } from '../../errors.js';
import { CrashHistory } from '../../storage/crash-history.js';
import { Store } from '../../storage/store.js';
import { StoreReader } from '../../storage/store-reader.js';
import { hasTable } from '../../storage/migrations.js';
import { parseCommand } from '../args.js';
import { positionalsAtMost, usageGuard } from '../common.js';
import { releaseOnInterrupt } from '../interrupt.js';
import { requireMachine } from '../machines.js';

export const summary = 'list machines held back after a crash loop, or release one so it runs again';

const USAGE = `Usage: ssm release [MACHINE] [--db PATH]

A machine that crashed (a step threw, or its start failed) in several runs of the application
within a window (ApplicationOptions.crashLoop; 5 runs in 10 minutes by default) is held back:
the rest of the tree serves, its callers get MACHINE_HELD. Without MACHINE, lists the machines
held back and why. With MACHINE, releases it: its earlier crashes no longer count, and it starts
from its durable state at the next start of the application. A running server holds the
database: release through it instead (POST /v1/machines/MACHINE/release).

Options:
  --db PATH    database file (default storage/ssm.db)`;

export async function run(argv: string[]): Promise<number> {
  return usageGuard('release', async () => {
    const { values, positionals } = parseCommand(argv, { db: { type: 'string' } }, USAGE);
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    positionalsAtMost(positionals, 1, USAGE);
    const name = positionals[0];
    if (name === undefined) {
      // Listing only reads: safe while a server runs.
      const reader = StoreReader.open(values.db);
      try {
        const held = hasTable(reader.db, 'held_machines') ? new CrashHistory(reader.db, reader.path).listHeld() : [];
        for (const h of held) console.log(`${h.machine}  held since ${h.heldAt}: crashed in ${h.runs} runs within ${h.windowMs} ms; last error: ${h.lastError ?? '-'}`);
        if (held.length === 0) console.error('no machine is held back');
        return 0;
      } finally {
        reader.close();
      }
    }
    let store: Store;
    try {
      store = await releaseOnInterrupt(Promise.resolve(Store.open(values.db, { create: false })), (s) => s.close());
    } catch (err) {
      if (err instanceof DatabaseLockedError) throw new SsmError(err.code, `${err.message}; release through the running server: curl -X POST http://127.0.0.1:7411/v1/machines/${name}/release`);
      throw err;
    }
    try {
      const crashes = new CrashHistory(store.db, store.path);
      requireMachine(store, name);
      if (crashes.release(name, Date.now())) console.log(`${name} released: it starts at the next start of the application`);
      else console.error(`${name} was not held back: nothing to release`);
      return 0;
    } finally {
      store.close();
    }
  });
}
