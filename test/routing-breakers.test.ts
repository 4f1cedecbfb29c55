/**
 * Circuit breakers through the gateway: a backend whose streams break counts as failing
 * (its 200 head notwithstanding), and the 503 of a model whose backends are all open
 * promises a retry when its own circuits allow one, not when an unrelated one does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '../gateway/metrics.js';
import { startMockUpstream, type MockUpstream } from './support/mock-upstream.js';
import { startTestGateway, type TestGateway } from './support/gateway.js';

let mock: MockUpstream;
let gw: TestGateway;

beforeAll(async () => {
  mock = await startMockUpstream();
  gw = await startTestGateway(
    {
      server: { host: '127.0.0.1', port: 0 },
      backends: {
        flaky: { type: 'openai-compatible', base_url: mock.url, health: { failure_threshold: 3, cooldown_ms: 60_000 } },
        quick: { type: 'openai-compatible', base_url: mock.url, health: { failure_threshold: 1, cooldown_ms: 400 } },
        slow: { type: 'openai-compatible', base_url: mock.url, health: { failure_threshold: 1, cooldown_ms: 60_000 } },
      },
      models: { f: { backend: 'flaky', model: 'f' }, q: { backend: 'quick', model: 'q' }, s: { backend: 'slow', model: 's' } },
      routes: [{ name: 'to-slow', match: { model: 'sr' }, targets: [{ model: 's' }] }],
    },
    { metrics: createMetrics({ defaultMetrics: false }) },
  );
});
afterAll(async () => {
  await gw?.close();
  await mock?.close();
});

const ask = (model: string, extra: Record<string, unknown> = {}) =>
  fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'x' }], ...extra }) });

async function backendUp(name: string): Promise<number | undefined> {
  const m = new RegExp(`^switchyard_backend_up\\{backend="${name}"\\} (\\d)`, 'm').exec(await (await fetch(`${gw.url}/metrics`)).text());
  return m ? Number(m[1]) : undefined;
}

describe('circuit breakers', () => {
  it('opens on streams that break after their 200 head', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await ask('f', { stream: true, mock: { chunks: 5, resetAfterChunks: 1 } });
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('"error"');
    }
    expect(await backendUp('flaky')).toBe(0);
    const refused = await ask('f');
    expect(refused.status).toBe(503);
  });

  it("answers an all-open model's 503 with its own circuits' Retry-After", async () => {
    await ask('q', { mock: { status: 500 } });
    await ask('s', { mock: { status: 500 } });
    const res = await ask('sr'); // a route whose only target is open: refused before any attempt
    expect(res.status).toBe(503);
    // 'quick' reopens for probes in 0.4 s; 's' only in a minute.
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(50);
  });
});
