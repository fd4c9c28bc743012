import { StoreReader } from '../../storage/store-reader.js';
import { Store } from '../../storage/store.js';
import { rewindMachine, type RewindReport } from '../../storage/rewind.js';
import { rmSync } from 'node:fs';
import { parseCommand, intFlag } from '../args.js';
import { EXIT, usageGuard } from '../common.js';
import { requireMachine } from '../machines.js';
import { copyWithProgress } from './backup.js';

export const summary = 'make a copy of a database with one machine as of an earlier seq (point-in-time restore)';

const USAGE = `Usage: ssm restore SRC DEST --machine NAME --at SEQ

Writes DEST: a verified copy of SRC (as ssm backup makes it) in which machine NAME is rewound to
sequence number SEQ: its snapshots and logged requests after SEQ are removed, with the
idempotency keys and timers they set. Started on DEST, NAME has its state as of SEQ; every other
machine is as in SRC. Possible within what SRC retains (a snapshot at or before SEQ, or the log
back to seq 1; see ssm inspect NAME --at SEQ to look first). Timers that fired after SEQ are not
brought back. SRC is only read (safe while a server runs); DEST must not exist.

Options:
  --machine NAME   the machine to rewind
  --at SEQ         its sequence number in DEST`;

export async function run(argv: string[]): Promise<number> {
  return usageGuard('restore', async () => {
    const { values, positionals } = parseCommand(argv, { machine: { type: 'string' }, at: { type: 'string' } }, USAGE);
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    const at = intFlag('at', values.at);
    if (positionals.length !== 2 || values.machine === undefined || at === undefined) {
      console.error(USAGE);
      return EXIT.usage;
    }
    const [src, dest] = positionals as [string, string];
    const source = StoreReader.open(src);
    try {
      requireMachine(source, values.machine);
      await copyWithProgress(source, dest);
    } finally {
      source.close();
    }
    const copy = Store.open(dest, { create: false });
    let report: RewindReport;
    try {
      report = rewindMachine(copy.db, values.machine, at);
    } catch (err) {
      // A copy that is not what was asked for must not be left looking like it.
      copy.close();
      for (const f of [dest, `${dest}-wal`, `${dest}-shm`]) rmSync(f, { force: true });
      throw err;
    }
    copy.close();
    const r = report;
    console.log(`wrote ${dest}: ${r.machine} rewound from seq ${r.from} to seq ${r.seq} (${r.requestsRemoved} request(s), ${r.snapshotsRemoved} snapshot(s), ${r.keysRemoved} idempotency key(s), ${r.timersRemoved} timer(s) removed); other machines as in ${src}`);
    return 0;
  });
}
