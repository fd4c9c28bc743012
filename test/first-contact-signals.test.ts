import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { startApplication } from '../src/engine/application.js';
import { kvTree } from '../src/kv/demo.js';
import { ROOT } from './helpers/cli.js';
import { eachLine } from './helpers/lines.js';
import { postJson, tempDir } from './fixtures/serve-helpers.js';

/** Starts a command the README gives, in the repository, and waits for its "listening on" line. */
interface Started {
  child: ChildProcess;
  url: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Every process holding our pipes (npm, its shell, the server) is gone. */
  closed: Promise<void>;
  stderr: () => string;
}

function startCommand(cmd: string, args: string[]): Promise<Started> {
  // Its own process group, as a terminal gives a foreground job: Ctrl-C signals the whole group.
  const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const closed = new Promise<void>((r) => child.stderr!.once('close', () => r()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  return new Promise((resolve, reject) => {
    eachLine(child.stdout!, (line) => {
      const m = /listening on (http:\/\/\S+)/.exec(line);
      if (m) resolve({ child, url: m[1]!, exited, closed, stderr: () => err });
    });
    void exited.then(({ code }) => reject(new Error(`${cmd} exited with ${code} before listening: ${err}`)));
  });
}

async function alive(url: string): Promise<boolean> {
  try {
    await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
    return true;
  } catch {
    return false;
  }
}

// npm start runs the server in place of its shell (exec), so npm relays the signal and the
// server's exit code. npx runs it under a shell that dies of the signal (npx then exits 143),
// and the server stops because its parent went away.
for (const [label, cmd, args, npmExit] of [
  ['npm start', 'npm', ['start', '--'], { code: 0, signal: null }],
  ['npx ssm serve', 'npx', ['ssm', 'serve'], null],
] as const) {
  // SIGTERM as a process manager sends it (to the one process it started); SIGINT as Ctrl-C in
  // a terminal sends it (to the foreground process group).
  for (const [signal, to] of [['SIGTERM', 'process'], ['SIGINT', 'group']] as const) {
    test.serial(`${signal} to the ${label} ${to} stops the server gracefully: nothing left listening, lock released, every write kept and checkpointed`, async (t) => {
      const db = join(tempDir(t), 'ssm.db');
      const s = await startCommand(cmd, [...args, '--db', db, '--port', '0']);
      t.teardown(() => {
        try {
          process.kill(-s.child.pid!, 'SIGKILL');
        } catch {
          // Already gone.
        }
      });
      for (let i = 0; i < 20; i++) t.is((await postJson(s.url, '/v1/machines/kv1/call', { op: 'store', key: `k${i}`, value: i })).status, 200);
      if (to === 'group') process.kill(-s.child.pid!, signal);
      else s.child.kill(signal);
      const exit = await s.exited;
      // A signal to npm alone is relayed and npm exits with the server's code. Ctrl-C reaches npm
      // too, which then may die of it before the server ends (npm's race, not ours); the server's
      // own graceful stop is what the lines below check, in both cases.
      if (npmExit && to === 'process') t.deepEqual(exit, npmExit, s.stderr());
      await s.closed;
      t.false(await alive(s.url), 'no orphaned server still answering');
      t.regex(s.stderr(), /application stopped: normal/);
      // The lock is released and every machine was checkpointed: this process can open it at once.
      const app = await startApplication(kvTree(), { db, logger: false });
      t.is(await app.call('kv1', { op: 'size' }), 20);
      const root = app.status();
      const kv1 = root.kind === 'supervisor' ? root.children[0] : undefined;
      t.true(kv1?.kind === 'worker' && kv1.snapshotSeq === kv1.seq && kv1.seq === 20, 'checkpointed at shutdown');
      await app.stop();
    });
  }
}

// Ctrl-C under `npm start` reaches the server twice (the terminal signals the whole group, and
// npm relays what it gets): the second, a few ms later, is the same Ctrl-C and must not turn the
// graceful stop into an exit without checkpoint (seen in CI as a lost "application stopped").
test.serial('a second SIGINT during the drain (npm relaying Ctrl-C) does not cut the graceful stop short: exit 0, request in flight answered, checkpointed', async (t) => {
  const db = join(tempDir(t), 'ssm.db');
  const s = await startCommand(process.execPath, ['bin/ssm.js', 'serve', '--db', db, '--port', '0']);
  t.teardown(() => {
    try {
      process.kill(-s.child.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  });
  for (let i = 0; i < 5; i++) t.is((await postJson(s.url, '/v1/machines/kv1/call', { op: 'store', key: `k${i}`, value: i })).status, 200);
  // A request whose body is still arriving holds the drain open, so the second signal, npm's
  // relay, lands while the first one's graceful stop is under way, as it does under load.
  const { port } = new URL(s.url);
  const slow = connect(Number(port), '127.0.0.1');
  await new Promise((r) => slow.once('connect', r));
  const body = JSON.stringify({ op: 'store', key: 'late', value: 1 });
  slow.write(`POST /v1/machines/kv1/call HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`);
  await new Promise((r) => setTimeout(r, 100));
  s.child.kill('SIGINT');
  while (!/closing the server/.test(s.stderr())) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 50));
  s.child.kill('SIGINT');
  await new Promise((r) => setTimeout(r, 100));
  let reply = '';
  slow.on('data', (d) => (reply += d));
  slow.end(body.slice(5));
  t.teardown(() => slow.destroy());
  t.deepEqual(await s.exited, { code: 0, signal: null }, s.stderr());
  t.regex(s.stderr(), /application stopped: normal/);
  t.regex(reply, /^HTTP\/1.1 200/, 'the request in flight was answered');
  const app = await startApplication(kvTree(), { db, logger: false });
  const root = app.status();
  const kv1 = root.kind === 'supervisor' ? root.children[0] : undefined;
  t.true(kv1?.kind === 'worker' && kv1.snapshotSeq === kv1.seq && kv1.seq === 6, 'checkpointed at shutdown');
  await app.stop();
});

test.serial('a server started with nohup ... & from an npm script outlives the script’s shell (only npx’s own shell is watched)', async (t) => {
  const dir = tempDir(t);
  const log = join(dir, 'serve.log');
  const script = `nohup node bin/ssm.js serve --db ${join(dir, 'ssm.db')} --port 0 > ${log} 2>&1 & echo $!; sleep 3`;
  const shell = spawn('sh', ['-c', script], { cwd: ROOT, env: { ...process.env, npm_command: 'run-script', npm_lifecycle_event: 'bg' }, stdio: ['ignore', 'pipe', 'inherit'] });
  let pid = 0;
  eachLine(shell.stdout!, (line) => (pid = Number(line)));
  await new Promise((r) => shell.once('exit', r));
  t.teardown(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  });
  await new Promise((r) => setTimeout(r, 1000));
  const url = /listening on (http:\/\/\S+)/.exec(readFileSync(log, 'utf8'))?.[1];
  t.truthy(url, readFileSync(log, 'utf8'));
  t.true(await alive(url!), 'still serving after its shell exited');
  process.kill(pid, 'SIGTERM');
});
