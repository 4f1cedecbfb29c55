import { createParser } from 'eventsource-parser';
import { describe, expect, it } from 'vitest';
import { createAnthropicTranslator } from '../gateway/providers/anthropic/translator.js';
import type { Endpoint, StreamOptions, StreamTranslator } from '../gateway/providers/types.js';

/** Recorded-style Anthropic streams, in the documented wire format (event + data lines). */
function ev(type: string, data: Record<string, unknown>): string {
  return `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
}

const TEXT_STREAM = [
  ev('message_start', { message: { id: 'msg_abc', type: 'message', role: 'assistant', model: 'claude-sonnet-4-5', content: [], stop_reason: null, usage: { input_tokens: 25, output_tokens: 1, cache_read_input_tokens: 5 } } }),
  ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
  ev('ping', {}),
  ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Hello' } }),
  ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: ', 世界! ' } }),
  ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'How are you?' } }),
  ev('content_block_stop', { index: 0 }),
  ev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 15 } }),
  ev('message_stop', {}),
].join('');

const TOOL_STREAM = [
  ev('message_start', { message: { id: 'msg_tool', usage: { input_tokens: 400, output_tokens: 1 } } }),
  ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
  ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Checking both.' } }),
  ev('content_block_stop', { index: 0 }),
  ev('content_block_start', { index: 1, content_block: { type: 'tool_use', id: 'toolu_01', name: 'get_weather', input: {} } }),
  ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: '' } }),
  ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: '{"city": "San' } }),
  ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: ' Francisco"}' } }),
  ev('content_block_stop', { index: 1 }),
  ev('content_block_start', { index: 2, content_block: { type: 'tool_use', id: 'toolu_02', name: 'get_time', input: {} } }),
  ev('content_block_delta', { index: 2, delta: { type: 'input_json_delta', partial_json: '{"tz":"PST"}' } }),
  ev('content_block_stop', { index: 2 }),
  ev('message_delta', { delta: { stop_reason: 'tool_use' }, usage: { output_tokens: 89 } }),
  ev('message_stop', {}),
].join('');

const ERROR_STREAM = [
  ev('message_start', { message: { id: 'msg_err', usage: { input_tokens: 3, output_tokens: 1 } } }),
  ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
  ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'partial' } }),
  ev('error', { error: { type: 'overloaded_error', message: 'Overloaded' } }),
].join('');

/** Seeded PRNG so a failing split can be reproduced from the seed in the test name. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomSplits(text: string, rand: () => number): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    const n = 1 + Math.floor(rand() * 40);
    out.push(text.slice(i, i + n));
    i += n;
  }
  return out;
}

function run(stream: string, seed: number, opts: Partial<StreamOptions> = {}, endpoint: Endpoint = 'chat'): { out: string; st: StreamTranslator } {
  const st = createAnthropicTranslator().createStreamTranslator(endpoint, { clientWantsUsage: false, injectedUsage: false, clientModel: 'claude', collectText: false, ...opts });
  let out = '';
  const parser = createParser({ onEvent: (e) => (out += st.push({ event: e.event, data: e.data })) });
  for (const piece of randomSplits(stream, rng(seed))) parser.feed(piece);
  return { out, st };
}

/** Parses the translator's output as an OpenAI client would. */
function clientView(out: string) {
  const chunks: Array<Record<string, any>> = [];
  let done = false;
  const parser = createParser({
    onEvent: (e) => {
      if (e.data === '[DONE]') done = true;
      else chunks.push(JSON.parse(e.data));
    },
  });
  parser.feed(out);
  let content = '';
  const tools: Array<{ id?: string; name?: string; args: string }> = [];
  let finish: string | null = null;
  for (const c of chunks) {
    for (const ch of c.choices ?? []) {
      if (ch.delta?.content) content += ch.delta.content;
      if (ch.text) content += ch.text;
      for (const tc of ch.delta?.tool_calls ?? []) {
        tools[tc.index] ??= { args: '' };
        if (tc.id) tools[tc.index].id = tc.id;
        if (tc.function?.name) tools[tc.index].name = tc.function.name;
        tools[tc.index].args += tc.function?.arguments ?? '';
      }
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  return { chunks, done, content, tools, finish };
}

const SEEDS = [1, 2, 3, 42, 1337, 9001];

describe('Anthropic stream translation', () => {
  it.each(SEEDS)('relays text deltas as chat.completion.chunk events whatever the chunk splits (seed %i)', (seed) => {
    const { out, st } = run(TEXT_STREAM, seed, { collectText: true });
    const view = clientView(out);
    expect(view.content).toBe('Hello, 世界! How are you?');
    expect(view.finish).toBe('stop');
    expect(view.done).toBe(true);
    expect(view.chunks[0]).toMatchObject({ id: 'chatcmpl-msg_abc', object: 'chat.completion.chunk', model: 'claude', choices: [{ delta: { role: 'assistant', content: '' } }] });
    expect(view.chunks.every((c) => !('usage' in c))).toBe(true);
    expect(st.state).toMatchObject({ done: true, finishReason: 'stop', usage: { prompt_tokens: 30, completion_tokens: 15, total_tokens: 45 }, text: 'Hello, 世界! How are you?' });
    expect(st.state.contentChars).toBe('Hello, 世界! How are you?'.length);
  });

  it.each(SEEDS)('assembles tool-call arguments from input_json_delta events (seed %i)', (seed) => {
    const { out, st } = run(TOOL_STREAM, seed);
    const view = clientView(out);
    expect(view.content).toBe('Checking both.');
    expect(view.tools).toEqual([
      { id: 'toolu_01', name: 'get_weather', args: '{"city": "San Francisco"}' },
      { id: 'toolu_02', name: 'get_time', args: '{"tz":"PST"}' },
    ]);
    expect(view.finish).toBe('tool_calls');
    expect(st.state.toolCalls).toEqual(['get_weather', 'get_time']);
  });

  it('sends a final usage chunk with empty choices before [DONE] when the client asked for usage', () => {
    const { out } = run(TEXT_STREAM, 7, { clientWantsUsage: true });
    const view = clientView(out);
    const last = view.chunks[view.chunks.length - 1];
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual({ prompt_tokens: 30, completion_tokens: 15, total_tokens: 45, prompt_tokens_details: { cached_tokens: 5 } });
    expect(view.chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    expect(out.endsWith('data: [DONE]\n\n')).toBe(true);
  });

  it.each(SEEDS)('relays an error event as an OpenAI error and never claims the stream completed (seed %i)', (seed) => {
    const { out, st } = run(ERROR_STREAM, seed);
    expect(out).not.toContain('[DONE]');
    const errLine = out.trim().split('\n\n').pop()!;
    expect(JSON.parse(errLine.slice('data: '.length))).toEqual({ error: { message: 'Overloaded', type: 'server_error', param: null, code: 'overloaded' } });
    expect(st.state.done).toBe(false);
    expect(st.state.error).toEqual({ message: 'Overloaded', type: 'server_error', code: 'overloaded' });
    expect(st.state.usage?.prompt_tokens).toBe(3);
  });

  it('emits text_completion chunks for the legacy completions endpoint', () => {
    const { out } = run(TEXT_STREAM, 5, {}, 'completions');
    const view = clientView(out);
    expect(view.content).toBe('Hello, 世界! How are you?');
    expect(view.chunks.every((c) => c.object === 'text_completion')).toBe(true);
    expect(view.chunks.every((c) => c.id === 'cmpl-msg_abc')).toBe(true); // OpenAI's completions id shape
  });

  it('ignores events after the stream ended', () => {
    const { st } = run(TEXT_STREAM, 3);
    expect(st.push({ event: 'content_block_delta', data: JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'late' } }) })).toBe('');
  });
});

describe('Anthropic stream edge cases', () => {
  it('gives a tool call that streamed no input the arguments "{}", as a whole answer does', () => {
    const stream = [
      ev('message_start', { message: { id: 'msg_noargs', usage: { input_tokens: 10, output_tokens: 1 } } }),
      ev('content_block_start', { index: 0, content_block: { type: 'tool_use', id: 'toolu_n', name: 'list_files', input: {} } }),
      ev('content_block_delta', { index: 0, delta: { type: 'input_json_delta', partial_json: '' } }),
      ev('content_block_stop', { index: 0 }),
      ev('content_block_start', { index: 1, content_block: { type: 'tool_use', id: 'toolu_a', name: 'get_weather', input: {} } }),
      ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: '{"city":"Oslo"}' } }),
      ev('content_block_stop', { index: 1 }),
      ev('message_delta', { delta: { stop_reason: 'tool_use' }, usage: { output_tokens: 9 } }),
      ev('message_stop', {}),
    ].join('');
    const view = clientView(run(stream, 7).out);
    expect(view.tools).toEqual([
      { id: 'toolu_n', name: 'list_files', args: '{}' },
      { id: 'toolu_a', name: 'get_weather', args: '{"city":"Oslo"}' },
    ]);
    expect(JSON.parse(view.tools[0]!.args)).toEqual({});
  });

  it('sends one finish chunk, ignoring a message_delta whose stop_reason is null', () => {
    const stream = [
      ev('message_start', { message: { id: 'msg_2d', usage: { input_tokens: 3, output_tokens: 1 } } }),
      ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
      ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'hi' } }),
      ev('message_delta', { delta: { stop_reason: null }, usage: { output_tokens: 2 } }),
      ev('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 3 } }),
      ev('message_delta', { delta: { stop_reason: 'max_tokens' }, usage: { output_tokens: 3 } }),
      ev('message_stop', {}),
    ].join('');
    const { out, st } = run(stream, 3);
    const finishes = clientView(out).chunks.flatMap((c) => (c.choices ?? []).map((ch: { finish_reason?: string | null }) => ch.finish_reason)).filter(Boolean);
    expect(finishes).toEqual(['stop']);
    expect(st.state.usage?.completion_tokens).toBe(3);
  });
});
