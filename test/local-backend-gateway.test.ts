/**
 * The gateway routes an alias to the in-process llama.cpp backend and another alias to
 * the standalone local-backend server (as `openai-compatible`), through the openai SDK.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { startLocalServer, type LocalServer } from '../local-backend/server.js';
import { startTestGateway, type TestGateway } from './support/gateway.js';

let server: LocalServer;
let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  server = await startLocalServer({
    host: '127.0.0.1',
    port: 0,
    model: { modelId: 'tiny', gpuLayers: 'auto', gpu: false, contextSize: 1024, threads: 1, parallel: 2, flashAttention: false, queueSize: 8, embedding: true },
  });
  gw = await startTestGateway({
    server: { host: '127.0.0.1', port: 0 },
    backends: {
      inproc: { type: 'llama-cpp', context_size: 1024, threads: 1, parallel: 2 },
      standalone: { type: 'openai-compatible', base_url: `${server.url}/v1` },
    },
    models: {
      local: { backend: 'inproc', model: 'demo' },
      'local-embed': { backend: 'inproc', model: 'demo' },
      remote: { backend: 'standalone', model: 'tiny' },
    },
  });
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
}, 60000);

afterAll(async () => {
  await gw?.close();
  await server?.close();
});

describe('local models behind the gateway', () => {
  it('serves the same greedy answer in-process and from the standalone server', async () => {
    const ask = (model: string) =>
      client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 12, temperature: 0, seed: 7 });
    const [a, b] = await Promise.all([ask('local'), ask('remote')]);
    expect(a.choices[0].message.content!.length).toBeGreaterThan(0);
    expect(a.choices[0].message.content).toBe(b.choices[0].message.content);
    expect(a.usage?.completion_tokens).toBe(12);
    expect(a.choices[0].finish_reason).toBe('length');
  });

  it('streams from the in-process model with usage counted by the gateway', async () => {
    const stream = await client.chat.completions.create({ model: 'local', messages: [{ role: 'user', content: 'Stream please' }], max_tokens: 8, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text.length).toBeGreaterThan(0);
    await expect.poll(() => gw.logs.find((l) => l.msg === 'request' && l.model === 'local' && l.stream === true)).toBeTruthy();
    const line = gw.logs.find((l) => l.msg === 'request' && l.model === 'local' && l.stream === true)!;
    expect(line.completion_tokens).toBe(8);
    expect(line.usage_estimated).toBeUndefined();
  });

  it('embeds through the in-process model', async () => {
    const e = await client.embeddings.create({ model: 'local-embed', input: 'vector me' });
    expect(e.data[0].embedding.length).toBe(64);
  });
});
