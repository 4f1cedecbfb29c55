/**
 * What the gateway reports agrees with what it charged and what happened: the cost
 * metric equals the budget spend on every ending (a client abort charged the worst case,
 * a cache hit under charge_hits), the overhead figure leaves out retry backoff and a
 * coalesced follower's wait, a retry is counted only when it happens, and a client
 * cannot grow the tool-call metric without bound.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createMetrics } from '../gateway/metrics.js';
import { createRecordMetricsFinalizer, MAX_FUNCTION_LABELS } from '../gateway/pipeline/finalizers/record-metrics.js';
import type { RequestContext } from '../gateway/pipeline/context.js';
import type { GatewayDeps } from '../gateway/pipeline/deps.js';
import { startMockUpstream, type MockUpstream } from './support/mock-upstream.js';
import { startTestGateway, type TestGateway } from './support/gateway.js';
import { settledSpend } from './support/usage.js';

const spent = async () => (await settledSpend(gw.url, KEY)).spent_usd;

const PRICE = { input: 10_000, output: 20_000 }; // $0.01 / $0.02 per token
const KEY = 'sk-obs-0123456789';
let mock: MockUpstream;
let gw: TestGateway;

beforeAll(async () => {
  mock = await startMockUpstream();
  gw = await startTestGateway(
    {
      server: { host: '127.0.0.1', port: 0 },
      backends: { mock: { type: 'openai-compatible', base_url: mock.url, timeout_ms: 5000 } },
      models: { m: { backend: 'mock', model: 'gpt-4o-mini', price: PRICE }, r: { backend: 'mock', model: 'gpt-4o-mini', price: PRICE } },
      routes: [{ name: 'retrying', match: { model: 'r' }, targets: [{ model: 'r' }], retries: { attempts: 2, backoff_ms: 300, max_backoff_ms: 2000 } }],
      keys: [{ id: 'k', key: '${OBS_KEY}', budget: { usd_per_day: 1000 } }],
      cache: { exact: { enabled: true }, charge_hits: true },
    },
    { env: { OBS_KEY: KEY }, metrics: createMetrics({ defaultMetrics: false }) },
  );
});
afterAll(async () => {
  await gw?.close();
  await mock?.close();
});
beforeEach(() => mock.reset());

const client = new Proxy({} as OpenAI, { get: (_t, p) => Reflect.get(new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0 }), p) });

async function scrape(name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.split(' ').pop());
  }
  return sum;
}

describe('reported figures match charged figures', () => {
  it('prices a client abort at the worst case it was charged, in the cost metric too', async () => {
    const cost0 = await scrape('switchyard_cost_usd_total');
    const spend0 = await spent();
    const ac = new AbortController();
    const p = fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'slow' }], max_tokens: 1000, mock: { latencyMs: 800 } }),
      signal: ac.signal,
    }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
    ac.abort();
    await p;
    await expect.poll(async () => (await spent()) - spend0, { timeout: 3000 }).toBeGreaterThan(20); // 1000 × $0.02 + the prompt
    const charged = (await spent()) - spend0;
    await expect.poll(async () => (await scrape('switchyard_cost_usd_total')) - cost0, { timeout: 3000 }).toBeCloseTo(charged, 6);
  });

  it('prices cache hits in the cost metric when cache.charge_hits makes the budget charge them', async () => {
    const body = { model: 'm', temperature: 0, messages: [{ role: 'user' as const, content: 'charged hit' }] };
    await client.chat.completions.create(body);
    const cost0 = await scrape('switchyard_cost_usd_total');
    const spend0 = await spent();
    const hit = await client.chat.completions.create(body).withResponse();
    expect(hit.response.headers.get('x-switchyard-cache')).toBe('hit');
    const charged = (await spent()) - spend0;
    expect(charged).toBeGreaterThan(0);
    expect((await scrape('switchyard_cost_usd_total')) - cost0).toBeCloseTo(charged, 6);
  });
});

describe('requests refused before the pipeline', () => {
  it('are counted in switchyard_requests_total like every other request (404, 405, 413)', async () => {
    const count = async (status: string) => scrape('switchyard_requests_total', { status });
    const [n404, n405, n413] = [await count('404'), await count('405'), await count('413')];
    expect((await fetch(`${gw.url}/v1/nope`)).status).toBe(404);
    expect((await fetch(`${gw.url}/v1/chat/completions`)).status).toBe(405);
    const big = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'x'.repeat(11 * 1024 * 1024) }).catch(() => undefined);
    if (big) expect(big.status).toBe(413);
    expect(await count('404')).toBe(n404 + 1);
    expect(await count('405')).toBe(n405 + 1);
    if (big) expect(await count('413')).toBe(n413 + 1);
  });
});

describe('overhead and retries', () => {
  it('leaves retry backoff out of the overhead figure', async () => {
    mock.enqueue({ status: 503, retryAfter: '1' }, {}); // a whole second of waiting, exactly
    const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }, body: JSON.stringify({ model: 'r', messages: [{ role: 'user', content: 'flaky' }] }) });
    expect(res.status).toBe(200);
    expect(mock.requests.filter((r) => r.path === '/v1/chat/completions')).toHaveLength(2);
    expect(Number(res.headers.get('x-switchyard-overhead-ms'))).toBeLessThan(150); // the 1 s wait is not the gateway's
  });

  it('counts a retry only when it is made: not when the client left during the backoff', async () => {
    const before = await scrape('switchyard_retries_total');
    // Retry-After: 1 makes the wait exactly a second (the plain backoff is jittered and may be shorter than the client's patience).
    mock.enqueue({ status: 503, retryAfter: '1' }, {});
    const ac = new AbortController();
    const p = fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }, body: JSON.stringify({ model: 'r', messages: [{ role: 'user', content: 'leaves' }] }), signal: ac.signal }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    await p;
    await new Promise((r) => setTimeout(r, 1200));
    expect(mock.requests.filter((r) => r.path === '/v1/chat/completions')).toHaveLength(1);
    expect(await scrape('switchyard_retries_total')).toBe(before);
  });
});

describe('tool-call metric cardinality', () => {
  it('labels at most MAX_FUNCTION_LABELS function names per model; the rest count as _other', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const finalize = createRecordMetricsFinalizer({ metrics } as unknown as GatewayDeps);
    for (let i = 0; i < MAX_FUNCTION_LABELS + 50; i++) {
      const name = `fn_${i}`;
      finalize({
        target: { alias: 'm', backendName: 'mock' }, endpoint: 'chat', stream: false, status: 200,
        startNs: process.hrtime.bigint(), upstreamNs: 0n, waitNs: 0n,
        toolCalls: [name], body: { tools: [{ type: 'function', function: { name } }] },
      } as unknown as RequestContext, undefined);
    }
    const values = (await metrics.toolCalls.get()).values;
    const labels = new Set(values.map((v) => v.labels.function));
    expect(labels.size).toBe(MAX_FUNCTION_LABELS + 1);
    expect(values.find((v) => v.labels.function === '_other')?.value).toBe(50);
    expect(values.find((v) => v.labels.function === 'fn_0')?.value).toBe(1);
  });
});
