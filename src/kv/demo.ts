import { startApplication } from '../engine/application.js';
import { describe } from '../errors.js';
import { kvMachine, type KvMachineOptions } from './kv-machine.js';
import { formatEvent } from '../engine/logger.js';
import { DEFAULT_DB_PATH } from '../storage/store-options.js';
import { entities } from '../model/entities.js';
import { supervisor, worker, type SupervisorSpec } from '../model/tree.js';

/**
 * The KV tree one_for_one[kv1, rest_for_one[kv2, kv3]], the tree of the design note that
 * started the project. `ssm serve` runs it as given; the demo turns on the deliberate crash.
 */
export function kvTree(options: KvMachineOptions = {}): SupervisorSpec {
  const kv = kvMachine(options);
  return supervisor('one_for_one', [worker('kv1', kv), supervisor('rest_for_one', [worker('kv2', kv), worker('kv3', kv)], { name: 'kv_group' })], { name: 'root' });
}

/** Name of the entity family of {@link serveTree}: `accounts/<key>` is one KV machine per key, woken on demand. */
export const ACCOUNTS_FAMILY = 'accounts';

/**
 * `ssm serve`'s tree: {@link kvTree} and, next to it, the entity family `accounts` of KV
 * machines (one per key, e.g. `accounts/alice`, created by its first write, put to sleep when
 * idle; see `entities()`).
 */
export function serveTree(options: KvMachineOptions = {}): SupervisorSpec {
  const tree = kvTree(options);
  return { ...tree, children: [...tree.children, entities(ACCOUNTS_FAMILY, kvMachine(options))] };
}

/** The demo's tree: {@link kvTree} with the deliberate crash of a lookup of `"crash"`. */
export function demoTree(verbose = false, print?: (line: string) => void): SupervisorSpec {
  return kvTree({ verbose, print, deliberateCrash: true });
}

/**
 * The demo scenario of the design note that started the project, with persistence: store x=1 in kv2, look it up, crash kv2 on purpose,
 * and look x up again. kv2 is rebuilt from its log, so it still answers 1.
 */
export async function runDemo(options: { db?: string; print?: (line: string) => void } = {}): Promise<void> {
  const print = options.print ?? ((line: string) => console.log(line));
  const db = options.db ?? DEFAULT_DB_PATH;
  print(`Database: ${db}`);
  const app = await startApplication(demoTree(true, print), { db, logger: (e) => print(`[ssm] ${formatEvent(e)}`) });
  const show = (v: unknown): string => (v === null ? 'Nothing' : `Just ${JSON.stringify(v)}`);
  const call = async (label: string, input: unknown): Promise<void> => {
    print(`Calling kv2: ${label}`);
    try {
      const out = await app.call('kv2', input);
      if (label.startsWith('Lookup')) print(`Right "Result (${show(out)})"`);
    } catch (err) {
      print(`Left ${(err as Error).name}: ${describe(err)}`);
    }
  };
  try {
    await call('Store "x" 1', { op: 'store', key: 'x', value: 1 });
    await call('Lookup "x"', { op: 'lookup', key: 'x' });
    await call('Lookup "crash"', { op: 'lookup', key: 'crash' });
    await call('Lookup "x"', { op: 'lookup', key: 'x' });
    await call('Lookup "y"', { op: 'lookup', key: 'y' });
  } finally {
    await app.stop();
  }
}
