/**
 * The local backend's OpenAI wire format for tool calls, read by the official openai SDK.
 * The tiny random-weight model never decides to call a function, so the end-to-end
 * tests (local-backend.test.ts) cover tools in the prompt and tool results in the
 * history; this covers what a real model's call turns into on the wire: the JSON answer
 * and the stream frames, in the order the handler writes them (role, text, tool calls,
 * finish, usage), served from a real socket and accumulated by the SDK's own stream helper.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { chatCompletion, createChatChunks, SSE_DONE } from '../local-backend/openai-wire.js';
import type { GenerationResult } from '../local-backend/generate.js';

const meta = { id: 'chatcmpl-local-1', created: 1_700_000_000, model: 'local' };
const result: GenerationResult = {
  text: '',
  finishReason: 'tool_calls',
  promptTokens: 42,
  completionTokens: 17,
  toolCalls: [
    { name: 'get_weather', arguments: '{"city":"Paris"}' },
    { name: 'get_time', arguments: '{"tz":"Europe/Paris"}' },
  ],
};

const servers: Server[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

/** An SDK client on a real socket whose server answers every request with the given body (a stream in pieces, as written). */
async function clientAnswering(body: string | string[], contentType: string): Promise<OpenAI> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': contentType });
    for (const piece of Array.isArray(body) ? body : [body]) res.write(piece);
    res.end();
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return new OpenAI({ apiKey: 'unused', baseURL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, maxRetries: 0 });
}

const params = {
  model: 'local',
  messages: [{ role: 'user' as const, content: 'Weather and time in Paris?' }],
  tools: [
    { type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
    { type: 'function' as const, function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } } },
  ],
};

describe('local backend wire format: tool calls', () => {
  it('a JSON answer carries tool_calls with ids, null content and finish_reason tool_calls', async () => {
    const client = await clientAnswering(JSON.stringify(chatCompletion(meta, result)), 'application/json');
    const r = await client.chat.completions.create(params);
    const msg = r.choices[0].message;
    expect(r.choices[0].finish_reason).toBe('tool_calls');
    expect(msg.content).toBeNull();
    expect(msg.tool_calls).toHaveLength(2);
    const calls = msg.tool_calls!.map((c) => (c.type === 'function' ? c.function : undefined));
    expect(calls).toEqual([
      { name: 'get_weather', arguments: '{"city":"Paris"}' },
      { name: 'get_time', arguments: '{"tz":"Europe/Paris"}' },
    ]);
    expect(new Set(msg.tool_calls!.map((c) => c.id)).size).toBe(2);
    for (const c of msg.tool_calls!) expect(c.id).toMatch(/^call-[0-9a-f]{24}$/);
    expect(r.usage).toEqual({ prompt_tokens: 42, completion_tokens: 17, total_tokens: 59 });
  });

  it('a stream carries them as deltas the SDK accumulates into the same calls, then the usage chunk', async () => {
    const chunks = createChatChunks(meta, true);
    const sse = [chunks.role(), chunks.toolCalls(result.toolCalls), chunks.finish(result.finishReason), chunks.usage(result), SSE_DONE];
    const client = await clientAnswering(sse, 'text/event-stream');
    const stream = client.chat.completions.stream({ ...params, stream_options: { include_usage: true } });
    const final = await stream.finalChatCompletion();
    expect(final.choices[0].finish_reason).toBe('tool_calls');
    const calls = final.choices[0].message.tool_calls!.map((c) => (c.type === 'function' ? { name: c.function.name, args: JSON.parse(c.function.arguments) } : undefined));
    expect(calls).toEqual([
      { name: 'get_weather', args: { city: 'Paris' } },
      { name: 'get_time', args: { tz: 'Europe/Paris' } },
    ]);
    expect(final.usage).toEqual({ prompt_tokens: 42, completion_tokens: 17, total_tokens: 59 });
  });
});
