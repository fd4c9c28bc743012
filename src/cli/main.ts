import { SsmError } from '../errors.js';
import { exitCodeFor } from './common.js';
import { interruptible } from './interrupt.js';

/**
 * `ssm`: a dispatcher. Each command lives in `src/cli/<name>.ts` and exports
 * `run(argv: string[]): Promise<number>` (the exit code) and `summary` (one line for --help).
 */
export const COMMANDS = ['serve', 'demo', 'inspect', 'entities', 'log', 'failed', 'timers', 'backup', 'restore', 'views', 'release', 'checkpoint', 'compact', 'verify'] as const;
export type CommandName = (typeof COMMANDS)[number];

export interface CommandModule {
  readonly summary: string;
  run(argv: string[]): Promise<number>;
}

async function load(name: CommandName): Promise<CommandModule> {
  return (await import(`./commands/${name}.js`)) as CommandModule;
}

async function usage(): Promise<string> {
  const lines = ['Usage: ssm <command> [options]', '', 'Commands:'];
  for (const name of COMMANDS) {
    let summary = '';
    try {
      summary = (await load(name)).summary;
    } catch {
      continue;
    }
    lines.push(`  ${name.padEnd(11)} ${summary}`);
  }
  lines.push(
    '',
    "Run 'ssm <command> --help' for a command's options.",
    '',
    'Exit codes: 0 ok; 1 failure (or verify found a problem); 2 usage error; 3 the database was',
    'written by another application (pass --module PATH); 130 interrupted (Ctrl-C).',
  );
  return lines.join('\n');
}

/** Runs the CLI with `argv` (without node and script); resolves with the exit code. */
let pipeHandled = false;

/** `ssm log ... | head` closes the pipe early: that is not an error, whoever called main(). */
function exitQuietlyOnClosedPipe(): void {
  if (pipeHandled) return;
  pipeHandled = true;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

export async function main(argv: string[]): Promise<number> {
  exitQuietlyOnClosedPipe();
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    (cmd ? console.log : console.error)(await usage());
    return cmd ? 0 : 2;
  }
  if (!(COMMANDS as readonly string[]).includes(cmd)) {
    console.error(`ssm: unknown command '${cmd}'\n\n${await usage()}`);
    return 2;
  }
  // Commands that may hold the writer role (or run long) say what Ctrl-C left behind.
  const INTERRUPTIBLE: readonly string[] = ['verify', 'checkpoint', 'compact'];
  try {
    const command = await load(cmd as CommandName);
    return INTERRUPTIBLE.includes(cmd) ? await interruptible(cmd, () => command.run(rest)) : await command.run(rest);
  } catch (err) {
    const code = err instanceof SsmError ? ` [${err.code}]` : '';
    console.error(`ssm ${cmd}: ${err instanceof Error ? err.message : String(err)}${code}`);
    return exitCodeFor(err);
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
