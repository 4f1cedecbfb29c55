/**
 * The Anthropic Messages API reached through the OpenAI API: the official openai SDK
 * → Switchyard → a mock speaking Anthropic's documented wire format.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startMockAnthropic, type MockAnthropic } from './support/mock-anthropic.js';
import { startTestGateway, type TestGateway } from './support/gateway.js';

const KEY = 'sk-client-0123456789';

describe.each(['uws', 'node'] as const)('Anthropic through the gateway on %s', (serverKind) => {
  let mock: MockAnthropic;
  let gw: TestGateway;
  let client: OpenAI;

  beforeAll(async () => {
    mock = await startMockAnthropic({ apiKey: 'sk-ant-upstream' });
    gw = await startTestGateway(
      {
        server: { host: '127.0.0.1', port: 0 },
        keys: [{ id: 'k', key: '${CLIENT_KEY}' }],
        backends: { anthropic: { type: 'anthropic', base_url: mock.url, api_key: '${ANTHROPIC_API_KEY}', max_tokens_default: 333, timeout_ms: 5000 } },
        models: { claude: { backend: 'anthropic', model: 'claude-sonnet-4-5', price: { input: 3, output: 15 } } },
      },
      { server: serverKind, env: { CLIENT_KEY: KEY, ANTHROPIC_API_KEY: 'sk-ant-upstream' } },
    );
    client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0 });
  });
  afterAll(async () => {
    await gw?.close();
    await mock?.close();
  });
  beforeEach(() => mock.reset());

  it('answers a chat completion from Claude with usage', async () => {
    mock.enqueue({ kind: 'text', text: 'Bonjour!', usage: { input_tokens: 21, output_tokens: 4 } });
    const r = await client.chat.completions.create({ model: 'claude', messages: [{ role: 'system', content: 'French only.' }, { role: 'user', content: 'hello' }] });
    expect(r.choices[0].message.content).toBe('Bonjour!');
    expect(r.choices[0].finish_reason).toBe('stop');
    expect(r.usage).toMatchObject({ prompt_tokens: 21, completion_tokens: 4, total_tokens: 25 });
    const seen = mock.requests[mock.requests.length - 1];
    expect(seen.headers['x-api-key']).toBe('sk-ant-upstream');
    expect(seen.headers.authorization).toBeUndefined();
    expect(seen.body).toMatchObject({ model: 'claude-sonnet-4-5', system: 'French only.', max_tokens: 333 });
  });

  it('streams text and a final usage chunk', async () => {
    mock.enqueue({ kind: 'text', text: 'Streaming through Switchyard works.', usage: { input_tokens: 9, output_tokens: 6 } });
    const stream = await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'go' }], stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined | null;
    let chunks = 0;
    for await (const c of stream) {
      chunks++;
      text += c.choices[0]?.delta?.content ?? '';
      if (c.usage) usage = c.usage;
    }
    expect(text).toBe('Streaming through Switchyard works.');
    expect(chunks).toBeGreaterThan(3);
    expect(usage).toMatchObject({ prompt_tokens: 9, completion_tokens: 6 });
  });

  it('round-trips a tool call, streamed, and its result', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [
      { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } },
    ];
    const stream = await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'weather in Paris?' }], tools, tool_choice: 'required', stream: true });
    let id = '';
    let name = '';
    let args = '';
    let finish: string | null = null;
    for await (const c of stream) {
      const tc = c.choices[0]?.delta?.tool_calls?.[0];
      if (tc?.id) id = tc.id;
      if (tc?.function?.name) name = tc.function.name;
      args += tc?.function?.arguments ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    expect(name).toBe('get_weather');
    expect(JSON.parse(args)).toEqual({ city: 'Paris', unit: 'celsius' });
    expect(finish).toBe('tool_calls');

    const r = await client.chat.completions.create({
      model: 'claude',
      tools,
      messages: [
        { role: 'user', content: 'weather in Paris?' },
        { role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name, arguments: args } }] },
        { role: 'tool', tool_call_id: id, content: '21C and sunny' },
      ],
    });
    expect(r.choices[0].message.content).toBe('You said: 21C and sunny');
    const sent = mock.requests[mock.requests.length - 1].body.messages as Array<{ content: Array<Record<string, unknown>> }>;
    expect(sent[2].content[0]).toEqual({ type: 'tool_result', tool_use_id: id, content: '21C and sunny' });
  });

  it('maps an Anthropic rate limit to a 429 the SDK understands', async () => {
    mock.enqueue({ kind: 'error', status: 429, errorType: 'rate_limit_error', message: 'Number of requests has exceeded your rate limit' });
    const caught = await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(OpenAI.RateLimitError);
    expect((caught as InstanceType<typeof OpenAI.RateLimitError>).message).toContain('exceeded your rate limit');
  });

  it('maps an invalid request to a 400', async () => {
    mock.enqueue({ kind: 'error', status: 400, errorType: 'invalid_request_error', message: 'messages.0: bad' });
    const caught = await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(OpenAI.BadRequestError);
  });

  it('ends a stream with an error event when Anthropic reports one mid-stream', async () => {
    mock.enqueue({ kind: 'stream_error', text: 'Half an answer', errorType: 'overloaded_error', message: 'Overloaded' });
    const stream = await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'go' }], stream: true });
    let text = '';
    const caught = await (async () => {
      for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
    })().catch((e: unknown) => e);
    expect(text).toBe('Half an answer');
    expect(caught).toBeInstanceOf(Error);
    expect(String((caught as Error).message)).toContain('Overloaded');
  });
});
