import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startApplication, type App } from '../engine/application.js';
import { ConfigError, DatabaseLockedError, SsmError, UnknownMachineError } from '../errors.js';
import { sha256 } from '../storage/checksum.js';
import { cbor } from '../encoding/cbor.js';
import { kvMachine, migrateKvState, validateKvInput } from '../kv/kv-machine.js';
import { defineMachine, type AnyMachine, type MachineDefinition } from '../model/machine.js';
import { recoverState } from '../storage/recovery.js';
import type { Recovered } from '../storage/reports.js';
import { StoreReader } from '../storage/store-reader.js';
import { entities } from '../model/entities.js';
import { supervisor, worker } from '../model/tree.js';
import { FOREIGN_DATABASE } from './common.js';
import { bytes } from './format.js';
import { progress } from './progress.js';

/** Help text shared by every command that needs machine definitions. */
export const MODULE_HELP = `  --module PATH  ES module with the machine definitions, for applications other than the
                 KV store. Its default export (or its \`machines\` export) is either an object
                 { name: machine } or a function (name) => machine, where a machine comes
                 from defineMachine(); an entity FAMILY/KEY is read with the entry of
                 its FAMILY (a function gets the whole name). Without it, every machine is read as the KV store
                 (kvMachine() from the examples). Replay runs each machine's step, so the
                 definitions must be the ones that wrote the database. A database whose
                 machines are plainly not KV stores is refused without it (exit code 3).`;

/** Finds the definition of a machine by its name; throws ConfigError when there is none. */
export type MachineResolver = (name: string) => AnyMachine;

function asMachine(value: unknown, name: string, source: string): AnyMachine {
  const m = value as Partial<AnyMachine> | null | undefined;
  if (!m || typeof m !== 'object' || typeof m.step !== 'function' || typeof m.init !== 'function') {
    throw new ConfigError(`${source} has no machine definition for ${JSON.stringify(name)} (expected an object with init() and step())`);
  }
  // Accept bare definitions too: defineMachine fills in the codec, version and defaults.
  return 'codec' in m && 'version' in m && typeof m.readOnly === 'function' ? (m as AnyMachine) : defineMachine(m as MachineDefinition<unknown, unknown, unknown>);
}

/** Loads the machine definitions: the KV store by default, or those of `--module PATH`. */
export async function loadMachines(modulePath?: string): Promise<MachineResolver> {
  if (modulePath === undefined) {
    const kv = kvMachine();
    return () => kv;
  }
  const url = pathToFileURL(resolve(modulePath)).href;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`cannot load --module ${modulePath}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  }
  const exported = mod['default'] ?? mod['machines'];
  const source = `--module ${modulePath}`;
  if (typeof exported === 'function') {
    const fn = exported as (name: string) => unknown;
    const cache = new Map<string, AnyMachine>();
    return (name) => {
      let m = cache.get(name);
      if (!m) cache.set(name, (m = asMachine(fn(name), name, source)));
      return m;
    };
  }
  if (exported && typeof exported === 'object') {
    const table = exported as Record<string, unknown>;
    const cache = new Map<string, AnyMachine>();
    return (name) => {
      let m = cache.get(name);
      // An entity '<family>/<key>' is defined by its family's entry.
      const family = name.includes('/') ? name.slice(0, name.indexOf('/')) : null;
      const def = Object.hasOwn(table, name) ? table[name] : family !== null && Object.hasOwn(table, family) ? table[family] : undefined;
      if (!m) cache.set(name, (m = asMachine(def, name, source)));
      return m;
    };
  }
  throw new ConfigError(`${source} must export default (or \`machines\`) as an object { name: machine } or a function (name) => machine`);
}

/** The machines of a database are plainly not KV stores, and no --module was given (exit code 3). */
export class ForeignDatabaseError extends SsmError {
  constructor(path: string, reasons: readonly string[]) {
    super(FOREIGN_DATABASE, `${reasons.join('; ')}; the database ${path} was written by another application (ssm reads machines as the KV store unless told otherwise): pass --module PATH with its machine definitions`);
  }
}

// A snapshot this small is decoded to check it; a bigger one only by its first byte.
const SNIFF_DECODE_BYTES = 1 << 20;

/** CBOR major type 5 (a map: a plain object) or 6 (a tag: Map, ShardedMap) can be a KV state. */
function couldBeKvState(bytes: Uint8Array): boolean {
  const major = (bytes[0] ?? 0) >> 5;
  if (major !== 5 && major !== 6) return false;
  if (bytes.byteLength > SNIFF_DECODE_BYTES) return true;
  try {
    migrateKvState(cbor.decode(bytes));
  } catch {
    return false;
  }
  return true;
}

/**
 * Why `name` is plainly not a KV store, or null when it may be one. Looks at the newest snapshot
 * and the first logged requests only, so it is cheap; what does not decode at all is left to the
 * checks that report corruption.
 */
function notKvReason(store: StoreReader, name: string): string | null {
  // The newest snapshot that is intact: a corrupt one says nothing about whose state it holds
  // (and is verify's to report), so it must not make a KV database look foreign.
  for (const { meta, state: bytes } of store.newestSnapshots(name)) {
    if (meta.rejected !== null) continue;
    if (bytes.byteLength === 0 || sha256(bytes) !== meta.checksum) continue;
    if (!couldBeKvState(bytes)) return `${name}: not a KV store state`;
    break;
  }
  for (const row of store.logAfter(name, 0)) {
    let inputs: unknown[];
    try {
      inputs = cbor.decodeMultiple(row.requests) as unknown[];
    } catch {
      return null;
    }
    for (const input of inputs.slice(0, 16)) {
      // The store's own timer logs removals of expired keys; a caller may not send one (validate refuses it).
      if ((input as { op?: unknown } | null)?.op === 'removeExpired') continue;
      try {
        validateKvInput(input);
      } catch {
        return `${name}: its logged requests are not KV store requests`;
      }
    }
    break;
  }
  return null;
}

/**
 * Throws {@link ForeignDatabaseError} when the CLI reads the database with its default
 * machines (no `--module`) and some machine in it is plainly not a KV store, which would
 * otherwise surface as a replay or migrate() failure that reads like corruption.
 */
export function refuseForeignDatabase(store: StoreReader, modulePath: string | undefined, names: readonly string[] = store.knownMachineNames()): void {
  if (modulePath !== undefined) return;
  const reasons = names.map((n) => notKvReason(store, n)).filter((r): r is string => r !== null);
  if (reasons.length > 0) throw new ForeignDatabaseError(store.path, reasons);
}

/** Throws UnknownMachineError (listing the known ones) unless `name` is in the database. */
export function requireMachine(store: StoreReader, name: string): void {
  // Indexed: a database of millions of entities answers without listing them.
  const marks = store.seqMarks(name);
  if (marks.last > 0 || marks.durable !== null) return;
  const names = store.knownMachineNames();
  if (!names.includes(name)) {
    const err = new UnknownMachineError(name);
    const shown = names.length > 20 ? `${names.slice(0, 20).join(', ')} and ${names.length - 20} more` : names.join(', ') || 'none';
    throw new SsmError(err.code, `${err.message} in ${store.path} (machines: ${shown})`);
  }
}

/**
 * Rebuilds a machine's state through {@link recoverState} (the engine's one recovery path),
 * drawing a progress bar over the log bytes replayed when stderr is a terminal.
 */
export function rebuild<S = unknown>(store: StoreReader, name: string, machine: AnyMachine, uptoSeq?: number): Recovered<S> {
  const bar = progress(`replaying ${name}`, store.logBytes(name), { unit: bytes });
  // The same store, with a log reader that reports each row it hands to the replay.
  const tracked = Object.create(store) as StoreReader;
  tracked.logAfter = function* (machineName: string, afterSeq: number) {
    for (const row of store.logAfter(machineName, afterSeq)) {
      yield row;
      bar.add(row.requests.byteLength);
    }
  };
  try {
    return recoverState<S>(tracked, name, machine, uptoSeq);
  } finally {
    bar.done();
  }
}

/**
 * Whether the database has readable tables (a server ran with `--readable`): an offline command
 * keeps them, where an application without `readable` would remove them as it starts machines.
 */
function keepsReadableTables(path: string): boolean {
  try {
    const reader = StoreReader.open(path);
    try {
      return reader.db.prepare('SELECT EXISTS (SELECT 1 FROM machines WHERE entries_seq IS NOT NULL) OR EXISTS (SELECT 1 FROM machine_states)').pluck().get() === 1;
    } finally {
      reader.close();
    }
  } catch {
    return false; // A database from before readable tables (or none yet): nothing to keep.
  }
}

/**
 * Starts the application offline over the machines found in the database, as a flat
 * one_for_one supervisor, for commands that need the writer role. A database held by a running
 * server is refused with a hint to use the server's own endpoint.
 */
export async function startOffline(path: string, names: readonly string[], resolveMachine: MachineResolver, hint: string, options: { keepSnapshots?: number; retainLog?: boolean } = {}): Promise<App> {
  // An entity 'FAMILY/KEY' comes with its family (machine names have no '/'), woken on demand.
  const families = new Map<string, AnyMachine>();
  const workers = [];
  for (const n of names) {
    const slash = n.indexOf('/');
    if (slash < 0) workers.push(worker(n, resolveMachine(n)));
    else if (!families.has(n.slice(0, slash))) families.set(n.slice(0, slash), resolveMachine(n));
  }
  const tree = supervisor('one_for_one', [...workers, ...[...families].map(([f, m]) => entities(f, m, { intensity: 0 }))], { name: 'ssm-cli', intensity: 0 });
  try {
    return await startApplication(tree, { db: path, logger: false, readable: keepsReadableTables(path), snapshot: { every: 0, everyBytes: 0, keepSnapshots: options.keepSnapshots, retainLog: options.retainLog } });
  } catch (err) {
    if (err instanceof DatabaseLockedError) throw new SsmError(err.code, `${err.message}; ${hint}`);
    throw err;
  }
}
