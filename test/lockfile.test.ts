/**
 * `npm ci` (what CI runs) refuses a lock file that lacks an entry for any dependency,
 * optional platform packages included. Some of node-llama-cpp's platform packages are
 * not served by every registry mirror, and a plain `npm install` then drops their
 * entries: this keeps the lock complete.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';

describe('package-lock.json', () => {
  it('has an entry for every optional platform package of node-llama-cpp', () => {
    const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as { packages: Record<string, { optionalDependencies?: Record<string, string> }> };
    const llama = lock.packages['node_modules/node-llama-cpp'];
    const optional = Object.keys(llama.optionalDependencies ?? {});
    expect(optional.length).toBeGreaterThan(0);
    const missing = optional.filter((name) => !lock.packages[`node_modules/${name}`]);
    expect(missing).toEqual([]);
  });
});
