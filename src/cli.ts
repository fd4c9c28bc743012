import { runDemo } from './demo.js';

const USAGE = `Usage: ssm <command> [options]

Commands:
  demo [--db PATH]     Run the seed's scenario (crash and recover kv2) on a database

Run 'ssm <command> --help' for a command's options.`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(USAGE);
    return cmd ? 0 : 2;
  }
  if (cmd === 'demo') {
    const i = rest.indexOf('--db');
    await runDemo({ db: i >= 0 ? rest[i + 1] : undefined });
    return 0;
  }
  console.error(`ssm: unknown command '${cmd}'\n${USAGE}`);
  return 2;
}

const isMain = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) {
  // `ssm log ... | head` closes the pipe early: that is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`ssm: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
