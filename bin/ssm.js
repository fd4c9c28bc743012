#!/usr/bin/env node
// In a checkout of the repository, runs the TypeScript sources through tsx (so the CLI is never
// a stale build); in the npm package, where src/ is not shipped, runs the compiled dist/.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = new URL('../', import.meta.url);
const source = new URL('src/cli/main.ts', root);
let cli;
if (existsSync(fileURLToPath(source))) {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import(source.href);
} else {
  cli = await import(new URL('dist/cli/main.js', root).href);
}
process.exitCode = await cli.main(process.argv.slice(2));
