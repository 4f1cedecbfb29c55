/**
 * Round trips through the translator and the mock Anthropic server over a real socket:
 * buildRequest → HTTP → translateResponse / stream translator / translateError.
 * (The openai SDK → gateway → mock test lives with the gateway's end-to-end tests.)
 */
import { createParser } from 'eventsource-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendSchema } from '../gateway/config/schema.js';
import { createAnthropicTranslator } from '../gateway/providers/anthropic/translator.js';
import type { Endpoint } from '../gateway/providers/types.js';
import { startMockAnthropic, type MockAnthropic } from './support/mock-anthropic.js';

let mock: MockAnthropic;
const t = createAnthropicTranslator();

beforeAll(async () => {
  mock = await startMockAnthropic({ apiKey: 'sk-ant-good' });
});
afterAll(async () => {
  await mock.close();
});

async function send(body: Record<string, unknown>, opts: { stream?: boolean; apiKey?: string; endpoint?: Endpoint } = {}) {
  const backend = BackendSchema.parse({ type: 'anthropic', base_url: mock.url, max_tokens_default: 256 });
  const req = t.buildRequest({
    endpoint: opts.endpoint ?? 'chat',
    body,
    rawBody: new Uint8Array(),
    bodyChanged: false,
    upstreamModel: 'claude-haiku-4-5',
    stream: opts.stream ?? false,
    injectUsage: false,
    backend,
    apiKey: opts.apiKey ?? 'sk-ant-good',
  });
  return fetch(`${backend.base_url}${req.path}`, { method: req.method, headers: req.headers, body: req.body as string });
}

async function streamText(res: Response, clientWantsUsage = false) {
  const st = t.createStreamTranslator('chat', { clientWantsUsage, injectedUsage: false, clientModel: 'claude', collectText: true });
  let out = '';
  const parser = createParser({ onEvent: (e) => (out += st.push({ event: e.event, data: e.data })) });
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }));
  return { out, state: st.state };
}

describe('Anthropic round trips against the mock server', () => {
  it('answers a chat completion and the mock saw Anthropic’s request shape', async () => {
    const res = await send({ model: 'claude', messages: [{ role: 'system', content: 'Be kind.' }, { role: 'user', content: 'ping' }] });
    expect(res.status).toBe(200);
    const out = t.translateResponse('chat', new Uint8Array(await res.arrayBuffer()), 'claude');
    expect(JSON.parse(out.body as string).choices[0].message.content).toBe('You said: ping');
    const seen = mock.requests[mock.requests.length - 1];
    expect(seen.body).toMatchObject({ model: 'claude-haiku-4-5', max_tokens: 256, system: 'Be kind.' });
    expect(seen.headers['anthropic-version']).toBe('2023-06-01');
  });

  it('round-trips a forced tool call and its result', async () => {
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const first = await send({ messages: [{ role: 'user', content: 'weather?' }], tools, tool_choice: 'required' });
    const out = JSON.parse(t.translateResponse('chat', new Uint8Array(await first.arrayBuffer()), 'claude').body as string);
    const call = out.choices[0].message.tool_calls[0];
    expect(call.function).toEqual({ name: 'get_weather', arguments: '{"city":"Paris","unit":"celsius"}' });
    expect(out.choices[0].finish_reason).toBe('tool_calls');

    const second = await send({
      messages: [{ role: 'user', content: 'weather?' }, out.choices[0].message, { role: 'tool', tool_call_id: call.id, content: 'sunny' }],
      tools,
    });
    expect(JSON.parse(t.translateResponse('chat', new Uint8Array(await second.arrayBuffer()), 'claude').body as string).choices[0].message.content).toBe('You said: sunny');
    const sent = mock.requests[mock.requests.length - 1].body.messages as Array<{ role: string; content: Array<Record<string, unknown>> }>;
    expect(sent[1].content[0]).toMatchObject({ type: 'tool_use', id: call.id, input: { city: 'Paris', unit: 'celsius' } });
    expect(sent[2].content[0]).toEqual({ type: 'tool_result', tool_use_id: call.id, content: 'sunny' });
  });

  it('streams text with usage as OpenAI chunks ending in [DONE]', async () => {
    mock.enqueue({ kind: 'text', text: 'A fairly long streamed answer, in pieces.', usage: { input_tokens: 40, output_tokens: 11 } });
    const res = await send({ messages: [{ role: 'user', content: 'go' }], stream: true }, { stream: true });
    const { out, state } = await streamText(res, true);
    expect(state.text).toBe('A fairly long streamed answer, in pieces.');
    expect(state.usage).toEqual({ prompt_tokens: 40, completion_tokens: 11, total_tokens: 51 });
    expect(state.done).toBe(true);
    expect(out).toContain('"choices":[],"usage":{"prompt_tokens":40');
    expect(out.endsWith('data: [DONE]\n\n')).toBe(true);
  });

  it('streams tool-call arguments in pieces', async () => {
    mock.enqueue({ kind: 'tool_use', name: 'lookup', input: { query: 'switchyard gateway', limit: 3 } });
    const res = await send({ messages: [{ role: 'user', content: 'find' }], tools: [{ type: 'function', function: { name: 'lookup' } }], stream: true }, { stream: true });
    const { out, state } = await streamText(res);
    const args = [...out.matchAll(/"arguments":"((?:[^"\\]|\\.)*)"/g)].map((m) => JSON.parse(`"${m[1]}"`)).join('');
    expect(JSON.parse(args)).toEqual({ query: 'switchyard gateway', limit: 3 });
    expect(state.toolCalls).toEqual(['lookup']);
    expect(state.finishReason).toBe('tool_calls');
  });

  it('relays a mid-stream overloaded error as an OpenAI error event', async () => {
    mock.enqueue({ kind: 'stream_error', text: 'Half an answ', errorType: 'overloaded_error', message: 'Overloaded' });
    const res = await send({ messages: [{ role: 'user', content: 'go' }], stream: true }, { stream: true });
    const { out, state } = await streamText(res);
    expect(state.done).toBe(false);
    expect(state.error?.code).toBe('overloaded');
    expect(out).toContain('"error":{"message":"Overloaded"');
    expect(out).not.toContain('[DONE]');
  });

  it.each([
    [{ kind: 'error' as const, status: 429, errorType: 'rate_limit_error', message: 'slow down', headers: { 'retry-after': '3' } }, 429],
    [{ kind: 'error' as const, status: 529, errorType: 'overloaded_error', message: 'Overloaded' }, 503],
    [{ kind: 'error' as const, status: 400, errorType: 'invalid_request_error', message: 'messages: bad' }, 400],
  ])('translates upstream error %#', async (reply, status) => {
    mock.enqueue(reply);
    const res = await send({ messages: [{ role: 'user', content: 'x' }] });
    expect(res.status).toBe(reply.status);
    const out = t.translateError(res.status, new Uint8Array(await res.arrayBuffer()));
    expect(out.status).toBe(status);
    expect(JSON.parse(out.body as string).error.message).toBe(reply.message);
  });

  it('maps a wrong API key to 401', async () => {
    const res = await send({ messages: [{ role: 'user', content: 'x' }] }, { apiKey: 'sk-ant-bad' });
    const out = t.translateError(res.status, new Uint8Array(await res.arrayBuffer()));
    expect(out.status).toBe(401);
    expect(JSON.parse(out.body as string).error.code).toBe('invalid_api_key');
  });
});
