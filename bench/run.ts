/**
 * `npm run bench [-- --full] [--only <section>[,<section>]] [--rounds N] [--seconds S]`
 *
 * Runs the benchmark sections in order, prints a table per section, writes
 * bench/results/<section>.json and redraws the SVG charts from the JSON files.
 * Exit code 1 if the chaos section lost an acknowledged write (or any section threw).
 */
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { TMP_DIR, log, type Profile } from './lib/common.js';
import { renderCharts } from './charts.js';

type Section = (p: Profile) => Promise<Record<string, unknown>>;

const SECTIONS: Record<string, () => Promise<Section>> = {
  writes: async () => (await import('./sections/writes.js')).runWrites,
  http: async () => (await import('./sections/http.js')).runHttp,
  recovery: async () => (await import('./sections/recovery.js')).runRecovery,
  snapshot: async () => (await import('./sections/snapshot.js')).runSnapshot,
  chaos: async () => (await import('./sections/chaos.js')).runChaos,
  memory: async () => (await import('./sections/memory.js')).runMemory,
  resp: async () => (await import('./sections/resp.js')).runResp,
  readable: async () => (await import('./sections/readable.js')).runReadable,
  idempotency: async () => (await import('./sections/idempotency.js')).runIdempotency,
  entities: async () => (await import('./sections/entities.js')).runEntities,
  'kv-partitions': async () => (await import('./sections/kv-partitions.js')).runKvPartitions,
};

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      full: { type: 'boolean', default: false },
      only: { type: 'string' },
      rounds: { type: 'string' },
      seconds: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`usage: npm run bench -- [--full] [--only ${Object.keys(SECTIONS).join(',')}] [--rounds N] [--seconds S]\n`);
    return 0;
  }
  // `npm run bench --full` (no `--`) gives the flag to npm, which passes it on only as an
  // environment variable: honour it rather than silently running the quick profile.
  for (const flag of ['full', 'only', 'rounds', 'seconds'] as const) {
    const fromNpm = process.env[`npm_config_${flag}`];
    if (fromNpm === undefined || values[flag] !== undefined && values[flag] !== false) continue;
    process.stderr.write(`bench: taking --${flag} from npm (write npm run bench -- --${flag} next time)\n`);
    (values as Record<string, unknown>)[flag] = flag === 'full' ? fromNpm !== 'false' : fromNpm;
  }
  const full = values.full ?? false;
  const profile: Profile = {
    full,
    seconds: values.seconds ? Number(values.seconds) : full ? 8 : 2,
    rounds: values.rounds ? Number(values.rounds) : full ? 200 : 20,
  };
  if (!(profile.seconds > 0) || !Number.isInteger(profile.rounds) || profile.rounds < 1) throw new Error('--seconds must be > 0 and --rounds an integer >= 1');
  const names = values.only ? values.only.split(',').map((s) => s.trim()) : Object.keys(SECTIONS);
  for (const n of names) if (!SECTIONS[n]) throw new Error(`unknown section ${n}; known: ${Object.keys(SECTIONS).join(', ')}`);
  mkdirSync(TMP_DIR, { recursive: true });
  log(`profile ${full ? 'full' : 'quick'}: ${profile.seconds}s per throughput row, ${profile.rounds} chaos rounds; sections ${names.join(', ')}`);
  const t0 = performance.now();
  let failed = false;
  for (const n of names) {
    const s0 = performance.now();
    const run = await SECTIONS[n]!();
    const data = await run(profile);
    if (data['failed'] === true) failed = true;
    log(`${n} done in ${((performance.now() - s0) / 1000).toFixed(1)}s`);
  }
  for (const f of renderCharts()) log(`chart ${f}`);
  log(`total ${((performance.now() - t0) / 1000).toFixed(1)}s`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
