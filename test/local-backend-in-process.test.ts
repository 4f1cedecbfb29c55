/**
 * The in-process local backend as the gateway uses it: a BackendClient created from a
 * `type: llama-cpp` backend config, called with upstream requests relative to `/v1`.
 * It speaks the same bytes as the standalone server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { createLlamaCppBackendClient, type LlamaCppBackendClient } from '../local-backend/in-process-client.js';
import type { LocalServer } from '../local-backend/server.js';
import type { UpstreamResponse } from '../gateway/upstream/types.js';
import { cancellationFromSignal } from '../gateway/upstream/cancellation.js';
import { startTinyLocalServer, tinyLlamaBackend } from './support/tiny-model.js';

const messages = [{ role: 'user', content: 'Tell me a story.' }];

async function readAll(res: UpstreamResponse): Promise<string> {
  let text = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body) text += decoder.decode(chunk, { stream: true });
  return text;
}

function post(client: LlamaCppBackendClient, path: string, body: unknown, signal = new AbortController().signal) {
  return client.request({ method: 'POST', path, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }, { cancel: cancellationFromSignal(signal) });
}

async function until(check: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('the in-process llama-cpp backend client', () => {
  const registry = new Registry();
  let client: LlamaCppBackendClient;
  let single: LlamaCppBackendClient;
  let server: LocalServer;

  beforeAll(async () => {
    client = createLlamaCppBackendClient('local', tinyLlamaBackend({ parallel: 2 }), { registry, overrides: { gpu: false } });
    single = createLlamaCppBackendClient('local-single', tinyLlamaBackend({ parallel: 1 }), { registry, overrides: { gpu: false } });
    await client.warmUp();
    server = await startTinyLocalServer({ parallel: 1 });
  });
  afterAll(async () => {
    await client?.close();
    await single?.close();
    await server?.close();
  });

  it('answers a chat completion with the same text as the standalone server', async () => {
    const body = { model: 'local', messages, max_tokens: 20, temperature: 0 };
    const res = await post(client, '/chat/completions', body);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    const local = JSON.parse(await readAll(res));
    const remote = await (await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(body) })).json();
    expect(local.choices[0].message.content).toHaveLength(20);
    expect(local.choices[0].message.content).toBe(remote.choices[0].message.content);
    expect(local.usage).toEqual(remote.usage);
  });

  it('streams SSE chunks ending with a usage chunk and [DONE]', async () => {
    const res = await post(client, '/chat/completions', { model: 'local', messages, max_tokens: 8, temperature: 0, stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream');
    const events = (await readAll(res)).split('\n\n').filter(Boolean);
    expect(events.at(-1)).toBe('data: [DONE]');
    const usage = JSON.parse(events.at(-2)!.slice('data: '.length));
    expect(usage).toMatchObject({ object: 'chat.completion.chunk', choices: [], usage: { completion_tokens: 8 } });
  });

  it('serves embeddings and the model list', async () => {
    const emb = JSON.parse(await readAll(await post(client, '/embeddings', { model: 'local-embed', input: 'hi' })));
    expect(emb.data[0].embedding).toHaveLength(64);
    const models = await client.request({ method: 'GET', path: '/models', headers: {} }, { cancel: cancellationFromSignal(new AbortController().signal) });
    expect(JSON.parse(await readAll(models)).data[0].id).toBe('switchyard-tiny-llama');
  });

  it('answers bad input with OpenAI-shaped errors', async () => {
    const bad = await client.request({ method: 'POST', path: '/chat/completions', headers: {}, body: '{nope' }, { cancel: cancellationFromSignal(new AbortController().signal) });
    expect(bad.status).toBe(400);
    expect(JSON.parse(await readAll(bad)).error.code).toBe('invalid_json');
    const unknown = await post(client, '/nope', {});
    expect(unknown.status).toBe(404);
    await unknown.dump();
  });

  it('frees the sequence at once when the gateway dumps a stream or the client aborts', async () => {
    const endless = { model: 'local', messages, max_tokens: 100_000, temperature: 0, stream: true };
    const dumped = await post(single, '/chat/completions', endless);
    await dumped.body[Symbol.asyncIterator]().next();
    expect(single.engine.stats().busy).toBe(1);
    await dumped.dump();
    await until(() => single.engine.stats().busy === 0);

    const ac = new AbortController();
    const aborted = await post(single, '/chat/completions', endless, ac.signal);
    await aborted.body[Symbol.asyncIterator]().next();
    ac.abort();
    await until(() => single.engine.stats().busy === 0);
    const next = JSON.parse(await readAll(await post(single, '/chat/completions', { messages, max_tokens: 3, temperature: 0 })));
    expect(next.choices[0].finish_reason).toBe('length');
  });

  it('answers 503 backend_unavailable when the model file cannot be loaded', async () => {
    const broken = createLlamaCppBackendClient('broken', tinyLlamaBackend({ model_path: '/nonexistent/model.gguf' }), { overrides: { gpu: false } });
    const res = await post(broken, '/chat/completions', { messages, max_tokens: 3 });
    expect(res.status).toBe(503);
    expect(JSON.parse(await readAll(res)).error).toMatchObject({ code: 'backend_unavailable', type: 'server_error' });
    // Warming up logs the failure and resolves: one broken model must not stop a gateway's start-up.
    await expect(broken.warmUp()).resolves.toBeUndefined();
    expect((await post(broken, '/chat/completions', { messages, max_tokens: 3 })).status).toBe(503);
    await broken.close();
  });

  it('records its metrics in the registry it was given, labelled with the backend name', async () => {
    const text = await registry.metrics();
    expect(text).toMatch(/switchyard_local_tokens_generated_total\{backend="local"\} [1-9]/);
    expect(text).toContain('switchyard_local_busy_sequences{backend="local-single"} 0');
  });
});
