import { cbor } from '../../encoding/cbor.js';
import { describe } from '../../errors.js';
import { sha256 } from '../../storage/checksum.js';
import { StoreReader } from '../../storage/store-reader.js';
import { parseCommand } from '../args.js';
import { EXIT, positionalsAtMost, usageGuard } from '../common.js';
import { bytes, table } from '../format.js';
import { ForeignDatabaseError, MODULE_HELP, loadMachines, rebuild, refuseForeignDatabase, type MachineResolver } from '../machines.js';
import { progress, type Progress } from '../progress.js';

export const summary = 'check a database: SQLite integrity, snapshot checksums, log continuity, dry-run replay';

const USAGE = `Usage: ssm verify [--db PATH] [--json] [--module PATH]

Checks a database and prints one row per check; exits 1 if any check finds a problem, 3 if the
storage checks pass but the machines are not KV stores and no --module was given (replay skipped):
  integrity   PRAGMA integrity_check (problems per table) and foreign_key_check
  snapshots   every snapshot's sha256 checksum, and that its state decodes
  log         each machine's request log: rows contiguous (no gaps or overlaps), counts right,
              every row decodes and matches its checksum, the log reaches back to the oldest
              snapshot, and no machine is below the seq recorded durable at its last clean close
  replay      a dry-run recovery of every machine (snapshot + replay through step), as a
              restart would do it, reaching the machine's last sequence number
Read-only: safe while a server runs.

Options:
  --db PATH      database file (default storage/ssm.db)
  --json         {"ok", "checks": [{"check", "subject", "ok", "detail"}]} instead of a table
${MODULE_HELP}`;

interface Check {
  check: string;
  subject: string;
  ok: boolean;
  detail: string;
}

/** Runs one check; a check that cannot even run (a damaged page, say) is itself a failed row, and the others go on. */
function guarded(check: string, subject: string, fn: () => Check[]): Check[] {
  try {
    return fn();
  } catch (err) {
    return [{ check, subject, ok: false, detail: `could not check: ${describe(err)}` }];
  }
}

const some = (list: readonly string[]): string => list.slice(0, 3).join('; ') + (list.length > 3 ? ` (+${list.length - 3} more)` : '');

function integrity(store: StoreReader): Check[] {
  const damaged = guarded('integrity', 'database', () =>
    store.integrityByTable().map((t) => ({ check: 'integrity', subject: t.table ?? 'database', ok: false, detail: some(t.problems) })),
  );
  const fk = guarded('foreign keys', 'database', () => {
    const found = store.foreignKeyCheck();
    return [{ check: 'foreign keys', subject: 'database', ok: found.length === 0, detail: found.length === 0 ? 'ok' : `${found.length} dangling reference${found.length === 1 ? '' : 's'}` }];
  });
  return [...(damaged.length ? damaged : [{ check: 'integrity', subject: 'database', ok: true, detail: 'ok' }]), ...fk];
}

function snapshots(store: StoreReader, names: readonly string[]): Check[] {
  const bar = progress('verifying snapshots', store.snapshotCount());
  const out: Check[] = [];
  try {
    for (const name of names) {
      const bad: string[] = [];
      const seqs: number[] = [];
      for (const s of store.iterateSnapshots(name)) {
        seqs.push(s.seq);
        bar.add(1);
        if (sha256(s.state) !== s.checksum) {
          bad.push(`seq ${s.seq} (id ${s.id}): checksum mismatch`);
          continue;
        }
        try {
          cbor.decode(s.state);
        } catch (err) {
          bad.push(`seq ${s.seq} (id ${s.id}): undecodable: ${describe(err)}`);
        }
      }
      out.push({
        check: 'snapshots',
        subject: name,
        ok: bad.length === 0,
        detail: bad.length ? bad.join('; ') : seqs.length ? `${seqs.length} ok (seq ${seqs.join(', ')})` : 'none',
      });
    }
  } finally {
    bar.done();
  }
  return out;
}

function log(store: StoreReader, name: string, bar: Progress): Check {
  const oldestSnapshot = store.oldestSnapshotSeq(name);
  const problems: string[] = [];
  let prev: number | null = null;
  let first: number | null = null;
  let rows = 0;
  for (const r of store.iterateLog(name)) {
    rows++;
    bar.add(r.requests.byteLength);
    first ??= r.firstSeq;
    const span = `${r.firstSeq}..${r.lastSeq}`;
    if (r.lastSeq < r.firstSeq || r.count !== r.lastSeq - r.firstSeq + 1) problems.push(`row ${span} says count ${r.count}`);
    if (r.checksum !== null && sha256(r.requests) !== r.checksum) problems.push(`row ${span}: checksum mismatch`);
    if (prev !== null && r.firstSeq !== prev + 1) problems.push(r.firstSeq > prev + 1 ? `gap: seq ${prev + 1}..${r.firstSeq - 1} missing` : `overlap at seq ${r.firstSeq}`);
    try {
      const n = (cbor.decodeMultiple(r.requests) as unknown[]).length;
      if (n !== r.lastSeq - r.firstSeq + 1) problems.push(`row ${span} holds ${n} requests`);
    } catch (err) {
      problems.push(`row ${span} does not decode: ${describe(err)}`);
    }
    prev = r.lastSeq;
    if (problems.length > 5) break;
  }
  // Recovery may need to start at the oldest kept snapshot (if newer ones are corrupt), or at
  // init when there is no snapshot: the log must reach back that far.
  const need = (oldestSnapshot ?? 0) + 1;
  if (first !== null && first > need) problems.push(`log starts at seq ${first} but recovery may need seq ${need}`);
  // The mark recorded at snapshots and clean closes: below it, committed writes went missing (a lost -wal).
  const { durable: mark, last } = store.seqMarks(name);
  if (mark !== null && last < mark) problems.push(`seq ${mark} was recorded durable but the database goes only to seq ${last} (a deleted -wal?)`);
  return {
    check: 'log',
    subject: name,
    ok: problems.length === 0,
    detail: problems.length ? problems.join('; ') : rows ? `seq ${first}..${prev} in ${rows} row${rows === 1 ? '' : 's'}, contiguous` : 'empty',
  };
}

function replay(store: StoreReader, name: string, resolveMachine: MachineResolver): Check {
  const base = { check: 'replay', subject: name };
  try {
    const t0 = performance.now();
    const { report } = rebuild(store, name, resolveMachine(name));
    const ms = Math.round(performance.now() - t0);
    const from = report.path === 'init' ? 'init' : `snapshot @${report.snapshotSeq}`;
    const lastSeq = store.lastSeq(name);
    if (report.rejected.length > 0) {
      return { ...base, ok: false, detail: `recovered only by falling back to ${from}: rejected ${report.rejected.map((r) => `seq ${r.seq} (${r.reason})`).join(', ')}` };
    }
    if (report.seq !== lastSeq) return { ...base, ok: false, detail: `replay reached seq ${report.seq}, but the database goes to seq ${lastSeq}` };
    return { ...base, ok: true, detail: `${from} + ${report.replayed} replayed -> seq ${report.seq} (${ms} ms)` };
  } catch (err) {
    return { ...base, ok: false, detail: describe(err) };
  }
}

function safeLogBytes(store: StoreReader): number {
  try {
    return store.logBytes();
  } catch {
    return 0; // only the progress bar's total: the log check itself reports the damage
  }
}

export async function run(argv: string[]): Promise<number> {
  return usageGuard('verify', async () => {
    const { values, positionals } = parseCommand(argv, { db: { type: 'string' }, json: { type: 'boolean' }, module: { type: 'string' } }, USAGE, false);
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    positionalsAtMost(positionals, 0, USAGE);
    const resolveMachine = await loadMachines(values.module);
    const store = StoreReader.open(values.db);
    const checks: Check[] = [];
    let foreign: ForeignDatabaseError | null = null;
    try {
      // One read transaction: every check sees the same state even while a server writes.
      store.consistentRead(() => {
        checks.push(...integrity(store));
        let names: string[] = [];
        checks.push(...guarded('machines', 'database', () => ((names = store.knownMachineNames()), [])));
        checks.push(...guarded('snapshots', 'database', () => snapshots(store, names)));
        const bar = progress('checking logs', safeLogBytes(store), { unit: bytes });
        try {
          for (const name of names) checks.push(...guarded('log', name, () => [log(store, name, bar)]));
        } finally {
          bar.done();
        }
        // Replaying another application's machines as KV stores would read like corruption.
        try {
          refuseForeignDatabase(store, values.module, names);
        } catch (err) {
          // Unreadable pages are the other checks' to report; replay then reports its own failure.
          if (err instanceof ForeignDatabaseError) {
            foreign = err;
            return;
          }
        }
        for (const name of names) checks.push(replay(store, name, resolveMachine));
      });
    } finally {
      store.close();
    }
    const problems = checks.filter((c) => !c.ok).length;
    if (values.json) {
      console.log(JSON.stringify({ database: store.path, ok: problems === 0, checks }, null, 2));
    } else {
      console.log(table(['CHECK', 'SUBJECT', 'RESULT', 'DETAIL'], checks.map((c) => [c.check, c.subject, c.ok ? 'ok' : 'FAILED', c.detail])));
      console.log(problems === 0 ? `\n${store.path}: all ${checks.length} checks passed` : `\n${store.path}: ${problems} of ${checks.length} checks FAILED`);
    }
    if (foreign) {
      console.error(`ssm verify: replay skipped: ${(foreign as ForeignDatabaseError).message} [${(foreign as ForeignDatabaseError).code}]`);
      return problems === 0 ? EXIT.foreign : EXIT.failure;
    }
    return problems === 0 ? 0 : 1;
  });
}
