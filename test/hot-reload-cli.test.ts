/**
 * Hot reload of the real process: `node bin/switchyard.js --config FILE`. The test
 * rewrites FILE in place and by atomic rename (how editors and Kubernetes ConfigMap
 * volumes replace files), breaks it, and sends SIGHUP. Valid changes are applied;
 * an invalid file is logged and the old config keeps serving.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { startMockUpstream, type MockUpstream } from './support/mock-upstream.js';

let mock: MockUpstream;
let child: ChildProcess;
let client: OpenAI;
let gatewayUrl = '';
const lines: Array<Record<string, unknown>> = [];
const dir = mkdtempSync(join(tmpdir(), 'switchyard-reload-'));
const file = join(dir, 'gateway.yaml');

const yaml = (upstreamModel: string) =>
  [
    'server: { host: 127.0.0.1, port: 0, implementation: node }',
    'cache: { exact: { enabled: false } }',
    'backends:',
    `  mock: { type: openai-compatible, base_url: "${mock.url}" }`,
    'models:',
    `  chat: { backend: mock, model: ${upstreamModel} }`,
    '',
  ].join('\n');

/** Resolves with the first log line (from `from` on) that matches. */
async function waitForLog(from: number, pred: (l: Record<string, unknown>) => boolean, ms = 5000): Promise<Record<string, unknown>> {
  const end = Date.now() + ms;
  for (;;) {
    const hit = lines.slice(from).find(pred);
    if (hit) return hit;
    if (Date.now() > end) throw new Error(`log line not seen; got:\n${lines.slice(from).map((l) => JSON.stringify(l)).join('\n')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
const reloaded = (l: Record<string, unknown>) => l.msg === 'config reloaded';
const failed = (l: Record<string, unknown>) => l.msg === 'config reload failed; still serving the previous config';

async function upstreamModel(): Promise<unknown> {
  mock.reset();
  const r = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] });
  expect(r.choices[0].message.content).toBe('Hello from mock');
  return mock.requests[0]?.body?.model;
}

beforeAll(async () => {
  mock = await startMockUpstream();
  writeFileSync(file, yaml('v1'));
  child = spawn(process.execPath, ['bin/switchyard.js', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } });
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) !== -1) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* not JSON */
      }
    }
  });
  const listening = await waitForLog(0, (l) => l.msg === 'switchyard listening', 20000);
  gatewayUrl = `http://127.0.0.1:${listening.port as number}`;
  client = new OpenAI({ baseURL: `${gatewayUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
}, 30000);
afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  await mock?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('hot reload of the running process', () => {
  it('applies a valid change written in place', async () => {
    expect(await upstreamModel()).toBe('v1');
    const from = lines.length;
    writeFileSync(file, yaml('v2'));
    expect(await waitForLog(from, reloaded)).toMatchObject({ why: 'file changed' });
    expect(await upstreamModel()).toBe('v2');
  });

  it('applies changes that replace the file by rename, again and again', async () => {
    for (const v of ['v3', 'v4']) {
      const from = lines.length;
      writeFileSync(join(dir, 'next.tmp'), yaml(v));
      renameSync(join(dir, 'next.tmp'), file);
      await waitForLog(from, reloaded);
      expect(await upstreamModel()).toBe(v);
    }
  });

  it('keeps serving the old config and logs the error when the file is invalid YAML, also on SIGHUP', async () => {
    let from = lines.length;
    writeFileSync(file, 'models:\n  chat: { backend: mock, model: v5\n');
    const err = await waitForLog(from, failed);
    expect(String(err.err)).toMatch(/YAML/);
    expect(await upstreamModel()).toBe('v4');

    from = lines.length;
    child.kill('SIGHUP');
    expect(await waitForLog(from, failed)).toMatchObject({ why: 'SIGHUP' });
    expect(await upstreamModel()).toBe('v4');
  });

  it('keeps serving the old config when the file is emptied (a write that truncates first)', async () => {
    const from = lines.length;
    writeFileSync(file, '');
    const err = await waitForLog(from, failed);
    expect(String(err.err)).toMatch(/config file is empty/);
    expect(await upstreamModel()).toBe('v4');
  });

  it('keeps serving the old config when the file is valid YAML but an invalid config', async () => {
    const from = lines.length;
    writeFileSync(file, yaml('v6').replace('type: openai-compatible', 'type: not-a-provider'));
    const err = await waitForLog(from, failed);
    expect(String(err.err)).toContain('backends.mock.type');
    expect(await upstreamModel()).toBe('v4');
  });

  it('reloads on SIGHUP and counts reloads by result', async () => {
    const written = lines.length;
    writeFileSync(file, yaml('v7'));
    await waitForLog(written, reloaded);
    const from = lines.length;
    child.kill('SIGHUP');
    expect(await waitForLog(from, reloaded)).toMatchObject({ why: 'SIGHUP' });
    expect(await upstreamModel()).toBe('v7');
    const metrics = await (await fetch(`${gatewayUrl}/metrics`)).text();
    const count = (result: string) => Number(new RegExp(`switchyard_config_reloads_total\\{result="${result}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
    expect(count('ok')).toBeGreaterThanOrEqual(5);
    expect(count('error')).toBeGreaterThanOrEqual(3);
  });
});
