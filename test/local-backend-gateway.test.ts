/**
 * The gateway routes aliases to local models both ways: `local` to the in-process
 * llama-cpp backend and `local-remote` to the standalone server as openai-compatible.
 * Same model, same greedy prompt: the same answer either way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import type { LocalServer } from '../local-backend/server.js';
import { startTestGateway, type TestGateway } from './support/gateway.js';
import { buildConfig } from '../gateway/config/load.js';
import type { LlamaCppBackendClient } from '../local-backend/in-process-client.js';
import { startTinyLocalServer } from './support/tiny-model.js';
import { startMockUpstream } from './support/mock-upstream.js';

describe('the gateway with local models', () => {
  let server: LocalServer;
  let gw: TestGateway;
  let client: OpenAI;

  beforeAll(async () => {
    server = await startTinyLocalServer({ parallel: 2 });
    gw = await startTestGateway({
      server: { host: '127.0.0.1', port: 0 },
      backends: {
        inproc: { type: 'llama-cpp', context_size: 512, threads: 1, parallel: 2 },
        standalone: { type: 'openai-compatible', base_url: `${server.url}/v1` },
      },
      models: {
        local: { backend: 'inproc', model: 'demo', price: { input: 0, output: 0 } },
        'local-embed': { backend: 'inproc', model: 'demo', price: { input: 0, output: 0 } },
        'local-remote': { backend: 'standalone', model: 'demo', price: { input: 0, output: 0 } },
      },
    }, { server: 'node' });
    client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await gw?.close();
    await server?.close();
  });

  it('answers the same greedy prompt identically in-process and through the standalone server', async () => {
    const ask = (model: string) => client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 12, temperature: 0 });
    const [inproc, remote] = [await ask('local'), await ask('local-remote')];
    expect(inproc.choices[0]!.message.content).toHaveLength(12);
    expect(remote.choices[0]!.message.content).toBe(inproc.choices[0]!.message.content);
    expect(remote.usage).toMatchObject({ prompt_tokens: inproc.usage!.prompt_tokens, completion_tokens: 12 });
  });

  it('streams from the in-process model with a final usage chunk', async () => {
    const stream = await client.chat.completions.create({ model: 'local', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 6, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toHaveLength(6);
    expect(usage).toMatchObject({ completion_tokens: 6 });
  });

  it('serves embeddings from the in-process model', async () => {
    const res = await client.embeddings.create({ model: 'local-embed', input: 'hello' });
    expect(res.data[0]!.embedding).toHaveLength(64);
  });
});

describe('a local model across config reloads', () => {
  it('keeps the loaded model when its settings did not change, and loads a changed one before the swap', async () => {
    const config = (keyId: string, contextSize: number) => ({
      server: { host: '127.0.0.1', port: 0 },
      keys: [{ id: keyId, key: '${LOCAL_RELOAD_KEY}' }],
      backends: { inproc: { type: 'llama-cpp', context_size: contextSize, threads: 1, parallel: 2 } },
      models: { local: { backend: 'inproc', model: 'demo', price: { input: 0, output: 0 } } },
    });
    const env = { LOCAL_RELOAD_KEY: 'sk-local-reload-0123456789' };
    const gw = await startTestGateway(config('a', 512), { server: 'node', env });
    try {
      const engine = () => (gw.current().backends.get('inproc') as LlamaCppBackendClient).engine;
      const first = engine();
      expect(first.stats().loaded).toBe(true);
      await gw.reload(buildConfig(config('b', 512), env));
      expect(engine()).toBe(first);
      const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: env.LOCAL_RELOAD_KEY, maxRetries: 0 });
      const r = await client.chat.completions.create({ model: 'local', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 4, temperature: 0 });
      expect(r.choices[0]!.finish_reason).toBe('length');
      // A changed context size is another engine, loaded before the reload returns; the old one is closed.
      await gw.reload(buildConfig(config('b', 768), env));
      expect(engine()).not.toBe(first);
      expect(engine().stats().loaded).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(first.stats().loaded).toBe(false);
    } finally {
      await gw.close();
    }
  });
});

describe('a local model file that cannot be loaded', () => {
  it('leaves the gateway up: the other aliases answer, its own answer 503, and the log names the file', async () => {
    const mock = await startMockUpstream();
    const gw = await startTestGateway({
      server: { host: '127.0.0.1', port: 0 },
      backends: {
        missing: { type: 'llama-cpp', model_path: '/nonexistent/model.gguf', context_size: 512, threads: 1 },
        mock: { type: 'openai-compatible', base_url: mock.url },
      },
      models: { broken: { backend: 'missing', model: 'broken' }, cloud: { backend: 'mock', model: 'gpt-4o-mini' } },
    });
    try {
      expect((await fetch(`${gw.url}/ready`)).status).toBe(200);
      const ask = (model: string) => fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }) });
      expect((await ask('cloud')).status).toBe(200);
      const broken = await ask('broken');
      expect(broken.status).toBe(503);
      expect(((await broken.json()) as { error: { type: string } }).error.type).toBe('server_error');
      const line = gw.logs.find((l) => String(l.msg).includes('local model could not be loaded'));
      expect(line).toMatchObject({ backend: 'missing', model_path: '/nonexistent/model.gguf' });
    } finally {
      await gw.close();
      await mock.close();
    }
  });
});
