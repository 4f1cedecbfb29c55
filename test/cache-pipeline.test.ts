/**
 * The response cache as users meet it: the real wired gateway (startTestGateway, the
 * whole pipeline, budget and cache stages included) in front of the mock upstream,
 * driven by the official openai SDK. Upstream calls are counted on the mock; the
 * cache metrics are read from GET /metrics as Prometheus scrapes them.
 * Sharing across processes through Redis: cache-replicas.test.ts.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createMetrics } from '../gateway/metrics.js';
import { MAX_KEY_VALUES } from '../gateway/cache/key.js';
import { startMockUpstream, type MockUpstream } from './support/mock-upstream.js';
import { startTestGateway, type TestGateway } from './support/gateway.js';
import { startRedis } from './support/redis.js';
import { settledSpend as spendOf } from './support/usage.js';

const KEY = 'sk-cache-team-0123456789';
const settledSpend = (gw: TestGateway) => spendOf(gw.url, KEY);
const PRICE = { input: 0.15, output: 0.6 };

let mock: MockUpstream;
const gateways: TestGateway[] = [];
beforeAll(async () => {
  mock = await startMockUpstream();
});
afterAll(async () => {
  for (const gw of gateways) await gw.close();
  await mock?.close();
});
beforeEach(() => mock.reset());

function config(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    server: { host: '127.0.0.1', port: 0 },
    keys: [{ id: 'team-a', key: '${CACHE_TEST_KEY}', budget: { usd_per_day: 5 } }],
    backends: { mock: { type: 'openai-compatible', base_url: mock.url, api_key: '${MOCK_KEY:-sk-up}', timeout_ms: 5000 } },
    models: {
      'gpt-4o-mini': { backend: 'mock', model: 'gpt-4o-mini', price: PRICE },
      'short-ttl': { backend: 'mock', model: 'gpt-4o-mini', price: PRICE },
      faq: { backend: 'mock', model: 'gpt-4o-mini', price: PRICE },
      embed: { backend: 'mock', model: 'text-embedding-3-small', price: { input: 0.02, output: 0 } },
    },
    routes: [
      { name: 'short', match: { model: 'short-ttl' }, cache: { ttl_s: 1 } },
      { name: 'faq', match: { model: 'faq' }, cache: { semantic: true, ttl_s: 600 } },
    ],
    cache: { semantic: { embedding_model: 'embed' } },
    ...extra,
  };
}

async function start(extra?: Record<string, unknown>) {
  // Default process metrics off: many gateways in one test process.
  const gw = await startTestGateway(config(extra), { env: { CACHE_TEST_KEY: KEY }, metrics: createMetrics({ defaultMetrics: false }) });
  gateways.push(gw);
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0 });
  return { gw, client };
}

const chatCalls = () => mock.requests.filter((r) => r.path === '/v1/chat/completions').length;
const embedCalls = () => mock.requests.filter((r) => r.path === '/v1/embeddings').length;
let uniq = 0;
const question = (q = 'What is the capital of France?') => `${q} [${++uniq}]`;
type Msg = OpenAI.ChatCompletionMessageParam;
const det = (content: string, model = 'gpt-4o-mini') => ({ model, temperature: 0, messages: [{ role: 'user', content }] as Msg[] });

async function ask(client: OpenAI, body: OpenAI.ChatCompletionCreateParamsNonStreaming, header?: string) {
  const { data, response } = await client.chat.completions.create(body, header ? { headers: { 'x-switchyard-cache': header } } : undefined).withResponse();
  return { data, text: data.choices[0].message.content, usage: data.usage, cache: response.headers.get('x-switchyard-cache') };
}

async function askStream(client: OpenAI, body: OpenAI.ChatCompletionCreateParamsNonStreaming, header?: string) {
  const params = { ...body, stream: true, stream_options: { include_usage: true } } as OpenAI.ChatCompletionCreateParamsStreaming;
  const { data: stream, response } = await client.chat.completions.create(params, header ? { headers: { 'x-switchyard-cache': header } } : undefined).withResponse();
  let text = '';
  let usage: OpenAI.CompletionUsage | null | undefined;
  let finish: string | null = null;
  let firstTextAt = 0;
  for await (const chunk of stream) {
    const piece = chunk.choices[0]?.delta.content ?? '';
    if (piece && !firstTextAt) firstTextAt = Date.now();
    text += piece;
    finish = chunk.choices[0]?.finish_reason ?? finish;
    if (chunk.usage) usage = chunk.usage;
  }
  /** How long before the end the first text arrived: > 0 for a stream relayed live. */
  const lead = Date.now() - firstTextAt;
  return { text, usage, finish, lead, cache: response.headers.get('x-switchyard-cache') };
}

/** Sum of the samples of one metric on GET /metrics whose labels include `labels`. */
async function metric(gw: TestGateway, name: string, labels: Record<string, string> = {}): Promise<number> {
  const body = await (await fetch(`${gw.url}/metrics`)).text();
  let sum = 0;
  for (const line of body.split('\n')) {
    const m = /^([a-z_]+)(?:\{([^}]*)\})? ([\d.e+-]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/** The key's day budget once every reservation has been settled (settlement runs after the response). */
describe('the exact cache through the gateway', () => {
  it('answers a repeated deterministic request from the cache and says so in x-switchyard-cache', async () => {
    const { gw, client } = await start();
    const body = det(question());
    const first = await ask(client, body);
    const second = await ask(client, body);
    expect([first.cache, second.cache]).toEqual(['miss', 'hit']);
    expect(second.data).toEqual(first.data);
    expect(chatCalls()).toBe(1);
    expect(await metric(gw, 'switchyard_cache_requests_total', { layer: 'exact', result: 'miss' })).toBe(1);
    expect(await metric(gw, 'switchyard_cache_requests_total', { layer: 'exact', result: 'hit' })).toBe(1);
    expect(await metric(gw, 'switchyard_cache_saved_tokens_total')).toBe(first.usage!.total_tokens);
    const usd = (first.usage!.prompt_tokens * PRICE.input + first.usage!.completion_tokens * PRICE.output) / 1e6;
    expect(await metric(gw, 'switchyard_cache_saved_usd_total')).toBeCloseTo(usd, 12);
  });

  it('hits whatever the key order of the request, and misses when the temperature changes', async () => {
    const { client } = await start();
    const q = question();
    const a = await ask(client, { model: 'gpt-4o-mini', temperature: 0, messages: [{ role: 'user', content: q }] });
    // Same request, keys in another order at both levels.
    const reordered = { messages: [{ content: q, role: 'user' }], temperature: 0, model: 'gpt-4o-mini' } as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming;
    const b = await ask(client, reordered);
    const seeded = await ask(client, { model: 'gpt-4o-mini', temperature: 0.2, seed: 7, messages: [{ role: 'user', content: q }] });
    const sampled = await ask(client, { model: 'gpt-4o-mini', temperature: 0.7, messages: [{ role: 'user', content: q }] });
    const sampledAgain = await ask(client, { model: 'gpt-4o-mini', temperature: 0.7, messages: [{ role: 'user', content: q }] });
    expect([a.cache, b.cache, seeded.cache, sampled.cache, sampledAgain.cache]).toEqual(['miss', 'hit', 'miss', 'bypass', 'bypass']);
    expect(chatCalls()).toBe(4);
  });

  it('expires an entry after the route ttl_s', async () => {
    const { client } = await start();
    const body = det(question(), 'short-ttl');
    expect((await ask(client, body)).cache).toBe('miss');
    expect((await ask(client, body)).cache).toBe('hit');
    await new Promise((r) => setTimeout(r, 1100));
    expect((await ask(client, body)).cache).toBe('miss');
    expect(chatCalls()).toBe(2);
  });

  it('serves a hit, not a 500, after an upstream reported negative token counts', async () => {
    const { client } = await start();
    const body = { ...det(question('Count me wrong')), mock: { usage: { prompt_tokens: 5, completion_tokens: -10 } } } as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming;
    const first = await ask(client, body);
    expect(first.cache).toBe('miss');
    const second = await ask(client, body);
    expect(second.cache).toBe('hit');
    expect(second.text).toBe(first.text);
    expect(chatCalls()).toBe(1);
  });

  it('bypasses the cache for a body of more JSON values than it keys (canonicalising millions took seconds)', async () => {
    const { client } = await start();
    const body = { ...det(question('Many values')), x: new Array(MAX_KEY_VALUES + 1).fill(0) } as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming;
    expect((await ask(client, body)).cache).toBe('bypass');
    expect((await ask(client, body)).cache).toBe('bypass');
    expect(chatCalls()).toBe(2);
  });

  it('honours no-store, no-cache and force from the request header', async () => {
    const { gw, client } = await start();
    const body = det(question());
    expect((await ask(client, body, 'no-store')).cache).toBe('miss');
    expect((await ask(client, body)).cache).toBe('miss'); // no-store kept the first answer out; this one is stored
    expect((await ask(client, body, 'no-store')).cache).toBe('hit'); // no-store still reads
    // no-cache skips the lookup and refreshes the entry with the fresh answer.
    mock.enqueue({ text: 'A fresher answer' });
    const fresh = await ask(client, body, 'no-cache');
    expect([fresh.cache, fresh.text]).toEqual(['bypass', 'A fresher answer']);
    const after = await ask(client, body);
    expect([after.cache, after.text]).toEqual(['hit', 'A fresher answer']);
    // force caches a sampled request the default policy leaves alone.
    const sampled = { ...body, temperature: 0.9 };
    expect((await ask(client, sampled, 'force')).cache).toBe('miss');
    expect((await ask(client, sampled, 'force')).cache).toBe('hit');
    expect((await ask(client, sampled)).cache).toBe('bypass');
    expect(chatCalls()).toBe(5);
    expect(await metric(gw, 'switchyard_cache_requests_total', { layer: 'exact', result: 'bypass' })).toBe(2);
  });

  it('does not consume budget on a hit, unless cache.charge_hits is on', async () => {
    const free = await start();
    const body = det(question());
    await ask(free.client, body);
    const afterMiss = await settledSpend(free.gw);
    expect(afterMiss.spent_usd).toBeGreaterThan(0);
    for (let i = 0; i < 3; i++) expect((await ask(free.client, body)).cache).toBe('hit');
    expect((await askStream(free.client, body)).cache).toBe('hit');
    expect(await settledSpend(free.gw)).toEqual(afterMiss);

    const charged = await start({ cache: { charge_hits: true, semantic: { embedding_model: 'embed' } } });
    await ask(charged.client, body);
    const once = await settledSpend(charged.gw);
    expect((await ask(charged.client, body)).cache).toBe('hit');
    const twice = await settledSpend(charged.gw);
    expect(twice.tokens).toBe(once.tokens * 2);
    expect(twice.spent_usd).toBeCloseTo(once.spent_usd * 2, 6);
  });
});

describe('streams and the cache', () => {
  it('replays a streamed answer as a stream the SDK parses into the same text and usage', async () => {
    const { client } = await start();
    const body = det(question());
    const live = await askStream(client, body);
    const replay = await askStream(client, body);
    expect([live.cache, replay.cache]).toEqual(['miss', 'hit']);
    expect(live.text).toBe('tok '.repeat(5));
    expect(replay.text).toBe(live.text);
    expect(replay.finish).toBe('stop');
    expect(live.usage?.total_tokens).toBeGreaterThan(0);
    expect(replay.usage).toEqual(live.usage);
    expect(chatCalls()).toBe(1);
  });

  it("answers a hit with the model name the miss carried (the upstream's), streamed or not", async () => {
    const { client } = await start();
    // The alias 'faq' names the upstream model gpt-4o-mini, which the mock echoes.
    const body = det(question('Which model answers?'), 'faq');
    const miss = await ask(client, body);
    expect(miss.cache).toBe('miss');
    expect(miss.data.model).toBe('gpt-4o-mini');
    const hit = await ask(client, body);
    expect(hit.cache).toBe('hit');
    expect(hit.data.model).toBe('gpt-4o-mini');
    const params = { ...body, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming;
    const models = new Set<string>();
    for await (const chunk of await client.chat.completions.create(params)) models.add(chunk.model);
    expect([...models]).toEqual(['gpt-4o-mini']);
  });

  it('serves a stream request from an entry a non-stream request made, and the other way round', async () => {
    const { client } = await start();
    const a = det(question());
    const json = await ask(client, a);
    const replay = await askStream(client, a);
    expect(replay.cache).toBe('hit');
    expect(replay.text).toBe(json.text);
    expect(replay.usage).toEqual(json.usage);

    const b = det(question());
    const live = await askStream(client, b);
    const hit = await ask(client, b);
    expect([live.cache, hit.cache]).toEqual(['miss', 'hit']);
    expect(hit.text).toBe(live.text);
    expect(hit.usage).toEqual(live.usage);
    expect(hit.data.choices[0].finish_reason).toBe('stop');
    expect(chatCalls()).toBe(2);
  });

  it('never stores a cut-short stream, a stream without [DONE], an in-stream error or an upstream error', async () => {
    const { client } = await start();
    const body = det(question());
    mock.enqueue({ resetAfterChunks: 2 });
    await expect(askStream(client, body)).rejects.toThrow();
    mock.enqueue({ omitDone: true });
    await expect(askStream(client, body)).rejects.toThrow();
    mock.enqueue({ errorEventAfterChunks: 1 });
    await expect(askStream(client, body)).rejects.toThrow();
    mock.enqueue({ status: 500 });
    await expect(ask(client, body)).rejects.toMatchObject({ status: 500 });
    const ok = await askStream(client, body);
    expect(ok.cache).toBe('miss');
    expect((await askStream(client, body)).cache).toBe('hit');
    expect(chatCalls()).toBe(5);
  });
});

describe('coalescing', () => {
  it('makes exactly one upstream call for 20 concurrent identical requests, streams and non-streams alike', async () => {
    const { gw, client } = await start();
    const body = det(question());
    mock.enqueue({ latencyMs: 200, chunkDelayMs: 10 });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? askStream(client, body) : ask(client, body))));
    expect(chatCalls()).toBe(1);
    expect(results[0].text).toBeTruthy();
    for (const r of results) {
      expect(r.text).toBe(results[0].text);
      expect(r.usage).toEqual(results[0].usage);
    }
    expect(results.filter((r) => r.cache === 'miss')).toHaveLength(1);
    expect(results.filter((r) => r.cache === 'hit')).toHaveLength(19);
    expect(await metric(gw, 'switchyard_cache_coalesced_total')).toBe(19);
    // Followers cost nothing either: the budget holds one request's spend.
    const day = await settledSpend(gw);
    const u = results[0].usage!;
    expect(day.tokens).toBe(u.total_tokens);
  });

  it('relays the live stream of one upstream call to 10 concurrent identical stream requests', async () => {
    const { client } = await start();
    const body = det(question());
    mock.enqueue({ chunks: 8, chunkDelayMs: 15 });
    const results = await Promise.all(Array.from({ length: 10 }, () => askStream(client, body)));
    expect(chatCalls()).toBe(1);
    for (const r of results) {
      expect(r.text).toBe('tok '.repeat(8));
      expect(r.usage).toEqual(results[0].usage);
      expect(r.usage?.total_tokens).toBeGreaterThan(0);
      // Live: text arrived while the upstream was still generating (8 chunks, 15 ms apart), not all at the end.
      expect(r.lead).toBeGreaterThanOrEqual(60);
    }
    expect(results.filter((r) => r.cache === 'miss')).toHaveLength(1);
    expect(results.filter((r) => r.cache === 'hit')).toHaveLength(9);
  });
});

describe('the semantic cache on a route that opts in', () => {
  it('answers a paraphrase with semantic-hit and misses an unrelated prompt', async () => {
    const { gw, client } = await start();
    const system = `You answer geography questions. [${++uniq}]`;
    const faq = (content: string) => ({ model: 'faq', temperature: 0, messages: [{ role: 'system', content: system }, { role: 'user', content }] as Msg[] });
    // The embedding call reaches the mock first, then the chat completion.
    mock.enqueue({}, { text: 'Paris.' });
    const first = await ask(client, faq('What is the capital of France?'));
    const para = await ask(client, faq('Tell me the capital of France, please.'));
    const other = await ask(client, faq('How do I bake sourdough bread?'));
    expect([first.cache, para.cache, other.cache]).toEqual(['miss', 'semantic-hit', 'miss']);
    expect(para.text).toBe('Paris.');
    expect(other.text).not.toBe('Paris.');
    expect(chatCalls()).toBe(2);
    expect(embedCalls()).toBe(3);
    // A paraphrase answered from the cache is streamed too, and costs no budget.
    const spend = await settledSpend(gw);
    const streamed = await askStream(client, faq('capital of France?'));
    expect([streamed.cache, streamed.text]).toEqual(['semantic-hit', 'Paris.']);
    expect(await settledSpend(gw)).toEqual(spend);
    expect(await metric(gw, 'switchyard_cache_requests_total', { layer: 'semantic', result: 'hit' })).toBe(2);
    expect(await metric(gw, 'switchyard_cache_requests_total', { layer: 'semantic', result: 'miss' })).toBe(2);
  });

  it('keeps each key apart in both layers with cache.scope: key', async () => {
    const KEY_B = 'sk-cache-team-b-0123456789';
    const gw = await startTestGateway(
      config({
        keys: [{ id: 'team-a', key: '${CACHE_TEST_KEY}' }, { id: 'team-b', key: '${CACHE_TEST_KEY_B}' }],
        cache: { scope: 'key', semantic: { embedding_model: 'embed' } },
      }),
      { env: { CACHE_TEST_KEY: KEY, CACHE_TEST_KEY_B: KEY_B }, metrics: createMetrics({ defaultMetrics: false }) },
    );
    gateways.push(gw);
    const a = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0 });
    const b = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY_B, maxRetries: 0 });
    const system = `You answer geography questions. [${++uniq}]`;
    const faq = (content: string) => ({ model: 'faq', temperature: 0, messages: [{ role: 'system', content: system }, { role: 'user', content }] as Msg[] });
    mock.enqueue({}, { text: 'Paris.' });
    expect((await ask(a, faq('What is the capital of France?'))).cache).toBe('miss');
    // The other key: neither the same question (exact) nor a paraphrase (semantic) hits a's entry.
    const bSame = await ask(b, faq('What is the capital of France?'));
    const bPara = await ask(b, faq('Tell me the capital of France, please.'));
    expect([bSame.cache, bPara.cache]).toEqual(['miss', 'semantic-hit']); // b's paraphrase finds b's own answer
    expect(bSame.text).not.toBe('Paris.');
    expect(bPara.text).toBe(bSame.text);
    // The first key still gets its own entries.
    const aPara = await ask(a, faq('Tell me the capital of France, please.'));
    expect([aPara.cache, aPara.text]).toEqual(['semantic-hit', 'Paris.']);
    expect(chatCalls()).toBe(2);
  });

  it('leaves routes that did not opt in on the exact layer only', async () => {
    const { client } = await start();
    const system = `You answer geography questions. [${++uniq}]`;
    const plain = (content: string) => ({ model: 'gpt-4o-mini', temperature: 0, messages: [{ role: 'system', content: system }, { role: 'user', content }] as Msg[] });
    expect((await ask(client, plain('What is the capital of France?'))).cache).toBe('miss');
    expect((await ask(client, plain('Tell me the capital of France, please.'))).cache).toBe('miss');
    expect(embedCalls()).toBe(0);
    expect(chatCalls()).toBe(2);
  });
});

describe('the cache on a Redis that goes away', () => {
  it('still answers, as a miss, when Redis is down, cross-replica lock included', async () => {
    const redis = await startRedis();
    try {
      const { client } = await start({ store: { kind: 'redis', redis_url: redis.url, timeout_ms: 100 }, cache: { coalesce: { across_replicas: true }, semantic: { embedding_model: 'embed' } } });
      const stored = det(question());
      expect((await ask(client, stored)).cache).toBe('miss');
      expect((await ask(client, stored)).cache).toBe('hit');
      await redis.stop();
      // The in-process tier still holds what was stored; a new request goes upstream once for the herd.
      expect((await ask(client, stored)).cache).toBe('hit');
      const fresh = det(question());
      mock.enqueue({ latencyMs: 100 });
      const herd = await Promise.all(Array.from({ length: 5 }, () => ask(client, fresh)));
      expect(herd.map((r) => r.cache).sort()).toEqual(['hit', 'hit', 'hit', 'hit', 'miss']);
      expect(chatCalls()).toBe(2);
    } finally {
      await redis.close();
    }
  });
});
