import { describe, expect, it } from 'vitest';
import { BackendSchema } from '../gateway/config/schema.js';
import { GatewayError } from '../gateway/errors.js';
import { createAnthropicTranslator } from '../gateway/providers/anthropic/translator.js';
import type { TranslateRequestInput } from '../gateway/providers/types.js';

const backend = BackendSchema.parse({ type: 'anthropic', max_tokens_default: 1024, anthropic_version: '2023-06-01', headers: { 'anthropic-beta': 'x' } });
const t = createAnthropicTranslator();

function build(body: Record<string, unknown>, over: Partial<TranslateRequestInput> = {}) {
  const input: TranslateRequestInput = {
    endpoint: 'chat',
    body,
    rawBody: new Uint8Array(),
    bodyChanged: false,
    upstreamModel: 'claude-sonnet-4-5',
    stream: false,
    injectUsage: false,
    backend,
    apiKey: 'sk-ant-test',
    ...over,
  };
  const req = t.buildRequest(input);
  return { req, body: JSON.parse(req.body as string) as Record<string, unknown> };
}

const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));

describe('Anthropic request translation', () => {
  it('posts to /v1/messages with the key, the version header and the backend headers', () => {
    const { req } = build({ model: 'claude', messages: [{ role: 'user', content: 'hi' }] });
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/v1/messages');
    expect(req.headers['x-api-key']).toBe('sk-ant-test');
    expect(req.headers['anthropic-version']).toBe('2023-06-01');
    expect(req.headers['anthropic-beta']).toBe('x');
    expect(req.headers.authorization).toBeUndefined();
  });

  const cases: Array<{ name: string; in: Record<string, unknown>; out: Record<string, unknown> }> = [
    {
      name: 'system and developer messages become the system field; max_tokens defaults from the backend',
      in: { messages: [{ role: 'system', content: 'Be brief.' }, { role: 'developer', content: [{ type: 'text', text: 'No emoji.' }] }, { role: 'user', content: 'hi' }] },
      out: { system: 'Be brief.\n\nNo emoji.', max_tokens: 1024, messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] },
    },
    {
      name: 'max_completion_tokens wins over max_tokens; stop, temperature, top_p and user carry over',
      in: { messages: [{ role: 'user', content: 'x' }], max_tokens: 10, max_completion_tokens: 20, stop: 'END', temperature: 0.3, top_p: 0.9, user: 'u1' },
      out: { max_tokens: 20, stop_sequences: ['END'], temperature: 0.3, top_p: 0.9, metadata: { user_id: 'u1' } },
    },
    {
      name: 'a temperature above Anthropic’s maximum of 1 is clamped',
      in: { messages: [{ role: 'user', content: 'x' }], temperature: 1.7, stop: ['a', 'b'] },
      out: { temperature: 1, stop_sequences: ['a', 'b'] },
    },
    {
      name: 'data URL images become base64 sources and http URLs become url sources',
      in: {
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'what is this?' },
              { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
              { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg', detail: 'high' } },
            ],
          },
        ],
      },
      out: {
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'what is this?' },
              { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
              { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
            ],
          },
        ],
      },
    },
    {
      name: 'tools, tool calls and consecutive tool results become tool_use and one user message of tool_result blocks',
      in: {
        messages: [
          { role: 'user', content: 'weather in Paris and Rome?' },
          {
            role: 'assistant',
            content: null,
            tool_calls: [
              { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
              { id: 'call_2', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } },
            ],
          },
          { role: 'tool', tool_call_id: 'call_1', content: '18C' },
          { role: 'tool', tool_call_id: 'call_2', content: [{ type: 'text', text: '25C' }] },
          { role: 'user', content: 'thanks' },
        ],
        tools: [{ type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
        tool_choice: 'required',
        parallel_tool_calls: false,
      },
      out: {
        messages: [
          { role: 'user', content: [{ type: 'text', text: 'weather in Paris and Rome?' }] },
          {
            role: 'assistant',
            content: [
              { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } },
              { type: 'tool_use', id: 'call_2', name: 'get_weather', input: { city: 'Rome' } },
            ],
          },
          {
            role: 'user',
            content: [
              { type: 'tool_result', tool_use_id: 'call_1', content: '18C' },
              { type: 'tool_result', tool_use_id: 'call_2', content: '25C' },
              { type: 'text', text: 'thanks' },
            ],
          },
        ],
        tools: [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
        tool_choice: { type: 'any', disable_parallel_tool_use: true },
      },
    },
    {
      name: 'tool_choice auto, none and a named function map to Anthropic’s forms',
      in: { messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'f' } }], tool_choice: { type: 'function', function: { name: 'f' } } },
      out: { tool_choice: { type: 'tool', name: 'f' }, tools: [{ name: 'f', input_schema: { type: 'object', properties: {} } }] },
    },
    {
      name: 'tool_choice none stays none',
      in: { messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'f' } }], tool_choice: 'none' },
      out: { tool_choice: { type: 'none' } },
    },
  ];

  it.each(cases)('$name', ({ in: body, out }) => {
    expect(build({ model: 'claude', ...body }).body).toMatchObject({ model: 'claude-sonnet-4-5', ...out });
  });

  it('asks for a stream when the client streams', () => {
    const { req, body } = build({ messages: [{ role: 'user', content: 'x' }], stream: true }, { stream: true });
    expect(body.stream).toBe(true);
    expect(req.headers.accept).toBe('text/event-stream');
  });

  it('translates a legacy completions prompt into one user message', () => {
    const { body } = build({ prompt: 'Once upon a time', max_tokens: 5 }, { endpoint: 'completions' });
    expect(body.messages).toEqual([{ role: 'user', content: [{ type: 'text', text: 'Once upon a time' }] }]);
  });

  const refusals: Array<{ name: string; in: Record<string, unknown>; param: string; endpoint?: 'embeddings' | 'completions' }> = [
    { name: 'embeddings', in: { input: 'x' }, param: 'model', endpoint: 'embeddings' },
    { name: 'n greater than 1', in: { messages: [{ role: 'user', content: 'x' }], n: 2 }, param: 'n' },
    { name: 'tool arguments that are not JSON', in: { messages: [{ role: 'assistant', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{oops' } }] }] }, param: 'messages.0.tool_calls.0.function.arguments' },
    { name: 'audio parts', in: { messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: {} }] }] }, param: 'messages.0.content.0' },
    { name: 'an empty message list', in: { messages: [] }, param: 'messages' },
    { name: 'a negative max_tokens', in: { messages: [{ role: 'user', content: 'x' }], max_tokens: -1 }, param: 'max_tokens' },
    { name: 'tool arguments that are JSON but not an object', in: { messages: [{ role: 'assistant', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '[1,2]' } }] }] }, param: 'messages.0.tool_calls.0.function.arguments' },
    { name: 'null tool arguments', in: { messages: [{ role: 'assistant', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: 'null' } }] }] }, param: 'messages.0.tool_calls.0.function.arguments' },
    { name: 'a conversation of system messages only', in: { messages: [{ role: 'system', content: 'be brief' }] }, param: 'messages' },
    { name: 'logprobs', in: { messages: [{ role: 'user', content: 'x' }], logprobs: true }, param: 'logprobs' },
    { name: 'an unknown response_format', in: { messages: [{ role: 'user', content: 'x' }], response_format: { type: 'yaml' } }, param: 'response_format' },
    { name: 'the deprecated functions', in: { messages: [{ role: 'user', content: 'x' }], functions: [{ name: 'f', parameters: { type: 'object' } }] }, param: 'functions' },
    { name: 'the deprecated function_call', in: { messages: [{ role: 'user', content: 'x' }], function_call: 'auto' }, param: 'function_call' },
    { name: 'an empty completions prompt', in: { prompt: '' }, param: 'prompt', endpoint: 'completions' },
    { name: 'a completions suffix', in: { prompt: 'x', suffix: ' end' }, param: 'suffix', endpoint: 'completions' },
    { name: 'best_of above 1', in: { prompt: 'x', best_of: 3 }, param: 'best_of', endpoint: 'completions' },
    { name: 'echo', in: { prompt: 'x', echo: true }, param: 'echo', endpoint: 'completions' },
    { name: 'tool arguments that are a number', in: { messages: [{ role: 'assistant', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: 42 } }] }] }, param: 'messages.0.tool_calls.0.function.arguments' },
  ];

  it('takes tool-call arguments sent as an object (not a JSON string) as that object', () => {
    const obj = build({ messages: [{ role: 'user', content: 'q' }, { role: 'assistant', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: { city: 'Paris' } } }] }, { role: 'tool', tool_call_id: 'c', content: 'sunny' }] }).body;
    expect(JSON.stringify(obj.messages)).toContain('"input":{"city":"Paris"}');
  });

  it('asks for JSON in the system prompt for response_format, and drops empty stop strings', () => {
    const obj = build({ messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'x' }], response_format: { type: 'json_object' }, stop: ['', 'END'] }).body;
    expect(obj.system).toMatch(/^You are terse\.\n\nRespond with a single valid JSON object/);
    expect(obj.stop_sequences).toEqual(['END']);
    const schema = { type: 'object', properties: { a: { type: 'number' } }, required: ['a'] };
    const withSchema = build({ messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_schema', json_schema: { name: 's', schema } }, stop: '' }).body;
    expect(withSchema.system).toContain(JSON.stringify(schema));
    expect(withSchema.stop_sequences).toBeUndefined();
    expect(build({ messages: [{ role: 'user', content: 'x' }], response_format: { type: 'text' } }).body.system).toBeUndefined();
  });

  it.each(refusals)('refuses $name with a 400 naming the parameter', ({ in: body, param, endpoint }) => {
    let caught: unknown;
    try {
      build(body, endpoint ? { endpoint } : {});
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(GatewayError);
    expect((caught as GatewayError).status).toBe(400);
    expect((caught as GatewayError).param).toBe(param);
  });
});

describe('Anthropic response translation', () => {
  it('turns text, tool_use, stop_reason and usage into a chat.completion', () => {
    const out = t.translateResponse(
      'chat',
      enc({
        id: 'msg_01',
        type: 'message',
        role: 'assistant',
        model: 'claude-sonnet-4-5',
        content: [
          { type: 'text', text: 'Let me check.' },
          { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
        ],
        stop_reason: 'tool_use',
        stop_sequence: null,
        usage: { input_tokens: 100, output_tokens: 20, cache_read_input_tokens: 50, cache_creation_input_tokens: 10 },
      }),
      'claude',
    );
    const body = JSON.parse(out.body as string);
    expect(body).toMatchObject({
      id: 'chatcmpl-msg_01',
      object: 'chat.completion',
      model: 'claude',
      choices: [
        {
          index: 0,
          finish_reason: 'tool_calls',
          message: {
            role: 'assistant',
            content: 'Let me check.',
            tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }],
          },
        },
      ],
      usage: { prompt_tokens: 160, completion_tokens: 20, total_tokens: 180, prompt_tokens_details: { cached_tokens: 50 } },
    });
    expect(out.usage).toEqual({ prompt_tokens: 160, completion_tokens: 20, total_tokens: 180 });
    expect(out.toolCalls).toEqual(['get_weather']);
    expect(out.finishReason).toBe('tool_calls');
  });

  it.each([
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop'],
    ['max_tokens', 'length'],
    ['tool_use', 'tool_calls'],
    ['refusal', 'content_filter'],
  ])('maps stop_reason %s to finish_reason %s', (stop, finish) => {
    const out = t.translateResponse('chat', enc({ id: 'm', content: [{ type: 'text', text: 'x' }], stop_reason: stop, usage: { input_tokens: 1, output_tokens: 1 } }), 'c');
    expect(JSON.parse(out.body as string).choices[0].finish_reason).toBe(finish);
  });

  it('reports no usage when the upstream sent none, so the gateway estimates instead of billing zero', () => {
    for (const usage of [undefined, null]) {
      const out = t.translateResponse('chat', enc({ id: 'm', content: [{ type: 'text', text: 'x' }], stop_reason: 'end_turn', usage }), 'c');
      expect(out.usage).toBeUndefined();
      expect(JSON.parse(out.body as string).usage).toBeUndefined();
    }
  });

  it('answers null content when the model only called tools', () => {
    const out = t.translateResponse('chat', enc({ id: 'm', content: [{ type: 'tool_use', id: 't', name: 'f', input: {} }], stop_reason: 'tool_use', usage: {} }), 'c');
    expect(JSON.parse(out.body as string).choices[0].message.content).toBeNull();
  });

  it('answers a text_completion for the legacy completions endpoint', () => {
    const out = t.translateResponse('completions', enc({ id: 'm', content: [{ type: 'text', text: ' there was' }], stop_reason: 'max_tokens', usage: { input_tokens: 4, output_tokens: 3 } }), 'c');
    expect(JSON.parse(out.body as string)).toMatchObject({ object: 'text_completion', choices: [{ text: ' there was', finish_reason: 'length' }] });
    expect(JSON.parse(out.body as string).id).toMatch(/^cmpl-/);
  });

  it('rejects a body that is not a Messages response as a bad upstream response', () => {
    expect(() => t.translateResponse('chat', new TextEncoder().encode('<html>'), 'c')).toThrow(expect.objectContaining({ code: 'upstream_bad_response', status: 502 }));
  });
});

describe('Anthropic error translation', () => {
  it.each([
    [400, 'invalid_request_error', 400, 'invalid_request_error'],
    [401, 'authentication_error', 401, 'invalid_request_error'],
    [403, 'permission_error', 403, 'invalid_request_error'],
    [404, 'not_found_error', 404, 'invalid_request_error'],
    [413, 'request_too_large', 413, 'invalid_request_error'],
    [429, 'rate_limit_error', 429, 'requests'],
    [500, 'api_error', 500, 'server_error'],
    [529, 'overloaded_error', 503, 'server_error'],
  ])('maps %i %s to %i with type %s, keeping the message', (status, type, expectStatus, expectType) => {
    const out = t.translateError(status, enc({ type: 'error', error: { type, message: `boom ${type}` } }));
    expect(out.status).toBe(expectStatus);
    expect(JSON.parse(out.body as string)).toEqual({ error: { message: `boom ${type}`, type: expectType, param: null, code: expect.any(String) } });
  });

  it("maps Anthropic's 'prompt is too long' to OpenAI's context_length_exceeded, which clients trim on", () => {
    const message = 'prompt is too long: 250000 tokens > 200000 maximum';
    const out = t.translateError(400, enc({ type: 'error', error: { type: 'invalid_request_error', message } }));
    expect(out.status).toBe(400);
    expect(JSON.parse(out.body as string)).toEqual({ error: { message, type: 'invalid_request_error', param: 'messages', code: 'context_length_exceeded' } });
  });

  it('maps a non-JSON 529 by status alone', () => {
    const out = t.translateError(529, new TextEncoder().encode('<html>overloaded</html>'));
    expect(out.status).toBe(503);
    expect(JSON.parse(out.body as string).error.type).toBe('server_error');
  });
});
