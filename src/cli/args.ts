import { parseArgs } from 'node:util';
import { ConfigError } from '../errors.js';

type OptionSpec = { type: 'string' | 'boolean'; short?: string; multiple?: boolean };
type Values<T extends Record<string, OptionSpec>> = {
  [K in keyof T]?: T[K] extends { type: 'boolean' } ? boolean : T[K] extends { multiple: true } ? string[] : string;
} & { help?: boolean };

/**
 * Shared argument parsing for CLI commands (node:util parseArgs, strict). Unknown flags and
 * missing values become a ConfigError carrying the command's usage.
 */
export function parseCommand<T extends Record<string, OptionSpec>>(argv: string[], options: T, usage: string, allowPositionals = true): { values: Values<T>; positionals: string[] } {
  try {
    const parsed = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true });
    return { values: parsed.values as Values<T>, positionals: parsed.positionals };
  } catch (err) {
    // node's parseArgs messages span several lines; the CLI promises one-line errors.
    const message = (err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, ' ');
    throw new ConfigError(`${message} (usage: ${usage.split('\n')[0]!.replace(/^Usage: /, '')}; try --help)`);
  }
}

/** Parses a non-negative integer flag value. */
export function intFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new ConfigError(`--${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return Number(value);
}
