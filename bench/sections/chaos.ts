/**
 * Section 5: chaos. `ssm serve` under concurrent HTTP write load is killed with SIGKILL at a
 * random moment, restarted, and every acknowledged write is read back. Any loss fails the run.
 */
import { join } from 'node:path';
import { fmt, fmtMs, log, median, printTable, removeDir, scratch, sleep, writeResult, type Profile } from '../lib/common.js';
import { agent, callHttp, startServer, stopServer, type Server } from '../lib/server.js';

const CLIENTS = 64;
const MACHINES = ['kv1', 'kv2', 'kv3'];

interface Round {
  round: number;
  killAfterMs: number;
  acked: number;
  inFlightAtKill: number;
  restartMs: number;
  replayed: number | null;
  lost: number;
  ackedTotal: number;
}

/** Parses the replay count of kv1..kv3 from the server's lifecycle lines on stderr. */
function replayedFrom(stderr: string): number | null {
  const ms = [...stderr.matchAll(/ \+ (\d+) replayed/g)];
  return ms.length ? ms.slice(-MACHINES.length).reduce((s, m) => s + Number(m[1]), 0) : null;
}

export async function runChaos(profile: Profile): Promise<Record<string, unknown>> {
  const dir = scratch('chaos');
  const db = join(dir, 'ssm.db');
  // Every acknowledged write: key -> value (keys are never rewritten, so the value must match).
  const acked = new Map<string, number>();
  const rounds: Round[] = [];
  let server: Server = await startServer(db);
  const coldStartMs = server.readyMs;
  let seq = 0;
  let failed = false;
  try {
    for (let r = 1; r <= profile.rounds; r++) {
      const ag = agent(CLIENTS);
      const killAfterMs = 200 + Math.floor(Math.random() * 1000);
      let stop = false;
      let inFlight = 0;
      let ackedThisRound = 0;
      const url = server.url;
      const clients = Array.from({ length: CLIENTS }, async (_, c) => {
        while (!stop) {
          const i = seq++;
          const key = `r${r}-${i}`;
          const machine = MACHINES[c % MACHINES.length]!;
          inFlight++;
          try {
            const res = await callHttp(url, ag, machine, { op: 'store', key, value: i });
            if (res.status === 200) {
              acked.set(`${machine}/${key}`, i);
              ackedThisRound++;
            }
          } catch {
            // Connection reset by the kill: not acknowledged, may or may not have been applied.
          } finally {
            inFlight--;
          }
        }
      });
      await sleep(killAfterMs);
      const inFlightAtKill = inFlight;
      server.proc.kill('SIGKILL');
      await new Promise<void>((res) => (server.proc.exitCode !== null || server.proc.signalCode !== null ? res() : server.proc.once('exit', () => res())));
      stop = true;
      await Promise.all(clients);
      ag.destroy();

      server = await startServer(db);
      // Read back everything acknowledged so far, one `entries` call per machine.
      const va = agent(4);
      let lost = 0;
      for (const m of MACHINES) {
        const res = await callHttp(server.url, va, m, { op: 'entries', prefix: 'r' });
        if (res.status !== 200) throw new Error(`verification read of ${m} failed: HTTP ${res.status} ${String(res.body)}`);
        const have = new Map(res.body as [string, unknown][]);
        for (const [k, v] of acked) {
          const [mm, key] = [k.slice(0, k.indexOf('/')), k.slice(k.indexOf('/') + 1)];
          if (mm === m && have.get(key) !== v) lost++;
        }
      }
      va.destroy();
      if (lost > 0) failed = true;
      rounds.push({ round: r, killAfterMs, acked: ackedThisRound, inFlightAtKill, restartMs: server.readyMs, replayed: replayedFrom(server.stderr()), lost, ackedTotal: acked.size });
      log(`chaos round ${r}/${profile.rounds}: killed after ${killAfterMs} ms, ${ackedThisRound} acked, restart ${server.readyMs.toFixed(0)} ms, lost ${lost}`);
    }
  } finally {
    await stopServer(server, 'SIGKILL');
    removeDir(dir);
  }
  const restart = rounds.map((x) => x.restartMs);
  const summary = {
    rounds: rounds.length,
    clients: CLIENTS,
    ackedTotal: acked.size,
    lostTotal: rounds.reduce((s, x) => s + x.lost, 0),
    restartMs: { min: Math.min(...restart), median: median(restart), max: Math.max(...restart) },
    coldStartEmptyDbMs: coldStartMs,
  };
  printTable(
    `chaos: SIGKILL of \`ssm serve\` under ${CLIENTS} concurrent HTTP writers (durability full), ${rounds.length} rounds`,
    [
      ['rounds', 'acked writes', 'lost', 'restart min ms', 'median ms', 'max ms', 'empty-db start ms', 'verdict'],
      [rounds.length, fmt(summary.ackedTotal), summary.lostTotal, fmtMs(summary.restartMs.min), fmtMs(summary.restartMs.median), fmtMs(summary.restartMs.max), fmtMs(coldStartMs), failed ? 'LOSS' : 'ok: 0 lost'],
    ],
    [
      'Kill at a uniform random 200-1200 ms into each round; restart = spawn of `node bin/ssm.js serve` until "listening on" (process start + tsx load + recovery + listen), so compare with the empty-db start.',
      'After each restart every write acknowledged (HTTP 200) in all rounds so far is read back with one `entries` call per machine; unacknowledged in-flight writes may or may not survive.',
    ],
  );
  const data = { summary, rounds, failed };
  writeResult('chaos', profile, data);
  if (failed) process.stderr.write(`chaos: ACKNOWLEDGED WRITES LOST (${summary.lostTotal})\n`);
  return data;
}
