/**
 * Failure handling end to end: the openai SDK through a real gateway to two mock
 * upstreams. Fallback to another alias after 500s, retries honouring Retry-After, no
 * retry once a stream's bytes reached the client, the circuit breaker opening and
 * recovering through a half-open probe, and the admission queue answering 429.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { startMockUpstream, type MockUpstream } from './support/mock-upstream.js';
import { startTestGateway, type TestGateway } from './support/gateway.js';

const COOLDOWN_MS = 300;
let primary: MockUpstream;
let secondary: MockUpstream;
let gw: TestGateway;
let client: OpenAI;

const msg = [{ role: 'user' as const, content: 'hi' }];

async function backendUp(backend: string): Promise<number | undefined> {
  return (await gw.metrics.backendUp.get()).values.find((v) => v.labels.backend === backend)?.value;
}

beforeAll(async () => {
  primary = await startMockUpstream();
  secondary = await startMockUpstream();
  const backend = (url: string, extra: Record<string, unknown> = {}) => ({ type: 'openai-compatible', base_url: url, max_connections: 8, ...extra });
  gw = await startTestGateway({
    server: { host: '127.0.0.1', port: 0 },
    cache: { exact: { enabled: false } },
    backends: {
      // One backend per scenario, so one scenario's failures never open another's circuit.
      fb: backend(primary.url),
      retry: backend(primary.url),
      stream: backend(primary.url),
      flaky: backend(primary.url, { health: { failure_threshold: 3, cooldown_ms: COOLDOWN_MS } }),
      slow: backend(primary.url, { admission: { max_concurrent: 1, max_queue: 0 } }),
      steady: backend(secondary.url),
    },
    models: {
      'fb-model': { backend: 'fb', model: 'up-fb' },
      'retry-model': { backend: 'retry', model: 'up-retry' },
      'stream-model': { backend: 'stream', model: 'up-stream' },
      'flaky-model': { backend: 'flaky', model: 'up-flaky' },
      'slow-model': { backend: 'slow', model: 'up-slow' },
      backup: { backend: 'steady', model: 'up-backup' },
    },
    routes: [
      { name: 'with-fallback', match: { model: 'fb-model' }, fallbacks: ['backup'] },
      { name: 'with-retries', match: { model: 'retry-model' }, fallbacks: ['backup'], retries: { attempts: 2, backoff_ms: 0, max_backoff_ms: 2000 } },
      { name: 'streaming', match: { model: 'stream-model' }, fallbacks: ['backup'], retries: { attempts: 2, backoff_ms: 0 } },
      { name: 'flaky', match: { model: 'flaky-model' }, fallbacks: ['backup'] },
    ],
  });
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => {
  await gw?.close();
  await primary?.close();
  await secondary?.close();
});
beforeEach(() => {
  primary.reset();
  secondary.reset();
});

describe('fallbacks and retries', () => {
  it('falls back to another alias after an upstream 500; the client sees 200 and x-switchyard-fallback', async () => {
    primary.enqueue({ status: 500 });
    const { data, response } = await client.chat.completions.create({ model: 'fb-model', messages: msg }).withResponse();
    expect(response.status).toBe(200);
    expect(data.choices[0].message.content).toBe('Hello from mock');
    expect(response.headers.get('x-switchyard-fallback')).toBe('backup');
    expect(primary.requests.map((r) => r.body?.model)).toEqual(['up-fb']);
    expect(secondary.requests.map((r) => r.body?.model)).toEqual(['up-backup']);
  });

  it('retries 500s up to the route attempts, then falls back, and counts both', async () => {
    const count = async (m: 'retries' | 'fallbacks', labels: Record<string, string>) =>
      (await gw.metrics[m].get()).values.find((v) => Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x))?.value ?? 0;
    const retries0 = await count('retries', { backend: 'retry' });
    const fallbacks0 = await count('fallbacks', { from: 'retry-model', to: 'backup' });
    primary.enqueue({ status: 500 }, { status: 500 }, { status: 500 });
    const { data, response } = await client.chat.completions.create({ model: 'retry-model', messages: msg }).withResponse();
    expect(data.choices[0].message.content).toBe('Hello from mock');
    expect(response.headers.get('x-switchyard-fallback')).toBe('backup');
    expect(primary.requests).toHaveLength(3);
    expect(secondary.requests).toHaveLength(1);
    expect((await count('retries', { backend: 'retry' })) - retries0).toBe(2);
    expect((await count('fallbacks', { from: 'retry-model', to: 'backup' })) - fallbacks0).toBe(1);
  });

  it('waits exactly as long as Retry-After asks before retrying the same target', async () => {
    primary.enqueue({ status: 429, retryAfter: '1' });
    const t0 = Date.now();
    const { response } = await client.chat.completions.create({ model: 'retry-model', messages: msg }).withResponse();
    const elapsed = Date.now() - t0;
    expect(response.status).toBe(200);
    expect(response.headers.get('x-switchyard-fallback')).toBeNull();
    expect(primary.requests).toHaveLength(2);
    expect(secondary.requests).toHaveLength(0);
    // backoff_ms is 0, so without Retry-After the retry would be immediate.
    expect(primary.requests[1].finishedAt! - primary.requests[0].finishedAt!).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(1800);
  });

  it('moves on to the fallback at once when Retry-After is longer than max_backoff_ms', async () => {
    primary.enqueue({ status: 503, retryAfter: '30' });
    const t0 = Date.now();
    const { response } = await client.chat.completions.create({ model: 'retry-model', messages: msg }).withResponse();
    expect(Date.now() - t0).toBeLessThan(900);
    expect(response.headers.get('x-switchyard-fallback')).toBe('backup');
    expect(primary.requests).toHaveLength(1);
    expect(secondary.requests).toHaveLength(1);
  });

  it('retries a stream that failed before its first byte', async () => {
    primary.enqueue({ status: 502 });
    const stream = await client.chat.completions.create({ model: 'stream-model', messages: msg, stream: true });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
    expect(text).toBe('tok tok tok tok tok ');
    expect(primary.requests).toHaveLength(2);
    expect(secondary.requests).toHaveLength(0);
  });

  it('never retries or falls back once stream bytes reached the client; the client gets an error event', async () => {
    primary.enqueue({ chunks: 5, resetAfterChunks: 2 });
    const stream = await client.chat.completions.create({ model: 'stream-model', messages: msg, stream: true });
    let text = '';
    const err = await (async () => {
      for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
    })().catch((e: unknown) => e);
    expect(text).toBe('tok tok ');
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).message).toContain('ended before it was complete');
    expect(primary.requests).toHaveLength(1);
    expect(secondary.requests).toHaveLength(0);
  });
});

describe('circuit breaker', () => {
  it('opens after failure_threshold failures, skips the backend, and recovers through a half-open probe', async () => {
    expect(await backendUp('flaky')).toBe(1);
    primary.enqueue({ status: 500 }, { status: 500 }, { status: 500 });
    for (let i = 0; i < 3; i++) {
      const { response } = await client.chat.completions.create({ model: 'flaky-model', messages: msg }).withResponse();
      expect(response.status).toBe(200);
      expect(response.headers.get('x-switchyard-fallback')).toBe('backup');
    }
    expect(primary.requests).toHaveLength(3);
    expect(await backendUp('flaky')).toBe(0);

    // Open: the router skips the backend; the request never reaches it.
    const { response: skipped } = await client.chat.completions.create({ model: 'flaky-model', messages: msg }).withResponse();
    expect(skipped.headers.get('x-switchyard-route')).toBe('route=flaky; target=backup');
    expect(primary.requests).toHaveLength(3);
    expect(secondary.requests).toHaveLength(4);

    // After the cooldown one probe goes through; it succeeds and the circuit closes.
    await new Promise((r) => setTimeout(r, COOLDOWN_MS + 50));
    const { response: probe } = await client.chat.completions.create({ model: 'flaky-model', messages: msg }).withResponse();
    expect(probe.headers.get('x-switchyard-route')).toBe('route=flaky; target=flaky-model');
    expect(probe.headers.get('x-switchyard-fallback')).toBeNull();
    expect(primary.requests).toHaveLength(4);
    expect(await backendUp('flaky')).toBe(1);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/switchyard_backend_up\{backend="flaky"\} 1/);
  });

  it('opens again when the half-open probe fails', async () => {
    primary.enqueue({ status: 500 }, { status: 500 }, { status: 500 }, { status: 500 });
    for (let i = 0; i < 3; i++) await client.chat.completions.create({ model: 'flaky-model', messages: msg });
    expect(await backendUp('flaky')).toBe(0);
    await new Promise((r) => setTimeout(r, COOLDOWN_MS + 50));
    const { response } = await client.chat.completions.create({ model: 'flaky-model', messages: msg }).withResponse();
    expect(response.headers.get('x-switchyard-fallback')).toBe('backup');
    expect(primary.requests).toHaveLength(4);
    expect(await backendUp('flaky')).toBe(0);
    await new Promise((r) => setTimeout(r, COOLDOWN_MS + 50));
    await client.chat.completions.create({ model: 'flaky-model', messages: msg });
    expect(await backendUp('flaky')).toBe(1);
  });
});

describe('admission control', () => {
  it('answers 429 queue_full with Retry-After when the slot is taken and the queue has no room', async () => {
    primary.enqueue({ latencyMs: 400 });
    const first = client.chat.completions.create({ model: 'slow-model', messages: msg });
    await new Promise((r) => setTimeout(r, 100));
    const depth = (await gw.metrics.tokenQueueDepth.get()).values.find((v) => v.labels.backend === 'slow')?.value;
    expect(depth).toBeGreaterThan(0);
    const err = await client.chat.completions.create({ model: 'slow-model', messages: msg }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const e = err as InstanceType<typeof OpenAI.RateLimitError>;
    expect(e.code).toBe('queue_full');
    expect(Number(e.headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await first).choices[0].message.content).toBe('Hello from mock');
    expect(primary.requests).toHaveLength(1);
    // The slot is free again.
    await expect(client.chat.completions.create({ model: 'slow-model', messages: msg })).resolves.toBeTruthy();
  });
});
