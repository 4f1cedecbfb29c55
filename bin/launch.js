// Shared by the bin entries: runs the TypeScript sources via tsx in a checkout (so a
// stale build can never run old code), and the compiled build where only dist/ ships
// (the Docker image).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

export async function launch(sourceRel, compiledRel) {
  const source = fileURLToPath(new URL(`../${sourceRel}`, import.meta.url));
  const compiled = fileURLToPath(new URL(`../${compiledRel}`, import.meta.url));
  if (existsSync(source) || !existsSync(compiled)) {
    const { register } = await import('tsx/esm/api');
    register();
    await import(pathToFileURL(source).href);
  } else {
    await import(pathToFileURL(compiled).href);
  }
}
