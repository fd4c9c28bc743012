import { cbor } from '../../encoding/cbor.js';
import { describe } from '../../errors.js';
import { sha256, type Store } from '../../storage/store.js';
import { parseCommand } from '../args.js';
import { positionalsAtMost, usageGuard } from '../common.js';
import { bytes, table } from '../format.js';
import { MODULE_HELP, loadMachines, machineNames, openReadOnly, rebuild, type MachineResolver } from '../machines.js';
import { progress, type Progress } from '../progress.js';

export const summary = 'check a database: SQLite integrity, snapshot checksums, log continuity, dry-run replay';

const USAGE = `Usage: ssm verify [--db PATH] [--json] [--module PATH]

Checks a database and prints one row per check; exits 1 if any check finds a problem:
  integrity   PRAGMA integrity_check and foreign_key_check
  snapshots   every snapshot's sha256 checksum, and that its state decodes
  log         each machine's request log: rows contiguous (no gaps or overlaps), counts right,
              every row decodes, and the log reaches back to the oldest snapshot
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

function integrity(store: Store): Check[] {
  const rows = store.db.pragma('integrity_check', { simple: false }) as { integrity_check: string }[];
  const messages = rows.map((r) => r.integrity_check);
  const fk = store.db.pragma('foreign_key_check') as unknown[];
  return [
    { check: 'integrity', subject: 'database', ok: messages.length === 1 && messages[0] === 'ok', detail: messages.slice(0, 3).join('; ') + (messages.length > 3 ? ` (+${messages.length - 3} more)` : '') },
    { check: 'foreign keys', subject: 'database', ok: fk.length === 0, detail: fk.length === 0 ? 'ok' : `${fk.length} dangling reference${fk.length === 1 ? '' : 's'}` },
  ];
}

function snapshots(store: Store, names: readonly string[]): Check[] {
  const total = store.db.prepare('SELECT count(*) FROM snapshots').pluck().get() as number;
  const bar = progress('verifying snapshots', total);
  const out: Check[] = [];
  const stmt = store.db.prepare('SELECT id, seq, checksum, state FROM snapshots WHERE machine = ? ORDER BY seq, id');
  try {
    for (const name of names) {
      const bad: string[] = [];
      const seqs: number[] = [];
      for (const s of stmt.iterate(name) as Iterable<{ id: number; seq: number; checksum: string; state: Uint8Array }>) {
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

function log(store: Store, name: string, bar: Progress): Check {
  const oldestSnapshot = store.db.prepare('SELECT min(seq) FROM snapshots WHERE machine = ?').pluck().get(name) as number | null;
  const problems: string[] = [];
  let prev: number | null = null;
  let first: number | null = null;
  let rows = 0;
  for (const r of store.db.prepare('SELECT first_seq, last_seq, count, requests FROM request_log WHERE machine = ? ORDER BY last_seq').iterate(name) as Iterable<{ first_seq: number; last_seq: number; count: number; requests: Uint8Array }>) {
    rows++;
    bar.add(r.requests.byteLength);
    first ??= r.first_seq;
    const span = `${r.first_seq}..${r.last_seq}`;
    if (r.last_seq < r.first_seq || r.count !== r.last_seq - r.first_seq + 1) problems.push(`row ${span} says count ${r.count}`);
    if (prev !== null && r.first_seq !== prev + 1) problems.push(r.first_seq > prev + 1 ? `gap: seq ${prev + 1}..${r.first_seq - 1} missing` : `overlap at seq ${r.first_seq}`);
    try {
      const n = (cbor.decodeMultiple(r.requests) as unknown[]).length;
      if (n !== r.last_seq - r.first_seq + 1) problems.push(`row ${span} holds ${n} requests`);
    } catch (err) {
      problems.push(`row ${span} does not decode: ${describe(err)}`);
    }
    prev = r.last_seq;
    if (problems.length > 5) break;
  }
  // Recovery may need to start at the oldest kept snapshot (if newer ones are corrupt), or at
  // init when there is no snapshot: the log must reach back that far.
  const need = (oldestSnapshot ?? 0) + 1;
  if (first !== null && first > need) problems.push(`log starts at seq ${first} but recovery may need seq ${need}`);
  return {
    check: 'log',
    subject: name,
    ok: problems.length === 0,
    detail: problems.length ? problems.join('; ') : rows ? `seq ${first}..${prev} in ${rows} row${rows === 1 ? '' : 's'}, contiguous` : 'empty',
  };
}

function replay(store: Store, name: string, resolveMachine: MachineResolver): Check {
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

export async function run(argv: string[]): Promise<number> {
  return usageGuard('verify', async () => {
    const { values, positionals } = parseCommand(argv, { db: { type: 'string' }, json: { type: 'boolean' }, module: { type: 'string' } }, USAGE, false);
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    positionalsAtMost(positionals, 0, USAGE);
    const resolveMachine = await loadMachines(values.module);
    const store = openReadOnly(values.db);
    const checks: Check[] = [];
    try {
      // One read transaction: every check sees the same state even while a server writes.
      store.db.exec('BEGIN');
      try {
        const names = machineNames(store);
        checks.push(...integrity(store));
        checks.push(...snapshots(store, names));
        const logBytes = store.db.prepare('SELECT coalesce(sum(size), 0) FROM request_log').pluck().get() as number;
        const bar = progress('checking logs', logBytes, { unit: bytes });
        try {
          for (const name of names) checks.push(log(store, name, bar));
        } finally {
          bar.done();
        }
        for (const name of names) checks.push(replay(store, name, resolveMachine));
      } finally {
        store.db.exec('COMMIT');
      }
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
    return problems === 0 ? 0 : 1;
  });
}
