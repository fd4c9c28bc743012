import { ConfigError } from '../errors.js';
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
    return 2;
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
