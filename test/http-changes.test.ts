/** `GET /v1/machines/:name/changes` (issue 14.2): committed requests as server-sent events. */
import test from 'ava';
import { postJson, startHarness } from './fixtures/serve-helpers.js';

/** Reads SSE events from a streaming response until `count` arrive (or the stream ends). */
async function readEvents(res: Response, count: number): Promise<{ id?: string; event?: string; data: string }[]> {
  const events: { id?: string; event?: string; data: string }[] = [];
  const reader = res.body!.getReader();
  let buf = '';
  while (events.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += Buffer.from(value).toString('utf8');
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const e: { id?: string; event?: string; data: string } = { data: '' };
      for (const line of block.split('\n')) {
        if (line.startsWith('id: ')) e.id = line.slice(4);
        else if (line.startsWith('event: ')) e.event = line.slice(7);
        else if (line.startsWith('data: ')) e.data = line.slice(6);
      }
      if (e.event) events.push(e);
    }
  }
  await reader.cancel();
  return events;
}

test('changes stream: committed writes as SSE events from a seq, resumable with Last-Event-ID; bad requests refused before the stream', async (t) => {
  const h = await startHarness(t);
  for (let i = 1; i <= 5; i++) t.is((await postJson(h.url, '/v1/machines/kv1/call', { op: 'store', key: `k${i}`, value: i })).status, 200);
  const res = await fetch(`${h.url}/v1/machines/kv1/changes?from=2`);
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const live = readEvents(res, 5);
  await postJson(h.url, '/v1/machines/kv1/call', { op: 'delete', key: 'k1' });
  const events = await live;
  t.deepEqual(events.map((e) => e.id), ['2', '3', '4', '5', '6']);
  t.deepEqual(JSON.parse(events[0]!.data), { machine: 'kv1', seq: 2, input: { op: 'store', key: 'k2', value: 2 }, output: null });
  // A delete is judged at the time stamped on it at the door (expiry), which is logged with it.
  const deleted = JSON.parse(events[4]!.data) as { input: { now?: number } };
  t.true(typeof deleted.input.now === 'number');
  t.deepEqual(deleted, { machine: 'kv1', seq: 6, input: { op: 'delete', key: 'k1', now: deleted.input.now }, output: true });
  const resumed = await fetch(`${h.url}/v1/machines/kv1/changes`, { headers: { 'Last-Event-ID': '4' } });
  t.deepEqual((await readEvents(resumed, 2)).map((e) => e.id), ['5', '6']);
  t.is((await fetch(`${h.url}/v1/machines/nope/changes`)).status, 404);
  t.is((await fetch(`${h.url}/v1/machines/kv1/changes?from=zero`)).status, 400);
  t.is((await fetch(`${h.url}/v1/machines/kv1/changes`, { method: 'POST' })).status, 405);
});
