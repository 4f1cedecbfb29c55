/**
 * checkCache wired as the lead will wire it (parse → authenticate → resolveRoute →
 * checkCache → dispatch), on a real server against the mock upstream, driven by the
 * openai SDK. Until app.ts builds the cache parts, this file assembles the same chain.
 */
import OpenAI from 'openai';
import pino from 'pino';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildConfig } from '../gateway/config/load.js';
import { createMetrics, type Metrics } from '../gateway/metrics.js';
import type { GatewayDeps } from '../gateway/pipeline/deps.js';
import type { RequestContext } from '../gateway/pipeline/context.js';
import { runPipeline, type Pipeline } from '../gateway/pipeline/pipeline.js';
import { createParseRequestStage } from '../gateway/pipeline/stages/parse-request.js';
import { createAuthenticateStage } from '../gateway/pipeline/stages/authenticate.js';
import { createResolveRouteStage } from '../gateway/pipeline/stages/resolve-route.js';
import { createDispatchStage } from '../gateway/pipeline/stages/dispatch.js';
import { createCheckCacheStage } from '../gateway/pipeline/stages/check-cache.js';
import { createCacheParts, type CacheParts, type EmbedFn } from '../gateway/cache/parts.js';
import { cacheHitKind, isFreeCacheHit } from '../gateway/cache/locals.js';
import { createBackendClient, createTranslator } from '../gateway/providers/registry.js';
import { createHttpServer } from '../gateway/server/create-server.js';
import type { HttpServer } from '../gateway/server/types.js';
import { createMemoryStores } from '../gateway/stores/memory/create-memory-stores.js';
import type { Endpoint } from '../gateway/providers/types.js';
import { startMockUpstream, type MockUpstream } from './support/mock-upstream.js';
import { startRedis, type TestRedis } from './support/redis.js';
import { bagOfWordsEmbedding } from './support/bow-embedding.js';

interface Seen {
  header?: string;
  free: boolean;
  kind?: string;
  usage?: RequestContext['usage'];
}

interface CacheGateway {
  url: string;
  metrics: Metrics;
  parts: CacheParts;
  seen: Seen[];
  close(): Promise<void>;
}

const ENDPOINTS: Record<string, Endpoint> = { '/v1/chat/completions': 'chat', '/v1/completions': 'completions' };

async function startCacheGateway(raw: Record<string, unknown>, opts: { redis?: Redis; embed?: EmbedFn; lock?: boolean } = {}): Promise<CacheGateway> {
  const loaded = buildConfig(raw, {});
  const logger = pino({ level: 'silent' });
  const metrics = createMetrics({ defaultMetrics: false });
  const backends = new Map();
  const translators = new Map();
  for (const [name, cfg] of Object.entries(loaded.config.backends)) {
    translators.set(name, await createTranslator(cfg));
    backends.set(name, await createBackendClient(name, cfg, { logger, registry: metrics.registry }));
  }
  // The slice of GatewayDeps this chain uses (no routes: no router, prices; no breakers or admission limits configured).
  const deps = { loaded, config: loaded.config, metrics, logger, stores: createMemoryStores(), backends, translators, breakers: new Map(), admissions: new Map() } as unknown as GatewayDeps;
  const parts = createCacheParts({ cache: loaded.config.cache, metrics, embed: opts.embed, semanticSyncMs: 0, lockAcrossReplicas: opts.lock, redis: opts.redis ? { client: opts.redis, keyPrefix: 'e2e:' } : undefined });
  const seen: Seen[] = [];
  const pipeline: Pipeline = {
    stages: [createParseRequestStage(), createAuthenticateStage(deps), createResolveRouteStage(deps), createCheckCacheStage(deps, parts), createDispatchStage(deps)],
    finalizers: [(ctx) => void seen.push({ header: ctx.responseHeaders['x-switchyard-cache'], free: isFreeCacheHit(ctx), kind: cacheHitKind(ctx), usage: ctx.usage })],
  };
  const server: HttpServer = createHttpServer(
    'auto',
    { host: '127.0.0.1', port: 0, maxBodyBytes: 1 << 20, onBodyError: (_q, res) => res.send(413, {}, '') },
    (req, res, body) => {
      const ac = new AbortController();
      const ctx: RequestContext = {
        id: `r${seen.length}`, startNs: process.hrtime.bigint(), req, res, rawBody: body, config: loaded.config, abort: ac,
        endpoint: ENDPOINTS[req.path] ?? 'chat', body: undefined as unknown as Record<string, unknown>, bodyChanged: false,
        modelAlias: undefined as unknown as string, stream: false, clientWantsUsage: false, candidates: [], responseHeaders: {},
        status: 0, upstreamNs: 0n, onEnd: [], locals: {},
      };
      res.onAborted(() => ac.abort());
      void runPipeline(pipeline, ctx, logger);
    },
    logger,
  );
  const port = await server.listen();
  return {
    url: `http://127.0.0.1:${port}`,
    metrics,
    parts,
    seen,
    async close() {
      server.close();
      await parts.close();
      await Promise.allSettled([...backends.values()].map((b) => b.close()));
    },
  };
}

let mock: MockUpstream;
let redis: TestRedis;
const closers: Array<() => Promise<unknown> | void> = [];
beforeAll(async () => {
  mock = await startMockUpstream();
  redis = await startRedis();
});
afterAll(async () => {
  for (const c of closers.reverse()) await c();
  await mock?.close();
  await redis?.close();
});
beforeEach(() => mock.reset());

const config = (extra: Record<string, unknown> = {}) => ({
  server: { host: '127.0.0.1', port: 0 },
  backends: { mock: { type: 'openai-compatible', base_url: mock.url, api_key: '${MOCK_KEY:-sk-up}', timeout_ms: 5000 } },
  models: { 'gpt-4o-mini': { backend: 'mock', model: 'gpt-4o-mini', price: { input: 0.15, output: 0.6 } }, 'mini-alias': { backend: 'mock', model: 'gpt-4o-mini' } },
  ...extra,
});
const upstreamCalls = (path = '/v1/chat/completions') => mock.requests.filter((r) => r.path === path).length;
let uniq = 0;
const question = (q = 'What is the capital of France?') => `${q} [${++uniq}]`;
async function start(extra?: Record<string, unknown>, opts?: Parameters<typeof startCacheGateway>[1]) {
  const gw = await startCacheGateway(config(extra), opts);
  closers.push(() => gw.close());
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client', maxRetries: 0 });
  return { gw, client };
}
async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, cache: res.headers.get('x-switchyard-cache'), text: await res.text() };
}
async function streamText(client: OpenAI, body: Record<string, unknown>) {
  const { data: stream, response } = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } } as OpenAI.ChatCompletionCreateParamsStreaming).withResponse();
  let text = '';
  let usage: OpenAI.CompletionUsage | null | undefined;
  let firstTextAt = 0;
  for await (const chunk of stream) {
    const piece = chunk.choices[0]?.delta.content ?? '';
    if (piece && !firstTextAt) firstTextAt = Date.now();
    text += piece;
    if (chunk.usage) usage = chunk.usage;
  }
  /** How long before the end the first text arrived: > 0 for a stream relayed live. */
  const lead = Date.now() - firstTextAt;
  return { text, usage, cache: response.headers.get('x-switchyard-cache'), lead };
}
const metric = async (m: Metrics, name: keyof Metrics, labels: Record<string, string> = {}) => {
  const g = await (m[name] as { get(): Promise<{ values: Array<{ value: number; labels: Record<string, unknown> }> }> }).get();
  return g.values.filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((s, v) => s + v.value, 0);
};

describe('the response cache in the request path', () => {
  it('answers a repeated deterministic request from the cache, whatever the key order, without charging it', async () => {
    const { gw } = await start();
    const q = question();
    const first = await post(gw.url, { model: 'gpt-4o-mini', temperature: 0, messages: [{ role: 'user', content: q }] });
    const second = await post(gw.url, `{"messages":[{"content":${JSON.stringify(q)},"role":"user"}],"temperature":0,"model":"gpt-4o-mini"}`);
    expect([first.status, second.status]).toEqual([200, 200]);
    expect([first.cache, second.cache]).toEqual(['miss', 'hit']);
    expect(JSON.parse(second.text)).toEqual(JSON.parse(first.text));
    expect(upstreamCalls()).toBe(1);
    expect(gw.seen.map((s) => s.free)).toEqual([false, true]);
    expect(gw.seen[1].usage).toEqual(gw.seen[0].usage);
    expect(await metric(gw.metrics, 'cacheRequests', { layer: 'exact', result: 'hit' })).toBe(1);
    expect(await metric(gw.metrics, 'cacheSavedTokens')).toBe(gw.seen[0].usage!.total_tokens);
    expect(await metric(gw.metrics, 'cacheSavedUsd')).toBeGreaterThan(0);
  });

  it('misses when the temperature changes, and bypasses a non-deterministic request', async () => {
    const { gw } = await start();
    const q = question();
    await post(gw.url, { model: 'gpt-4o-mini', temperature: 0, messages: [{ role: 'user', content: q }] });
    const warmer = await post(gw.url, { model: 'gpt-4o-mini', temperature: 0.7, messages: [{ role: 'user', content: q }] });
    const again = await post(gw.url, { model: 'gpt-4o-mini', temperature: 0.7, messages: [{ role: 'user', content: q }] });
    expect([warmer.cache, again.cache]).toEqual(['bypass', 'bypass']);
    expect(upstreamCalls()).toBe(3);
  });

  it('serves a stream request from an entry a non-stream request made, and the other way round', async () => {
    const { client } = await start();
    const a = { model: 'gpt-4o-mini', temperature: 0, messages: [{ role: 'user' as const, content: question() }] };
    const json = await client.chat.completions.create(a);
    const replay = await streamText(client, a);
    expect(replay.cache).toBe('hit');
    expect(replay.text).toBe(json.choices[0].message.content);
    expect(replay.usage).toEqual(json.usage);

    const b = { ...a, messages: [{ role: 'user' as const, content: question() }] };
    const live = await streamText(client, b);
    expect(live.cache).toBe('miss');
    const { data, response } = await client.chat.completions.create(b).withResponse();
    expect(response.headers.get('x-switchyard-cache')).toBe('hit');
    expect(data.choices[0].message.content).toBe(live.text);
    expect(data.usage).toEqual(live.usage);
    expect(upstreamCalls()).toBe(2);
  });

  it('honours no-store and no-cache from the request header', async () => {
    const { gw } = await start();
    const body = { model: 'gpt-4o-mini', temperature: 0, messages: [{ role: 'user', content: question() }] };
    expect((await post(gw.url, body, { 'x-switchyard-cache': 'no-store' })).cache).toBe('miss');
    expect((await post(gw.url, body)).cache).toBe('miss'); // no-store kept it out
    expect((await post(gw.url, body, { 'x-switchyard-cache': 'no-store' })).cache).toBe('hit');
    expect((await post(gw.url, body, { 'x-switchyard-cache': 'no-cache' })).cache).toBe('bypass');
    expect(upstreamCalls()).toBe(3);
  });

  it('never stores a cut-short stream or an upstream error', async () => {
    const { client, gw } = await start();
    const body = { model: 'gpt-4o-mini', temperature: 0, messages: [{ role: 'user' as const, content: question() }] };
    mock.enqueue({ resetAfterChunks: 2 });
    await streamText(client, body).catch(() => undefined);
    mock.enqueue({ status: 500 });
    expect((await post(gw.url, body)).status).toBe(500);
    const ok = await streamText(client, body);
    expect(ok.cache).toBe('miss');
    expect((await streamText(client, body)).cache).toBe('hit');
    expect(upstreamCalls()).toBe(3);
  });

  it('makes one upstream call for 20 concurrent identical requests, streams and non-streams alike', async () => {
    const { client, gw } = await start();
    const body = { model: 'gpt-4o-mini', temperature: 0, messages: [{ role: 'user' as const, content: question() }] };
    mock.defaults.latencyMs = 150;
    mock.defaults.chunkDelayMs = 10;
    try {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? streamText(client, body) : client.chat.completions.create(body).then((r) => ({ text: r.choices[0].message.content, usage: r.usage, cache: null })))));
      expect(upstreamCalls()).toBe(1);
      for (const r of results) expect(r.text).toBe(results[0].text);
      expect(results[0].text).toBeTruthy();
      const kinds = gw.seen.map((s) => s.kind ?? 'miss');
      expect(kinds.filter((k) => k === 'miss')).toHaveLength(1);
      expect(kinds.filter((k) => k === 'coalesced')).toHaveLength(19);
      expect(await metric(gw.metrics, 'cacheCoalesced')).toBe(19);
    } finally {
      mock.defaults.latencyMs = 0;
      mock.defaults.chunkDelayMs = 0;
    }
  });

  it('relays the live stream of one upstream call to 10 concurrent identical stream requests', async () => {
    const { client, gw } = await start();
    const body = { model: 'gpt-4o-mini', temperature: 0, messages: [{ role: 'user' as const, content: question() }] };
    mock.defaults.chunks = 8;
    mock.defaults.chunkDelayMs = 15;
    try {
      const results = await Promise.all(Array.from({ length: 10 }, () => streamText(client, body)));
      expect(upstreamCalls()).toBe(1);
      for (const r of results) {
        expect(r.text).toBe('tok '.repeat(8));
        expect(r.usage).toEqual(results[0].usage);
        expect(r.usage?.total_tokens).toBeGreaterThan(0);
        // Live: text arrived while the upstream was still generating (8 chunks, 15 ms apart), not all at the end.
        expect(r.lead).toBeGreaterThanOrEqual(60);
      }
      expect(results.filter((r) => r.cache === 'miss')).toHaveLength(1);
      expect(results.filter((r) => r.cache === 'hit')).toHaveLength(9);
      expect(gw.seen.filter((s) => s.kind === 'coalesced' && s.free)).toHaveLength(9);
    } finally {
      mock.defaults.chunks = 5;
      mock.defaults.chunkDelayMs = 0;
    }
  });

  it('serves a hit made by one gateway from a second one sharing the Redis', async () => {
    const r1 = new Redis(redis.url);
    const r2 = new Redis(redis.url);
    closers.push(() => r1.disconnect(), () => r2.disconnect());
    const one = await start({ store: { kind: 'redis', redis_url: redis.url } }, { redis: r1 });
    const two = await start({ store: { kind: 'redis', redis_url: redis.url } }, { redis: r2 });
    const body = { model: 'gpt-4o-mini', temperature: 0, messages: [{ role: 'user' as const, content: question() }] };
    const made = await one.client.chat.completions.create(body);
    const replay = await streamText(two.client, body);
    expect(replay.cache).toBe('hit');
    expect(replay.text).toBe(made.choices[0].message.content);
    expect(upstreamCalls()).toBe(1);
  });

  it('makes one upstream call for concurrent identical requests spread over two gateways, with the cross-replica lock', async () => {
    const r1 = new Redis(redis.url);
    const r2 = new Redis(redis.url);
    closers.push(() => r1.disconnect(), () => r2.disconnect());
    const one = await start({ store: { kind: 'redis', redis_url: redis.url } }, { redis: r1, lock: true });
    const two = await start({ store: { kind: 'redis', redis_url: redis.url } }, { redis: r2, lock: true });
    const body = { model: 'gpt-4o-mini', temperature: 0, messages: [{ role: 'user' as const, content: question() }] };
    mock.defaults.latencyMs = 150;
    try {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? one : two).client.chat.completions.create(body).then((r) => r.choices[0].message.content)),
      );
      expect(upstreamCalls()).toBe(1);
      expect(new Set(results).size).toBe(1);
      expect([...one.gw.seen, ...two.gw.seen].filter((s) => s.kind === 'coalesced')).toHaveLength(19);
    } finally {
      mock.defaults.latencyMs = 0;
    }
  });

  it('answers a paraphrase from the semantic cache, and not an unrelated prompt', async () => {
    const embed = async (text: string) => bagOfWordsEmbedding(text);
    // Turned on globally here: the per-route switch (routes[].cache.semantic) is covered by the policy tests,
    // and ctx.route is set by the routing stage, which this minimal chain does not include.
    const { gw } = await start({ cache: { semantic: { enabled: true, threshold: 0.9 } } }, { embed });
    const ask = (content: string) => post(gw.url, { model: 'gpt-4o-mini', temperature: 0, messages: [{ role: 'system', content: `faq ${uniq}` }, { role: 'user', content }] });
    ++uniq;
    expect((await ask('What is the capital of France?')).cache).toBe('miss');
    const para = await ask('Tell me the capital of France, please.');
    expect(para.cache).toBe('semantic-hit');
    expect((await ask('How do I bake sourdough bread?')).cache).toBe('miss');
    expect(upstreamCalls()).toBe(2);
    expect(gw.seen[1]).toMatchObject({ kind: 'semantic', free: true });
    expect(await metric(gw.metrics, 'cacheRequests', { layer: 'semantic', result: 'hit' })).toBe(1);
  });
});
