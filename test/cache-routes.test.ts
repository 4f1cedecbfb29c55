/**
 * The cache next to routes, through the gateway: a route that redacts completions never
 * shares entries (or coalescing flights) with one that does not, and a coalesced stream
 * follower of a request answered by a fallback ends as cleanly as its leader; a route with
 * `cache.scope: key` keeps each virtual key's entries and flights apart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from './support/mock-upstream.js';
import { startTestGateway, type TestGateway } from './support/gateway.js';

const PII = 'mail alice@example.com or call 555-123-4567';

describe('cache and routes', () => {
  let mock: MockUpstream;
  let gw: TestGateway;

  beforeAll(async () => {
    mock = await startMockUpstream({ defaults: { chunks: 3 } });
    gw = await startTestGateway(
      {
        server: { host: '127.0.0.1', port: 0 },
        keys: [
          { id: 'plain', key: '${PLAIN_KEY}' },
          { id: 'pub-1', key: '${PUB_KEY}' },
          { id: 'plain-2', key: '${PLAIN2_KEY}' },
        ],
        backends: {
          mock: { type: 'openai-compatible', base_url: mock.url, max_connections: 16 },
          dead: { type: 'openai-compatible', base_url: 'http://127.0.0.1:9/v1', connect_timeout_ms: 500 },
        },
        models: {
          m1: { backend: 'mock', model: 'm1' },
          broken: { backend: 'dead', model: 'm1' },
          spare: { backend: 'mock', model: 'spare' },
          own: { backend: 'mock', model: 'own' },
        },
        routes: [
          { name: 'pub', match: { model: 'm1', key: 'pub-*' }, targets: [{ model: 'm1' }], filters: { pii: { prompts: false, completions: true } } },
          { name: 'fb', match: { model: 'broken' }, targets: [{ model: 'broken' }], fallbacks: ['spare'] },
          { name: 'per-key', match: { model: 'own' }, targets: [{ model: 'own' }], cache: { scope: 'key' } },
        ],
        cache: { exact: { enabled: true } },
      },
      { env: { PLAIN_KEY: 'sk-plain-0123456789', PUB_KEY: 'sk-pub-0123456789', PLAIN2_KEY: 'sk-plain2-0123456789' } },
    );
  });

  afterAll(async () => {
    await gw?.close();
    await mock?.close();
  });

  const ask = async (key: string, body: Record<string, unknown>) => {
    const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(body) });
    return { cache: res.headers.get('x-switchyard-cache'), text: await res.text(), status: res.status };
  };

  it('never serves a redacting route an unredacted entry, nor the other way round', async () => {
    for (const [first, second] of [
      ['sk-plain-0123456789', 'sk-pub-0123456789'],
      ['sk-pub-0123456789', 'sk-plain-0123456789'],
    ] as const) {
      const body = { model: 'm1', temperature: 0, messages: [{ role: 'user', content: `who to contact, ${first}` }], mock: { text: PII } };
      const a = await ask(first, body);
      const b = await ask(second, body);
      const pub = first.startsWith('sk-pub') ? a : b;
      const plain = first.startsWith('sk-pub') ? b : a;
      expect(pub.text).not.toContain('alice@example.com');
      expect(pub.text).toContain('[REDACTED_EMAIL]');
      expect(plain.text).toContain('alice@example.com');
      // The second asker missed: different partitions.
      expect(b.cache).toBe('miss');
    }
  });

  it('shares entries between keys by default (scope: shared)', async () => {
    const body = { model: 'spare', temperature: 0, messages: [{ role: 'user', content: 'shared by every key' }] };
    expect((await ask('sk-plain-0123456789', body)).cache).toBe('miss');
    expect((await ask('sk-plain2-0123456789', body)).cache).toBe('hit');
  });

  it('keeps entries apart per virtual key on a route with cache.scope: key', async () => {
    const before = mock.requests.length;
    const body = { model: 'own', temperature: 0, messages: [{ role: 'user', content: 'mine alone' }] };
    expect((await ask('sk-plain-0123456789', body)).cache).toBe('miss');
    expect((await ask('sk-plain-0123456789', body)).cache).toBe('hit');
    expect((await ask('sk-plain2-0123456789', body)).cache).toBe('miss');
    expect((await ask('sk-plain2-0123456789', body)).cache).toBe('hit');
    expect(mock.requests.length - before).toBe(2);
  });

  it('does not coalesce the same request of two keys on a route with cache.scope: key', async () => {
    const before = mock.requests.length;
    const body = { model: 'own', temperature: 0, messages: [{ role: 'user', content: 'asked at once' }], mock: { latencyMs: 150 } };
    const [a, b, c] = await Promise.all([ask('sk-plain-0123456789', body), ask('sk-plain2-0123456789', body), ask('sk-plain2-0123456789', body)]);
    expect(a.cache).toBe('miss');
    expect([b.cache, c.cache].sort()).toEqual(['hit', 'miss']); // the same key's second request waits on its first
    expect(mock.requests.length - before).toBe(2);
  });

  it("keeps the upstream call going for a live follower when the leader's client leaves", async () => {
    const before = mock.requests.length;
    const body = { model: 'm1', temperature: 0, stream: true, messages: [{ role: 'user', content: 'leader leaves early' }], mock: { chunks: 6, chunkDelayMs: 80 } };
    const ac = new AbortController();
    const leaderRes = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-plain-0123456789' }, body: JSON.stringify(body), signal: ac.signal });
    const follower = ask('sk-plain-0123456789', body);
    // Read the leader's first chunk, then leave.
    const reader = leaderRes.body!.getReader();
    await reader.read();
    await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    const f = await follower;
    expect(f.cache).toBe('hit');
    expect(f.text.match(/"content":"tok "/g)).toHaveLength(6);
    expect(f.text.trim().endsWith('data: [DONE]')).toBe(true);
    expect(f.text).not.toContain('"error"');
    const upstream = mock.requests.slice(before);
    expect(upstream).toHaveLength(1);
    expect(upstream[0]!.abortedAt).toBeUndefined();
  });

  it('still stops the upstream at once when a leader without followers leaves', async () => {
    const before = mock.requests.length;
    const ac = new AbortController();
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-plain-0123456789' },
      body: JSON.stringify({ model: 'm1', temperature: 0, stream: true, messages: [{ role: 'user', content: 'alone' }], mock: { chunks: 20, chunkDelayMs: 50 } }),
      signal: ac.signal,
    });
    await res.body!.getReader().read();
    ac.abort();
    await expect.poll(() => mock.requests[before]?.abortedAt, { timeout: 1000, interval: 10 }).toBeDefined();
  });

  it('ends a coalesced stream follower cleanly when a fallback answered the leader', async () => {
    const body = { model: 'broken', temperature: 0, stream: true, messages: [{ role: 'user', content: 'coalesced via fallback' }], mock: { latencyMs: 150, chunks: 3, chunkDelayMs: 50 } };
    const leader = ask('sk-plain-0123456789', body);
    await new Promise((r) => setTimeout(r, 60));
    const follower = ask('sk-pub-0123456789', body);
    const [l, f] = await Promise.all([leader, follower]);
    for (const r of [l, f]) {
      expect(r.status).toBe(200);
      expect(r.text.trim().endsWith('data: [DONE]')).toBe(true);
      expect(r.text).not.toContain('"error"');
    }
  });
});
