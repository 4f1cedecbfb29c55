/**
 * The core gateway as users use it: the official openai SDK pointed at Switchyard,
 * a mock OpenAI-compatible upstream behind it. The whole suite runs against both
 * server implementations (uWebSockets.js and the node:http fallback).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { startMockUpstream, type MockUpstream } from './support/mock-upstream.js';
import { mockConfig, startTestGateway, type TestGateway } from './support/gateway.js';

const KEY = 'sk-team-a-0123456789';
const KEY_B = 'sk-team-b-0123456789';

describe.each(['uws', 'node'] as const)('the gateway on %s', (serverKind) => {
  let mock: MockUpstream;
  let gw: TestGateway;
  let client: OpenAI;

  beforeAll(async () => {
    mock = await startMockUpstream({ defaults: { chunks: 5 } });
    const cfg = mockConfig(mock.url, {
      keys: [
        { id: 'team-a', key: '${TEAM_A_KEY}', models: ['*'] },
        { id: 'team-b', key: '${TEAM_B_KEY}', models: ['gpt-4o-*'] },
      ],
      backends: {
        mock: { type: 'openai-compatible', base_url: mock.url, api_key: '${MOCK_KEY:-sk-upstream-secret}', max_connections: 16, timeout_ms: 1500 },
        noinject: { type: 'openai-compatible', base_url: mock.url, inject_stream_usage: false },
        nokey: { type: 'openai', base_url: mock.url, api_key: '${NOT_SET_ANYWHERE_KEY}' },
        dead: { type: 'openai-compatible', base_url: 'http://127.0.0.1:9/v1', connect_timeout_ms: 1000 },
      },
      models: {
        'gpt-4o-mini': { backend: 'mock', model: 'gpt-4o-mini' },
        renamed: { backend: 'mock', model: 'upstream-name' },
        plain: { backend: 'noinject', model: 'gpt-4o-mini' },
        'needs-key': { backend: 'nokey', model: 'gpt-4o' },
        'dead-model': { backend: 'dead', model: 'x' },
        embed: { backend: 'mock', model: 'text-embedding-3-small' },
      },
      server: { host: '127.0.0.1', port: 0, max_body_bytes: 64 * 1024 },
    });
    gw = await startTestGateway(cfg, { server: serverKind, env: { TEAM_A_KEY: KEY, TEAM_B_KEY: KEY_B } });
    expect(gw.serverKind).toBe(serverKind);
    client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0 });
  });
  afterAll(async () => {
    await gw?.close();
    await mock?.close();
  });
  beforeEach(() => mock.reset());

  it('answers a chat completion and adds the provider key itself', async () => {
    const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    expect(r.choices[0].message.content).toBe('Hello from mock');
    expect(r.usage?.total_tokens).toBeGreaterThan(0);
    expect(mock.requests[0].headers.authorization).toBe('Bearer sk-upstream-secret');
    expect(JSON.stringify(r)).not.toContain('sk-upstream-secret');
  });

  it('forwards the client body bytes untouched when nothing needs changing', async () => {
    const raw = '{"model":"gpt-4o-mini",  "messages":[{"role":"user","content":"keep my   spacing"}],"x_custom":1}';
    const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: raw });
    expect(res.status).toBe(200);
    expect(mock.requests[0].rawBody).toBe(raw);
  });

  it('rewrites the model name to the upstream model of the alias', async () => {
    await client.chat.completions.create({ model: 'renamed', messages: [{ role: 'user', content: 'hi' }] });
    expect(mock.requests[0].body?.model).toBe('upstream-name');
  });

  it('streams chunks to the client before the upstream has sent its last one', async () => {
    mock.enqueue({ chunks: 5, chunkDelayMs: 80 });
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true });
    let text = '';
    let sentWhenFirstArrived = -1;
    for await (const chunk of stream) {
      const c = chunk.choices[0]?.delta?.content;
      if (c && sentWhenFirstArrived === -1) sentWhenFirstArrived = mock.requests[0].chunksSent;
      text += c ?? '';
    }
    expect(text).toBe('tok tok tok tok tok ');
    expect(sentWhenFirstArrived).toBeGreaterThanOrEqual(1);
    expect(sentWhenFirstArrived).toBeLessThan(5);
  });

  it('injects include_usage upstream, counts the usage and hides the injected chunk', async () => {
    mock.enqueue({ chunks: 3, usage: { prompt_tokens: 11, completion_tokens: 3 } });
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'count me' }], stream: true });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(mock.requests[0].body?.stream_options).toEqual({ include_usage: true });
    expect(chunks.some((c) => c.choices.length === 0)).toBe(false);
    expect(chunks.some((c) => c.usage)).toBe(false);
    await expect.poll(() => gw.logs.find((l) => l.msg === 'request' && l.prompt_tokens === 11)).toBeTruthy();
    const line = gw.logs.find((l) => l.msg === 'request' && l.prompt_tokens === 11)!;
    expect(line.completion_tokens).toBe(3);
    expect(typeof line.ttfb_ms).toBe('number');
  });

  it('relays the usage chunk when the client asked for it', async () => {
    mock.enqueue({ chunks: 2, usage: { prompt_tokens: 7, completion_tokens: 2 } });
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'x' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let usage;
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
    expect(usage).toMatchObject({ prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 });
  });

  it('estimates usage when the backend switch turns injection off', async () => {
    mock.enqueue({ chunks: 4, chunkText: 'abcdefgh' });
    const stream = await client.chat.completions.create({ model: 'plain', messages: [{ role: 'user', content: 'estimate' }], stream: true });
    for await (const _ of stream) void _;
    expect(mock.requests[0].body?.stream_options).toBeUndefined();
    await expect.poll(() => gw.logs.find((l) => l.msg === 'request' && l.model === 'plain')).toBeTruthy();
    const line = gw.logs.find((l) => l.msg === 'request' && l.model === 'plain')!;
    expect(line.completion_tokens).toBe(8);
    expect(line.usage_estimated).toBe(true);
  });

  it('never estimates a stream cut before its usage chunk at zero completion tokens (client abort, upstream reset)', async () => {
    // Injection on: the gateway expects a usage chunk, so it relays content events unparsed.
    mock.enqueue({ chunks: 200, chunkDelayMs: 20, chunkText: 'word ' });
    const ac = new AbortController();
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'cut by client' }], stream: true }, { signal: ac.signal });
    let seen = 0;
    for await (const chunk of stream) if (chunk.choices[0]?.delta?.content && ++seen === 8) ac.abort();
    await expect.poll(() => gw.logs.find((l) => l.msg === 'request' && l.stream_outcome === 'client_aborted')).toBeTruthy();
    const abortLine = gw.logs.find((l) => l.msg === 'request' && l.stream_outcome === 'client_aborted')!;
    expect(abortLine.usage_estimated).toBe(true);
    expect(abortLine.completion_tokens).toBeGreaterThanOrEqual(8);

    mock.enqueue({ chunks: 50, resetAfterChunks: 20, chunkText: 'word ' });
    const cut = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'cut by upstream' }], stream: true });
    await expect(async () => {
      for await (const _ of cut) void _;
    }).rejects.toThrow();
    await expect.poll(() => gw.logs.find((l) => l.msg === 'request' && l.stream_outcome === 'interrupted')).toBeTruthy();
    const cutLine = gw.logs.find((l) => l.msg === 'request' && l.stream_outcome === 'interrupted')!;
    expect(cutLine.usage_estimated).toBe(true);
    expect(cutLine.completion_tokens).toBeGreaterThanOrEqual(20);
  });

  it('answers completions and embeddings and lists the model aliases', async () => {
    const c = await client.completions.create({ model: 'gpt-4o-mini', prompt: 'Say hi' });
    expect(c.choices[0].text).toBe('Hello from mock');
    const e = await client.embeddings.create({ model: 'embed', input: ['a b c', 'd e f'] });
    expect(e.data).toHaveLength(2);
    expect(e.data[0].embedding.length).toBe(256);
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['gpt-4o-mini', 'renamed', 'plain', 'needs-key', 'dead-model', 'embed']);
  });

  it('rejects bad input with the SDK error classes', async () => {
    await expect(client.chat.completions.create({ model: 'gpt-4o-mini', messages: [] })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    const anon = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
    await expect(anon.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const b = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY_B, maxRetries: 0 });
    await expect(b.chat.completions.create({ model: 'plain', messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(OpenAI.PermissionDeniedError);
    const nf = await client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(nf).toBeInstanceOf(OpenAI.NotFoundError);
    expect((nf as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
    const big = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x'.repeat(100_000) }] }).catch((e: unknown) => e);
    expect(big).toBeInstanceOf(OpenAI.APIError);
    expect((big as InstanceType<typeof OpenAI.APIError>).status).toBe(413);
    expect(mock.requests).toHaveLength(0);
  });

  it('answers invalid JSON, unknown paths and wrong methods in OpenAI shape', async () => {
    const bad = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: '{nope' });
    expect(bad.status).toBe(400);
    // Without a valid key the body is never parsed: 401, whatever it holds (as OpenAI answers).
    for (const authorization of [undefined, 'Bearer sk-wrong']) {
      const anon = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: authorization ? { authorization } : {}, body: '{nope' });
      expect(anon.status).toBe(401);
      expect(((await anon.json()) as { error: { code: string } }).error.code).toBe('invalid_api_key');
    }
    expect((await bad.json()).error).toMatchObject({ code: 'invalid_json', type: 'invalid_request_error', param: null });
    const missing = await fetch(`${gw.url}/v2/whatever`);
    expect(missing.status).toBe(404);
    expect((await missing.json()).error.code).toBe('not_found');
    const wrong = await fetch(`${gw.url}/v1/chat/completions`);
    expect(wrong.status).toBe(405);
    expect((await wrong.json()).error.code).toBe('method_not_allowed');
  });

  it('aborts the upstream request at once when the client goes away mid-stream', async () => {
    mock.enqueue({ chunks: 50, chunkDelayMs: 50 });
    const ac = new AbortController();
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'long' }], stream: true }, { signal: ac.signal });
    let abortedAt = 0;
    try {
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta?.content) {
          abortedAt = Date.now();
          ac.abort();
        }
      }
    } catch {
      /* aborted */
    }
    await expect.poll(() => mock.requests[0].abortedAt, { timeout: 1000, interval: 5 }).toBeDefined();
    expect(mock.requests[0].abortedAt! - abortedAt).toBeLessThan(100);
    expect(mock.requests[0].chunksSent).toBeLessThan(50);
  });

  it('echoes x-request-id and reports its own overhead', async () => {
    const { response } = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-request-id': 'req-abc-123' } })
      .withResponse();
    expect(response.headers.get('x-request-id')).toBe('req-abc-123');
    expect(Number(response.headers.get('x-switchyard-overhead-ms'))).toBeGreaterThanOrEqual(0);
    expect(mock.requests[0].headers['x-request-id']).toBe('req-abc-123');
    const gen = await fetch(`${gw.url}/v1/models`);
    expect(gen.headers.get('content-type')).toContain('application/json');
  });

  it('ends a stream that breaks mid-way with an error event, never a clean end', async () => {
    const interruptions = async () => {
      const text = await (await fetch(`${gw.url}/metrics`)).text();
      const sum = (re: RegExp) => [...text.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);
      return {
        reset: sum(/switchyard_stream_interruptions_total\{backend="mock",reason="(?:reset|network)"\} (\d+)/g),
        noDone: sum(/switchyard_stream_interruptions_total\{backend="mock",reason="no_done"\} (\d+)/g),
      };
    };
    const before = await interruptions();
    mock.enqueue({ chunks: 10, resetAfterChunks: 2 });
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], stream: true });
    const err = await (async () => {
      for await (const _ of stream) void _;
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(String((err as Error).message)).toMatch(/ended before it was complete/);

    mock.enqueue({ chunks: 2, omitDone: true });
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], stream: true }),
    });
    const text = await res.text();
    expect(text).toContain('"code":"upstream_stream_interrupted"');
    expect(text).not.toContain('[DONE]');
    const after = await interruptions();
    expect(after.reset - before.reset).toBe(1);
    expect(after.noDone - before.noDone).toBe(1);
  });

  it('passes upstream errors through with their status and body', async () => {
    mock.enqueue({ status: 422, errorBody: { error: { message: 'upstream says no', type: 'invalid_request_error', param: 'temperature', code: 'bad_temp' } } });
    const err = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.UnprocessableEntityError);
    expect((err as InstanceType<typeof OpenAI.APIError>).message).toContain('upstream says no');
  });

  it("fills the fields a server's partial OpenAI error leaves out, keeping what it sent", async () => {
    const send = async () => {
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }),
      });
      return { status: res.status, body: (await res.json()) as { error: Record<string, unknown>; extra?: unknown } };
    };
    mock.enqueue({ status: 400, errorBody: { error: { message: 'prompt too long for this server' }, extra: 1 } });
    const a = await send();
    expect(a.status).toBe(400);
    expect(a.body.error).toEqual({ message: 'prompt too long for this server', type: 'invalid_request_error', param: null, code: null });
    expect(a.body.extra).toBe(1);

    mock.enqueue({ status: 409, errorBody: { error: { message: 'busy', code: 'conflict', object: 'error' } } });
    const b = await send();
    expect(b.status).toBe(409);
    expect(b.body.error).toEqual({ message: 'busy', type: 'invalid_request_error', param: null, code: 'conflict', object: 'error' });
  });

  it('never relays the provider key, even when the upstream echoes it in an error', async () => {
    mock.enqueue({ status: 401, errorBody: { error: { message: 'Incorrect API key provided: sk-upstream-secret.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } } });
    const err = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(401);
    expect((err as Error).message).toContain('Incorrect API key provided: [redacted].');
    expect(JSON.stringify((err as InstanceType<typeof OpenAI.APIError>).error)).not.toContain('sk-upstream-secret');
  });

  it('answers 502 when the upstream is unreachable and 504 when it hangs', async () => {
    const unreachable = await client.chat.completions.create({ model: 'dead-model', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect((unreachable as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    mock.enqueue({ hang: true });
    const hung = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect((hung as InstanceType<typeof OpenAI.APIError>).status).toBe(504);
    expect((hung as InstanceType<typeof OpenAI.APIError>).code).toBe('upstream_timeout');
  });

  it('answers 503 naming the variable when a backend lacks its key', async () => {
    const err = await client.chat.completions.create({ model: 'needs-key', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((err as Error).message).toContain('NOT_SET_ANYWHERE_KEY');
  });

  it('never writes a key to the log', async () => {
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    gw.logger.info({ headers: { authorization: `Bearer ${KEY}` }, api_key: 'sk-upstream-secret' }, 'redaction probe');
    await expect.poll(() => gw.rawLogs.some((l) => l.includes('redaction probe'))).toBe(true);
    const all = gw.rawLogs.join('\n');
    expect(all).not.toContain(KEY);
    expect(all).not.toContain('sk-upstream-secret');
    expect(all).toContain('[redacted]');
  });

  it('exposes health, readiness and Prometheus metrics', async () => {
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    expect((await fetch(`${gw.url}/health`)).status).toBe(200);
    expect((await fetch(`${gw.url}/ready`)).status).toBe(200);
    const m = await (await fetch(`${gw.url}/metrics`)).text();
    for (const name of [
      'switchyard_requests_total{model="gpt-4o-mini",backend="mock",status="200"}',
      'switchyard_request_duration_seconds_bucket',
      'switchyard_overhead_seconds_bucket',
      'switchyard_tokens_total{model="gpt-4o-mini",type="prompt"}',
      'switchyard_inflight_requests',
      'switchyard_time_to_first_token_seconds',
      'switchyard_upstream_errors_total',
      'process_cpu_user_seconds_total',
    ]) expect(m).toContain(name);
  });

  it('counts a stream as in flight while it is open, and no longer once it ended', async () => {
    const inflight = async () => Number(/^switchyard_inflight_requests (\S+)$/m.exec(await (await fetch(`${gw.url}/metrics`)).text())?.[1]);
    expect(await inflight()).toBe(0);
    mock.enqueue({ chunks: 4, chunkDelayMs: 100 });
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true });
    const it = stream[Symbol.asyncIterator]();
    await it.next(); // the stream is open and relaying
    expect(await inflight()).toBe(1);
    while (!(await it.next()).done) { /* read to the end */ }
    expect(await inflight()).toBe(0);
  });
});
