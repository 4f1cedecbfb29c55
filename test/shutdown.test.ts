/**
 * Graceful shutdown: /ready turns false at once, in-flight streams finish, then the
 * process exits 0. And the node:http fallback when uWebSockets.js cannot load.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Pool } from 'undici';
import { startMockUpstream, type MockUpstream } from './support/mock-upstream.js';
import { mockConfig, startTestGateway } from './support/gateway.js';
import { createHttpServer } from '../gateway/server/create-server.js';

let mock: MockUpstream;
const dir = mkdtempSync(join(tmpdir(), 'switchyard-shutdown-'));
beforeAll(async () => {
  mock = await startMockUpstream();
});
afterAll(async () => {
  await mock.close();
  rmSync(dir, { recursive: true, force: true });
});

async function readStream(res: Response): Promise<string> {
  return await res.text();
}

function streamRequest(url: string) {
  return fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'long' }], stream: true, mock: { chunks: 8, chunkDelayMs: 60 } }),
  });
}

describe('graceful shutdown', () => {
  it.each(['uws', 'node'] as const)('on %s: readiness drops at once and the stream in flight completes', async (kind) => {
    const gw = await startTestGateway(mockConfig(mock.url), { server: kind });
    // A keep-alive connection opened before the shutdown, as a kubelet's probe would hold.
    const probe = new Pool(gw.url, { connections: 1 });
    expect((await probe.request({ path: '/ready', method: 'GET' })).statusCode).toBe(200);
    const res = await streamRequest(gw.url);
    expect(res.status).toBe(200);
    const body = readStream(res);
    const done = gw.shutdown();
    if (kind === 'uws') {
      const ready = await probe.request({ path: '/ready', method: 'GET' });
      expect(ready.statusCode).toBe(503);
      // The connection closes after this answer: keep-alive clients reconnect elsewhere,
      // so the drain ends instead of serving them for the whole grace period.
      expect(ready.headers.connection).toBe('close');
      expect(await ready.body.json()).toEqual({ status: 'shutting_down' });
    } else {
      // node:http's close() also drops idle keep-alive connections: the probe fails, as an unready pod's should.
      await expect(probe.request({ path: '/ready', method: 'GET' })).rejects.toThrow();
    }
    const text = await body;
    expect(text.match(/"content":"tok "/g)).toHaveLength(8);
    expect(text.trim().endsWith('data: [DONE]')).toBe(true);
    await done;
    await probe.close();
  });

  it('past the grace period, a coalesced follower gets the 503 shutting_down too, not a 502', async () => {
    const gw = await startTestGateway({ ...mockConfig(mock.url), server: { host: '127.0.0.1', port: 0, shutdown_grace_ms: 300 } });
    const body = JSON.stringify({ model: 'gpt-4o-mini', temperature: 0, messages: [{ role: 'user', content: 'same slow question' }], mock: { latencyMs: 4000 } });
    const ask = () => fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const leader = ask();
    await new Promise((r) => setTimeout(r, 100));
    const follower = ask();
    await new Promise((r) => setTimeout(r, 100));
    await gw.shutdown();
    for (const res of [await leader, await follower]) {
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('shutting_down');
    }
  });

  it('on uws: a stream that starts on a kept-alive connection during the drain says Connection: close, so the drain ends', async () => {
    const gw = await startTestGateway(mockConfig(mock.url), { server: 'uws' });
    const pool = new Pool(gw.url, { connections: 1 });
    expect((await pool.request({ path: '/ready', method: 'GET' })).statusCode).toBe(200);
    const first = streamRequest(gw.url).then((r) => r.text());
    await new Promise((r) => setTimeout(r, 50));
    const done = gw.shutdown();
    const late = await pool.request({
      path: '/v1/chat/completions',
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'late' }], stream: true, mock: { chunks: 3, chunkDelayMs: 10 } }),
    });
    expect(late.statusCode).toBe(200);
    expect(late.headers.connection).toBe('close');
    expect(await late.body.text()).toContain('data: [DONE]');
    await first;
    await done;
    await pool.close();
  });

  it.each(['uws', 'node'] as const)('on %s: past the grace period, ends a stream with a shutting_down event and a whole answer with a 503, logged as shutdown', async (kind) => {
    const gw = await startTestGateway({ ...mockConfig(mock.url), server: { host: '127.0.0.1', port: 0, shutdown_grace_ms: 300 } }, { server: kind });
    const stream = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'long stream' }], stream: true, mock: { chunks: 100, chunkDelayMs: 50 } }),
    });
    expect(stream.status).toBe(200);
    const streamText = stream.text();
    const whole = fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'slow answer' }], mock: { latencyMs: 5000 } }),
    });
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    await gw.shutdown();
    expect(Date.now() - started).toBeLessThan(2000);

    const text = await streamText;
    expect(text).toContain('"code":"shutting_down"');
    expect(text).not.toContain('[DONE]');
    const answer = await whole;
    expect(answer.status).toBe(503);
    expect(answer.headers.get('retry-after')).toBe('1');
    expect(((await answer.json()) as { error: { code: string } }).error.code).toBe('shutting_down');

    const lines = gw.logs.filter((l) => l.msg === 'request');
    expect(lines.find((l) => l.stream === true)).toMatchObject({ stream_outcome: 'shutdown' });
    expect(lines.find((l) => l.stream === false)).toMatchObject({ status: 503, error_code: 'shutting_down' });
  });

  it('exits 0 on SIGTERM after the stream in flight has completed', async () => {
    const cfg = join(dir, 'gw.yaml');
    writeFileSync(
      cfg,
      `server: { host: 127.0.0.1, port: 0, shutdown_grace_ms: 10000 }\nbackends:\n  mock: { type: openai-compatible, base_url: "${mock.url}" }\nmodels:\n  gpt-4o-mini: { backend: mock, model: gpt-4o-mini }\n`,
    );
    const child = spawn(process.execPath, ['bin/switchyard.js', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const port = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no listening line: ${out}`)), 15000);
      child.stdout.on('data', () => {
        const m = /"port":(\d+)/.exec(out);
        if (m) {
          clearTimeout(t);
          resolve(Number(m[1]));
        }
      });
    });
    const res = await streamRequest(`http://127.0.0.1:${port}`);
    const body = readStream(res);
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    const text = await body;
    expect(text.match(/"content":"tok "/g)).toHaveLength(8);
    expect(text).toContain('[DONE]');
    expect(code).toBe(0);
    expect(out).toContain('shutting down');
  });
});

describe('the node:http fallback', () => {
  it('serves on node:http with one warning when the uWebSockets.js binary cannot load', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString()), cb()) }));
    const server = createHttpServer(
      'auto',
      { host: '127.0.0.1', port: 0, maxBodyBytes: 1024, onBodyError: () => {} },
      (_req, res) => res.send(200, { 'content-type': 'text/plain' }, 'fallback ok'),
      logger,
      () => {
        throw new Error('was compiled against a different Node.js version (NODE_MODULE_VERSION 115)');
      },
    );
    expect(server.kind).toBe('node');
    const port = await server.listen();
    expect(await (await fetch(`http://127.0.0.1:${port}/x`)).text()).toBe('fallback ok');
    server.close();
    const warnings = lines.filter((l) => l.includes('falling back to node:http'));
    expect(warnings).toHaveLength(1);
  });
});
