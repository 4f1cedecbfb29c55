/**
 * Upstreams that misbehave (test/support/quirky-upstream.ts): the client gets either a
 * faithful relay or a clear OpenAI error, never the backend's key, never a wait beyond
 * the backend's timeout, and the gateway counts what happened.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startQuirkyUpstream, type QuirkyUpstream } from './support/quirky-upstream.js';
import { startTestGateway, type TestGateway } from './support/gateway.js';
import { usageFromObject, usageFromText } from '../gateway/providers/openai/usage.js';

const SECRET = 'sk-upstream-SECRET-1234';
const TIMEOUT_MS = 1000;

describe('quirky upstreams', () => {
  let up: QuirkyUpstream;
  let gw: TestGateway;
  let client: OpenAI;

  beforeAll(async () => {
    up = await startQuirkyUpstream();
    gw = await startTestGateway(
      {
        server: { host: '127.0.0.1', port: 0 },
        backends: {
          quirky: { type: 'openai-compatible', base_url: up.url, api_key: '${QUIRKY_KEY}', max_connections: 2, timeout_ms: TIMEOUT_MS, health: { failure_threshold: 1000 } },
          ant: { type: 'anthropic', base_url: up.url.replace(/\/v1$/, ''), api_key: '${QUIRKY_KEY}', timeout_ms: TIMEOUT_MS, health: { failure_threshold: 1000 } },
        },
        models: { q: { backend: 'quirky', model: 'q' }, qr: { backend: 'quirky', model: 'q' }, claude: { backend: 'ant', model: 'claude-x' } },
        routes: [{ name: 'retrying', match: { model: 'qr' }, targets: [{ model: 'qr' }], retries: { attempts: 2, backoff_ms: 1, max_backoff_ms: 5 } }],
      },
      { env: { QUIRKY_KEY: SECRET } },
    );
    client = new OpenAI({ apiKey: 'unused', baseURL: `${gw.url}/v1`, maxRetries: 0 });
  });

  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });

  const post = (body: Record<string, unknown>) =>
    fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const ask = (name: string, extra: Record<string, unknown> = {}, model = 'q') => post({ model, messages: [{ role: 'user', content: `case:${name}` }], ...extra });
  const streamText = async (name: string) => {
    const chunks = await client.chat.completions.create({ model: 'q', messages: [{ role: 'user', content: `case:${name}` }], stream: true });
    let text = '';
    for await (const c of chunks) text += c.choices[0]?.delta?.content ?? '';
    return text;
  };

  /** switchyard_tokens_total{model,type="completion"} as scraped. */
  const completionTokens = async (model: string) => {
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    const m = new RegExp(`^switchyard_tokens_total\\{model="${model}",type="completion"\\} (\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };

  it('bills a tool-call-only stream without usage by its arguments, not as 0 tokens', async () => {
    const before = await completionTokens('q');
    const raw = await (await ask('tools-no-usage', { stream: true, stream_options: undefined })).text();
    expect(raw).toContain('"tool_calls"');
    // 4,000 characters of arguments: ~1,000 tokens.
    expect((await completionTokens('q')) - before).toBeGreaterThanOrEqual(1000);
  });

  it('bills a cut Anthropic stream by what it relayed, not by the provisional output_tokens: 1', async () => {
    const before = await completionTokens('claude');
    const raw = await (await ask('anthropic-cut', { stream: true }, 'claude')).text();
    expect(raw).toContain('"error"'); // the client learns the stream broke
    expect((await completionTokens('claude')) - before).toBeGreaterThanOrEqual(1000);
  });

  it('relays an event whose data spans several lines as one the SDK can read', async () => {
    expect(await streamText('multiline')).toBe('multi');
  });

  it("relays the upstream's keep-alive comments while it thinks", async () => {
    const res = await ask('keepalive', { stream: true });
    const raw = await res.text();
    expect(raw.match(/^: ping$/gm)?.length).toBe(2);
    expect(raw).toContain('after pings');
    expect(raw).toContain('data: [DONE]');
  });

  it('ends the client stream at [DONE] though the upstream holds its connection open', async () => {
    const started = Date.now();
    expect(await streamText('done-hold')).toBe('held');
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS / 2);
  });

  it('delivers the last event of a stream with bare-CR line endings, without a false interruption', async () => {
    const res = await ask('bare-cr', { stream: true });
    const raw = await res.text();
    expect(raw).toContain('"content":"cr"');
    expect(raw).toContain('data: [DONE]');
    expect(raw).not.toContain('upstream_stream_interrupted');
  });

  it('rewrites the older vLLM in-stream error as an OpenAI error event, and counts it', async () => {
    const chunks = await client.chat.completions.create({ model: 'q', messages: [{ role: 'user', content: 'case:vllm-error' }], stream: true });
    const err = await (async () => {
      for await (const _ of chunks) void _;
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(String((err as Error).message)).toContain('boom');
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/switchyard_stream_interruptions_total\{backend="quirky",reason="error_event"\} [1-9]/);
  });

  describe('never lets the backend key reach the client', () => {
    it.each([
      ['a 200 stream', 'echo-stream', true, 'q'],
      ['a 200 answer', 'echo-json', false, 'q'],
      ['a JSON-escaped key in a partial error the gateway completes', 'echo-escaped', false, 'q'],
      ['a Retry-After header', 'retry-after-junk', false, 'q'],
      ['a JSON-escaped key in an Anthropic answer the gateway translates', 'ant-echo-escaped', false, 'claude'],
    ])('in %s', async (_n, name, stream, model) => {
      const res = await ask(name as string, { stream }, model as string);
      const head = [...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n');
      const body = await res.text();
      expect(head + body).not.toContain(SECRET);
      expect(head + body).not.toContain('SECRET');
    });
  });

  it.each([
    ['a redirect', 'redirect', /HTTP status 301.*base_url/],
    ['a status beyond HTTP', 'status-600', /HTTP status 600/],
    ['an HTML page with 200', 'html-200', /not a JSON object \(text\/html\)/],
    ['an empty 200', 'empty-200', /empty body/],
    ['a gzip body it was not asked for', 'gzip-200', /encoded as gzip/],
  ])('answers %s with a 502 upstream_bad_response', async (_n, name, message) => {
    const res = await ask(name as string);
    expect(res.status).toBe(502);
    const body = (await res.json()) as { error: { code: string; message: string; type: string } };
    expect(body.error.code).toBe('upstream_bad_response');
    expect(body.error.type).toBe('server_error');
    expect(body.error.message).toMatch(message as RegExp);
  });

  it('answers a JSON reply to a stream request with a JSON 502 before any stream starts', async () => {
    const res = await ask('json-for-stream', { stream: true });
    expect(res.status).toBe(502);
    expect(res.headers.get('content-type')).toContain('application/json');
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/application\/json instead of an event stream/);
  });

  it('bounds a whole answer by the backend timeout, however steadily it trickles', async () => {
    const started = Date.now();
    const res = await ask('trickle');
    expect(res.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + 1000);
  });

  it('times out requests queued for a connection from when they were sent, not from when a connection freed', async () => {
    // max_connections: 2 — six requests to an upstream that never answers all end near one timeout.
    const started = Date.now();
    const statuses = await Promise.all(Array.from({ length: 6 }, () => ask('hang').then((r) => r.status)));
    expect(statuses).toEqual([504, 504, 504, 504, 504, 504]);
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS * 2);
  });

  it('ends a stream whose upstream sends an event that never ends (past 16 Mi characters) with an error event', async () => {
    const res = await ask('endless-event', { stream: true });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('"content":"first"');
    expect(text.length).toBeLessThan(64 * 1024);
    const last = JSON.parse(text.trim().split('\n\n').at(-1)!.replace(/^data: /, '')) as { error: { code: string } };
    expect(last.error.code).toBe('upstream_stream_interrupted');
  });

  it('answers a whole answer over 64 MiB with upstream_bad_response, and does not fetch it again', async () => {
    const before = up.hits.get('huge') ?? 0;
    const res = await ask('huge', {}, 'qr');
    expect(res.status).toBe(502);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('upstream_bad_response');
    expect(body.error.message).toMatch(/too large/);
    expect((up.hits.get('huge') ?? 0) - before).toBe(1);
  });

  it('does not retry a 501: the backend will not implement it on a second try', async () => {
    const before = up.hits.get('not-implemented') ?? 0;
    const res = await ask('not-implemented', {}, 'qr');
    expect(res.status).toBe(501);
    expect((up.hits.get('not-implemented') ?? 0) - before).toBe(1);
  });

  it.each([
    ['an OpenAI-compatible', 'error-hold', 'q'],
    ['an Anthropic', 'ant-error-pings', 'claude'],
  ])('ends the client stream at %s error event though the upstream keeps the stream open', async (_n, name, model) => {
    const started = Date.now();
    const res = await ask(name as string, { stream: true }, model as string);
    const raw = await res.text();
    expect(raw).toMatch(/"error":\{"message":"[^"]*[Oo]verloaded/);
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS / 2);
  });

  it('keeps serving after all of that', async () => {
    const r = await client.chat.completions.create({ model: 'q', messages: [{ role: 'user', content: 'plain' }] });
    expect(r.choices[0]!.message.content).toBe('plain');
  });
});

describe('token counts an upstream reports', () => {
  it('are refused when negative, in a JSON answer and in a stream chunk, so the gateway estimates instead of refunding', () => {
    expect(usageFromText('{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":-10,"total_tokens":-5}}')).toBeUndefined();
    expect(usageFromObject({ prompt_tokens: 5, completion_tokens: -10, total_tokens: -5 })).toBeUndefined();
    expect(usageFromObject({ prompt_tokens: -1, completion_tokens: 3 })).toBeUndefined();
    expect(usageFromText('{"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}')).toEqual({ prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 });
    expect(usageFromObject({ prompt_tokens: 5, completion_tokens: 3 })).toEqual({ prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 });
  });
});
