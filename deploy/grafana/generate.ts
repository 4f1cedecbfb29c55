/**
 * Writes deploy/grafana/dashboards/*.json from dashboards.ts.
 * Run: node --import tsx deploy/grafana/generate.ts
 * test/dashboards.test.ts fails when the committed JSON and this output differ.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildDashboards } from './dashboards.js';

const dir = fileURLToPath(new URL('./dashboards/', import.meta.url));
for (const { file, json } of buildDashboards()) {
  writeFileSync(dir + file, `${JSON.stringify(json, null, 2)}\n`);
  process.stdout.write(`wrote deploy/grafana/dashboards/${file}\n`);
}
