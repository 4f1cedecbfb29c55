#!/usr/bin/env node
// The standalone local-model server: runs the compiled CLI when built (npm run build),
// else the TypeScript sources via tsx. Flags: see `switchyard-local-backend --help`.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const compiled = fileURLToPath(new URL('../dist/local-backend/cli.js', import.meta.url));
if (existsSync(compiled)) {
  await import(pathToFileURL(compiled).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../local-backend/cli.ts', import.meta.url).href);
}
