#!/usr/bin/env node
// Runs the compiled CLI when built (the npm package), or the TypeScript source through tsx
// in a checkout of the repository.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = new URL('../', import.meta.url);
const dist = new URL('dist/cli.js', root);
let cli;
if (existsSync(fileURLToPath(dist))) {
  cli = await import(dist.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import(new URL('src/cli.ts', root).href);
}
process.exitCode = await cli.main(process.argv.slice(2));
