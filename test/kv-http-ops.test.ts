/**
 * The KV ops of issue 16.3 over HTTP, through the generic machine call route: the README's curl
 * block ("Quick start: HTTP", the second sh block) runs as written against a live server, and
 * every line answers what its comment says.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { startHarness } from './fixtures/serve-helpers.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

function curlLines(): string[] {
  const start = readme.indexOf('\n## Quick start: HTTP');
  const end = readme.indexOf('\n## ', start + 4);
  const block = [...readme.slice(start, end).matchAll(/```sh\n([\s\S]*?)```/g)][1]![1]!;
  return block.replace(/\\\n\s*/g, ' ').split('\n').filter((l) => l.trim() !== '');
}

test('README: the curl lines of the KV ops run as written and answer what their comments say', async (t) => {
  const h = await startHarness(t);
  const base = new URL(h.url);
  const lines = curlLines();
  t.is(lines.length, 7);
  const outputs: string[] = [];
  // One after the other, asynchronously: the server runs on this event loop.
  for (const line of lines) {
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile('bash', ['-c', line.replaceAll('localhost:7411', base.host)], { timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr })),
    );
    t.is(r.code, 0, `${line}\n${r.stderr}`);
    outputs.push(r.stdout);
  }
  t.is(outputs[0], 'null');
  const left = Number(outputs[1]);
  t.true(left > 59_000 && left <= 60_000, outputs[1]);
  t.is(outputs[2], '{"stored":true}');
  t.is(outputs[3], 'true');
  t.is(outputs[4], '[null,true]');
  t.is(outputs[5], '[["s","v"],["a",1]]');
  t.regex(outputs[6]!, /"code":"DECODE_ERROR"/);
  t.regex(outputs[6]!, /nothing was applied/);
  t.is(await h.app.call('kv1', { op: 'lookup', key: 'x' }), null, 'the invalid batch applied nothing');
  t.is(await h.app.call('kv1', { op: 'has', key: 'lock' }), false);
});
