import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, SsmError } from '../errors.js';
import { intFlag } from './args.js';

/**
 * Runs a command body, turning usage problems (ConfigError) into one line on stderr and exit
 * code 2, the usual code for a command-line usage error. Other errors go to the dispatcher,
 * which prints them as one line with exit code 1.
 */
export async function usageGuard(cmd: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`ssm ${cmd}: ${err.message} [${err.code}]`);
    return EXIT.usage;
  }
}

/** At most `max` positionals, else a usage error. */
export function positionalsAtMost(positionals: readonly string[], max: number, usage: string): void {
  if (positionals.length > max) {
    throw new ConfigError(`unexpected argument ${JSON.stringify(positionals[max])} (usage: ${usage.split('\n')[0]!.replace(/^Usage: /, '')}; try --help)`);
  }
}

/** A positive integer flag (e.g. --limit), or undefined. */
export function positiveFlag(name: string, value: string | undefined): number | undefined {
  const n = intFlag(name, value);
  if (n === 0) throw new ConfigError(`--${name} must be at least 1`);
  return n;
}

/** The error code of a database written by another application (ForeignDatabaseError in machines.ts). */
export const FOREIGN_DATABASE = 'FOREIGN_DATABASE';

/**
 * Exit codes of every command: 1 for a failure or a problem found, 2 for a usage error, 3 for a
 * database whose machines are not the ones the CLI was given (not corruption: pass --module),
 * 130 for an interrupt (Ctrl-C), as shells report a SIGINT death.
 */
export const EXIT = { failure: 1, usage: 2, foreign: 3, interrupted: 130 } as const;

/** The exit code for an error that reached the dispatcher. */
export function exitCodeFor(err: unknown): number {
  return err instanceof SsmError && err.code === FOREIGN_DATABASE ? EXIT.foreign : EXIT.failure;
}

/**
 * Runs `body`, which may create the database at `db`, and says so on stderr ("created new
 * database at ABSOLUTE_PATH") when it did: a mistyped --db must not pass silently. `body` gets
 * the announcement to make it as soon as the database is open; otherwise it is made at the end.
 */
export async function announcingNewDatabase<T>(db: string, body: (announce: () => void) => Promise<T>): Promise<T> {
  const existed = db === ':memory:' || existsSync(db);
  let announced = false;
  const announce = (): void => {
    if (existed || announced || !existsSync(db)) return;
    announced = true;
    process.stderr.write(`[ssm] created new database at ${resolve(db)}\n`);
  };
  try {
    return await body(announce);
  } finally {
    announce();
  }
}
