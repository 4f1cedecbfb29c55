/**
 * Hot reload in process: gateway.reload(loaded) swaps the config atomically while
 * traffic flows. No request fails, each request runs on one config from start to end
 * (in-flight streams finish on the config they started with, even when the new one
 * points the backend elsewhere), and requests that start after a reload see it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildConfig } from '../gateway/config/load.js';
import { startMockUpstream, type MockUpstream } from './support/mock-upstream.js';
import { startTestGateway, type TestGateway } from './support/gateway.js';

const KEY = 'sk-team-a-0123456789';
const KEY_B = 'sk-team-b-0123456789';
const ENV = { KEY_A: KEY, KEY_B };

let one: MockUpstream;
let two: MockUpstream;
let gw: TestGateway;
let client: OpenAI;

/** Generation `gen` of the config: the alias `chat` is served by upstream model `gen-<gen>`. */
function configFor(gen: number, opts: { url?: string; keys?: Array<Record<string, unknown>> } = {}): Record<string, unknown> {
  return {
    server: { host: '127.0.0.1', port: 0 },
    cache: { exact: { enabled: false } },
    keys: opts.keys ?? [
      { id: 'team-a', key: '${KEY_A}' },
      { id: 'team-b', key: '${KEY_B}' },
    ],
    backends: { mock: { type: 'openai-compatible', base_url: opts.url ?? one.url, max_connections: 8 } },
    models: { chat: { backend: 'mock', model: `gen-${gen}` } },
  };
}
const reloadTo = (cfg: Record<string, unknown>) => gw.reload(buildConfig(cfg, ENV));

async function reloads(result: 'ok' | 'error'): Promise<number> {
  return (await gw.metrics.configReloads.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
}

beforeAll(async () => {
  one = await startMockUpstream({ defaults: { latencyMs: 5, chunks: 5, chunkDelayMs: 3 } });
  two = await startMockUpstream({ defaults: { latencyMs: 5, chunks: 5, chunkDelayMs: 3 } });
  gw = await startTestGateway(configFor(0), { env: ENV });
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0 });
});
afterAll(async () => {
  await gw?.close();
  await one?.close();
  await two?.close();
});

describe('hot reload in process', () => {
  it('serves 200 requests and more at concurrency 8 across five reloads without a failure, each on a config at least as new as when it started', async () => {
    one.reset();
    const start = gw.current().config.models.chat.model;
    const base = Number(start.slice('gen-'.length));
    let applied = base;
    const n = 200;
    const seen: Array<{ id: string; atStart: number; atEnd: number; stream: boolean; text: string }> = [];
    const failures: unknown[] = [];
    let next = 0;
    // Traffic runs until both n requests and the five reloads are done: on a loaded
    // machine the reloads may take longer than n requests do.
    let reloading = true;
    const worker = async () => {
      while (next < n || reloading) {
        const i = next++;
        const id = `reload-${i}`;
        const atStart = applied;
        const stream = i % 3 === 0;
        try {
          let text = '';
          if (stream) {
            const s = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: `q${i}` }], stream: true }, { headers: { 'x-request-id': id } });
            for await (const c of s) text += c.choices[0]?.delta?.content ?? '';
          } else {
            const r = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: `q${i}` }] }, { headers: { 'x-request-id': id } });
            text = r.choices[0].message.content ?? '';
          }
          seen.push({ id, atStart, atEnd: applied, stream, text });
        } catch (err) {
          failures.push(err);
        }
      }
    };
    const reloader = async () => {
      for (let g = base + 1; g <= base + 5; g++) {
        await new Promise((r) => setTimeout(r, 40));
        await reloadTo(configFor(g));
        applied = g;
      }
      reloading = false;
    };
    const ok0 = await reloads('ok');
    await Promise.all([reloader(), ...Array.from({ length: 8 }, worker)]);

    expect(failures).toEqual([]);
    expect(seen.length).toBeGreaterThanOrEqual(n);
    expect(seen).toHaveLength(next);
    expect(await reloads('ok')).toBe(ok0 + 5);
    const gens = new Set<number>();
    for (const s of seen) {
      expect(s.text).toBe(s.stream ? 'tok tok tok tok tok ' : 'Hello from mock');
      const up = one.requests.find((r) => r.headers['x-request-id'] === s.id);
      expect(up, s.id).toBeDefined();
      const gen = Number(String(up!.body?.model).slice('gen-'.length));
      gens.add(gen);
      expect(gen).toBeGreaterThanOrEqual(s.atStart);
      expect(gen).toBeLessThanOrEqual(s.atEnd + 1);
    }
    // The reloads really happened under traffic: requests ran on several generations.
    expect(gens.size).toBeGreaterThanOrEqual(3);
    const after = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'after' }] }, { headers: { 'x-request-id': 'after-all' } });
    expect(after.choices[0].message.content).toBe('Hello from mock');
    expect(one.requests.find((r) => r.headers['x-request-id'] === 'after-all')?.body?.model).toBe(`gen-${base + 5}`);
  });

  it('lets an in-flight stream finish on the old config while new requests go to the new backend', async () => {
    one.reset();
    two.reset();
    await reloadTo(configFor(100));
    const stream = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'long' }], stream: true, mock: { chunks: 8, chunkDelayMs: 40 } } as OpenAI.Chat.ChatCompletionCreateParamsStreaming);
    const it = stream[Symbol.asyncIterator]();
    let text = '';
    // Wait until the stream is really flowing, then move the backend to another upstream.
    while (!text) {
      const r = await it.next();
      expect(r.done).toBe(false);
      text += r.value.choices[0]?.delta?.content ?? '';
    }
    await reloadTo(configFor(101, { url: two.url }));
    const fresh = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'new' }] });
    expect(fresh.choices[0].message.content).toBe('Hello from mock');
    for (let r = await it.next(); !r.done; r = await it.next()) text += r.value.choices[0]?.delta?.content ?? '';

    expect(text).toBe('tok '.repeat(8));
    expect(one.requests.map((r) => r.body?.model)).toEqual(['gen-100']);
    expect(one.requests[0].abortedAt).toBeUndefined();
    expect(two.requests.map((r) => r.body?.model)).toEqual(['gen-101']);
  });

  it('applies changed keys to the next request', async () => {
    await reloadTo(configFor(200, { keys: [{ id: 'team-b', key: '${KEY_B}' }] }));
    const err = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    const b = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY_B, maxRetries: 0 });
    await expect(b.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] })).resolves.toBeTruthy();
    await reloadTo(configFor(201));
    await expect(client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] })).resolves.toBeTruthy();
  });

  it('refuses a reload that would turn authentication off (a file caught half-written has no keys)', async () => {
    await reloadTo(configFor(250));
    await expect(reloadTo(configFor(251, { keys: [] }))).rejects.toThrow(/turn authentication off/);
    const anonymous = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] }) });
    expect(anonymous.status).toBe(401);
    expect(gw.current().config.models.chat.model).toBe('gen-250');
  });

  it('says which changed sections wait for a restart', async () => {
    const from = gw.logs.length;
    await reloadTo({ ...configFor(260), logging: { level: 'warn' } });
    expect(gw.current().config.models.chat.model).toBe('gen-260');
    const warn = gw.logs.slice(from).find((l) => String(l.msg).includes('apply at the next restart'));
    expect(warn?.sections).toEqual(['logging']);
    await reloadTo(configFor(261));
    const from2 = gw.logs.length;
    await reloadTo({ ...configFor(262), cache: { coalesce: { across_replicas: true } } });
    const warn2 = gw.logs.slice(from2).find((l) => String(l.msg).includes('apply at the next restart'));
    expect(warn2?.sections).toEqual(['cache.coalesce.across_replicas']);
    await reloadTo(configFor(263));
  });

  it('keeps serving the old config when the new one fails to build', async () => {
    await reloadTo(configFor(300));
    const bad = buildConfig(
      { ...configFor(301), routes: [{ name: 'bad', match: { model: 'chat' }, filters: { deny: { patterns: ['(unclosed'] } } }] },
      ENV,
    );
    await expect(gw.reload(bad)).rejects.toThrow(/invalid regular expression/);
    one.reset();
    await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] });
    expect(one.requests[0].body?.model).toBe('gen-300');
  });

  it('leaves nothing running from a config that failed to build (no health probes from it)', async () => {
    const cfg = configFor(400);
    const backends = cfg.backends as Record<string, Record<string, unknown>>;
    backends.mock = { ...backends.mock, health: { active_check_ms: 30 } };
    const bad = buildConfig({ ...cfg, routes: [{ name: 'bad', match: { model: 'chat' }, filters: { deny: { patterns: ['[z-a]'] } } }] }, ENV);
    one.reset();
    await expect(gw.reload(bad)).rejects.toThrow(/invalid regular expression/);
    await new Promise((r) => setTimeout(r, 200));
    expect(one.requests.filter((r) => r.path.endsWith('/models'))).toEqual([]);
    expect(gw.current().config.models.chat.model).toBe('gen-300');
  });
});

describe('admission across a reload', () => {
  it('keeps max_concurrent when a reload changes the admission settings (in flight and queued stay counted)', async () => {
    let current = 0;
    let peak = 0;
    const up = createServer((req, res) => {
      current++;
      peak = Math.max(peak, current);
      req.resume();
      setTimeout(() => {
        current--;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: 'x', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }));
      }, 400);
    });
    await new Promise<void>((r) => up.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(up.address() as AddressInfo).port}`;
    const cfg = (queueTimeoutMs: number) => ({
      server: { host: '127.0.0.1', port: 0 },
      backends: { b: { type: 'openai-compatible', base_url: url, admission: { max_concurrent: 2, max_queue: 100, queue_timeout_ms: queueTimeoutMs } } },
      models: { m: { backend: 'b', model: 'm' } },
    });
    const g = await startTestGateway(cfg(30_000));
    try {
      const ask = () => fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x' }] }) }).then((r) => r.status);
      const first = Array.from({ length: 4 }, ask);
      await new Promise((r) => setTimeout(r, 100));
      await g.reload(buildConfig(cfg(20_000), {}));
      const second = Array.from({ length: 4 }, ask);
      expect(await Promise.all([...first, ...second])).toEqual(Array(8).fill(200));
      expect(peak).toBe(2);
    } finally {
      await g.close();
      await new Promise((r) => up.close(r));
    }
  });
});
