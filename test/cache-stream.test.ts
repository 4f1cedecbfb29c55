import { describe, expect, it } from 'vitest';
import { Stream } from 'openai/streaming';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import { replayChunks, replaySse } from '../gateway/cache/replay.js';
import { createStreamAssembler } from '../gateway/cache/assemble.js';
import type { CacheEntry } from '../gateway/cache/entry.js';

const usage = { prompt_tokens: 12, completion_tokens: 9, total_tokens: 21 };

function chatEntry(message: Record<string, unknown>, finish = 'stop'): CacheEntry {
  return {
    v: 1,
    endpoint: 'chat',
    response: {
      id: 'chatcmpl-1',
      object: 'chat.completion',
      created: 1700000000,
      model: 'gpt-4o-mini',
      system_fingerprint: 'fp_1',
      choices: [{ index: 0, message: { role: 'assistant', refusal: null, ...message }, logprobs: null, finish_reason: finish }],
      usage,
    },
    usage,
    expiresAtMs: Date.now() + 60_000,
  };
}

const textEntry = chatEntry({ content: 'Paris is the capital of France. Ünïcödé ✓ 🇫🇷' });
const toolEntry = chatEntry(
  {
    content: null,
    tool_calls: [
      { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","unit":"c"}' } },
      { id: 'call_b', type: 'function', function: { name: 'get_time', arguments: '{"tz":"Europe/Paris"}' } },
    ],
  },
  'tool_calls',
);

async function parseWithSdk(sse: string): Promise<ChatCompletionChunk[]> {
  const stream = Stream.fromSSEResponse<ChatCompletionChunk>(new Response(sse, { headers: { 'content-type': 'text/event-stream' } }), new AbortController());
  const out: ChatCompletionChunk[] = [];
  for await (const chunk of stream) out.push(chunk);
  return out;
}

/** Splits text at random places (a stream arrives in arbitrary pieces). */
function randomSplits(text: string, seed: number): string[] {
  let s = seed;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const out: string[] = [];
  for (let i = 0; i < text.length; ) {
    const n = 1 + Math.floor(rnd() * 40);
    out.push(text.slice(i, i + n));
    i += n;
  }
  return out;
}

describe('stream replay of a cache entry', () => {
  it('is parsed by the openai SDK into the same text, with the usage chunk when include_usage was asked for', async () => {
    const chunks = await parseWithSdk(replaySse(textEntry, { includeUsage: true, model: 'my-alias', chunkChars: 7 }));
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe((textEntry.response.choices as Array<{ message: { content: string } }>)[0].message.content);
    const last = chunks[chunks.length - 1];
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual(usage);
    for (const c of chunks.slice(0, -1)) expect(c.usage).toBeNull();
    expect(chunks.every((c) => c.model === 'my-alias' && c.object === 'chat.completion.chunk' && c.id === 'chatcmpl-1')).toBe(true);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    expect(chunks[chunks.length - 2].choices[0].finish_reason).toBe('stop');
  });

  it('omits usage from every chunk when include_usage was not asked for, and ends with [DONE]', async () => {
    const sse = replaySse(textEntry, { includeUsage: false });
    expect(sse.endsWith('data: [DONE]\n\n')).toBe(true);
    const chunks = await parseWithSdk(sse);
    expect(chunks.length).toBeGreaterThan(2);
    for (const c of chunks) {
      expect('usage' in c).toBe(false);
      expect(c.choices).toHaveLength(1);
    }
  });

  it('replays tool calls as a name chunk followed by argument deltas', async () => {
    const chunks = await parseWithSdk(replaySse(toolEntry, { includeUsage: false, chunkChars: 5 }));
    const calls: Array<{ id?: string; name: string; args: string }> = [];
    for (const c of chunks) {
      for (const tc of c.choices[0]?.delta.tool_calls ?? []) {
        const acc = (calls[tc.index] ??= { name: '', args: '' });
        if (tc.id) acc.id = tc.id;
        acc.name += tc.function?.name ?? '';
        acc.args += tc.function?.arguments ?? '';
      }
    }
    expect(calls).toEqual([
      { id: 'call_a', name: 'get_weather', args: '{"city":"Paris","unit":"c"}' },
      { id: 'call_b', name: 'get_time', args: '{"tz":"Europe/Paris"}' },
    ]);
    expect(chunks[chunks.length - 1].choices[0].finish_reason).toBe('tool_calls');
  });

  it('replays a completions entry as text_completion chunks', () => {
    const entry: CacheEntry = {
      v: 1,
      endpoint: 'completions',
      response: { id: 'cmpl-1', object: 'text_completion', created: 1, model: 'm', choices: [{ index: 0, text: 'once upon a time', logprobs: null, finish_reason: 'length' }], usage },
      usage,
      expiresAtMs: Date.now() + 1000,
    };
    const chunks = replayChunks(entry, { includeUsage: true, chunkChars: 4 });
    expect(chunks.every((c) => c.object === 'text_completion')).toBe(true);
    expect(chunks.map((c) => (c.choices as Array<{ text: string }>)[0]?.text ?? '').join('')).toBe('once upon a time');
    expect(chunks[chunks.length - 1]).toMatchObject({ choices: [], usage });
  });
});

describe('assembling a cache entry from a stream', () => {
  it("keeps a legacy completions stream's logprobs (parallel arrays, concatenated across chunks)", () => {
    const a = createStreamAssembler('completions');
    const piece = (text: string, lp: Record<string, unknown>, finish: string | null = null) =>
      `data: ${JSON.stringify({ id: 'cmpl-1', object: 'text_completion', created: 1, model: 'm', choices: [{ index: 0, text, logprobs: lp, finish_reason: finish }] })}\n\n`;
    a.push(piece('Hel', { tokens: ['Hel'], token_logprobs: [-0.1], top_logprobs: [{ Hel: -0.1 }], text_offset: [0] }));
    a.push(piece('lo', { tokens: ['lo'], token_logprobs: [-0.2], top_logprobs: [{ lo: -0.2 }], text_offset: [3] }, 'stop'));
    a.push(`data: ${JSON.stringify({ id: 'cmpl-1', object: 'text_completion', created: 1, model: 'm', choices: [], usage })}\n\ndata: [DONE]\n\n`);
    const response = a.finish({ done: true }) as { choices: Array<{ text: string; logprobs: unknown }> };
    expect(response.choices[0]!.text).toBe('Hello');
    expect(response.choices[0]!.logprobs).toEqual({ tokens: ['Hel', 'lo'], token_logprobs: [-0.1, -0.2], top_logprobs: [{ Hel: -0.1 }, { lo: -0.2 }], text_offset: [0, 3] });
  });

  for (const [name, entry] of [['text', textEntry], ['tool calls', toolEntry]] as const) {
    it(`rebuilds the complete ${name} response from chunks in random splits`, () => {
      for (const seed of [1, 2, 3, 4, 5]) {
        const a = createStreamAssembler('chat');
        for (const piece of randomSplits(replaySse(entry, { includeUsage: true, chunkChars: 3 }), seed)) a.push(piece);
        expect(a.sawDone).toBe(true);
        expect(a.finish({ done: true })).toEqual(entry.response);
      }
    });
  }

  it('merges interleaved choices and takes usage from the stream state when the client got no usage chunk', () => {
    const head = { id: 'x', object: 'chat.completion.chunk', created: 5, model: 'm' };
    const ev = (choices: unknown[]) => `data: ${JSON.stringify({ ...head, choices })}\n\n`;
    const a = createStreamAssembler('chat');
    a.push(ev([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]));
    a.push(ev([{ index: 1, delta: { role: 'assistant', content: 'B' }, finish_reason: null }]));
    a.push(ev([{ index: 0, delta: { content: 'A1' }, finish_reason: null }]));
    a.push(ev([{ index: 0, delta: { content: 'A2' }, finish_reason: 'stop' }]));
    a.push(ev([{ index: 1, delta: {}, finish_reason: 'length' }]) + 'data: [DONE]\n\n');
    const r = a.finish({ done: true, usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } });
    expect(r).toMatchObject({
      object: 'chat.completion',
      choices: [
        { index: 0, message: { content: 'A1A2' }, finish_reason: 'stop' },
        { index: 1, message: { content: 'B' }, finish_reason: 'length' },
      ],
      usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
    });
  });

  it('keeps a tool name that the upstream repeats on every delta, and joins one sent in pieces', () => {
    const head = { id: 'x', object: 'chat.completion.chunk', created: 5, model: 'm' };
    const ev = (delta: unknown, finish: string | null = null) => `data: ${JSON.stringify({ ...head, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    const tc = (index: number, fn: Record<string, string>, id?: string) => ({ tool_calls: [{ index, ...(id ? { id, type: 'function' } : {}), function: fn }] });
    const a = createStreamAssembler('chat');
    a.push(ev({ role: 'assistant', content: null }));
    // Call 0: the whole name on every delta (MiniMax on NIM, some vLLM forks).
    a.push(ev(tc(0, { name: 'get_weather', arguments: '' }, 'call_1')));
    a.push(ev(tc(0, { name: 'get_weather', arguments: '{"city":' })));
    a.push(ev(tc(0, { name: 'get_weather', arguments: '"Paris"}' })));
    // Call 1: the name in two pieces.
    a.push(ev(tc(1, { name: 'get_', arguments: '' }, 'call_2')));
    a.push(ev(tc(1, { name: 'time', arguments: '{}' })));
    a.push(ev({}, 'tool_calls') + `data: ${JSON.stringify({ ...head, choices: [], usage })}\n\ndata: [DONE]\n\n`);
    const r = a.finish({ done: true }) as { choices: Array<{ message: { tool_calls: Array<{ function: { name: string; arguments: string } }> } }> };
    expect(r.choices[0]!.message.tool_calls.map((t) => t.function)).toEqual([
      { name: 'get_weather', arguments: '{"city":"Paris"}' },
      { name: 'get_time', arguments: '{}' },
    ]);
  });

  it("stores content null for a tool-call-only answer whose stream opened with content ''", () => {
    const head = { id: 'x', object: 'chat.completion.chunk', created: 5, model: 'm' };
    const ev = (delta: unknown, finish: string | null = null) => `data: ${JSON.stringify({ ...head, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    const a = createStreamAssembler('chat');
    a.push(ev({ role: 'assistant', content: '' }));
    a.push(ev({ tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'f', arguments: '{}' } }] }));
    a.push(ev({}, 'tool_calls') + `data: ${JSON.stringify({ ...head, choices: [], usage })}\n\ndata: [DONE]\n\n`);
    const r = a.finish({ done: true }) as { choices: Array<{ message: { content: unknown } }> };
    expect(r.choices[0]!.message.content).toBeNull();
    // Without tool calls an empty answer stays an empty string.
    const b = createStreamAssembler('chat');
    b.push(ev({ role: 'assistant', content: '' }) + ev({}, 'stop') + `data: ${JSON.stringify({ ...head, choices: [], usage })}\n\ndata: [DONE]\n\n`);
    expect((b.finish({ done: true }) as { choices: Array<{ message: { content: unknown } }> }).choices[0]!.message.content).toBe('');
  });

  it('keeps reasoning_content, annotations and service_tier through assembly and replay', async () => {
    const entry = chatEntry({
      content: 'See [1].',
      reasoning_content: 'thought about it',
      annotations: [{ type: 'url_citation', url_citation: { url: 'https://example.com', title: 'Ex', start_index: 4, end_index: 7 } }],
    });
    entry.response.service_tier = 'default';
    const sse = replaySse(entry, { includeUsage: true, chunkChars: 4 });
    const chunks = await parseWithSdk(sse);
    expect(chunks.every((c) => (c as { service_tier?: string }).service_tier === 'default')).toBe(true);
    expect(chunks.map((c) => (c.choices[0]?.delta as { reasoning_content?: string } | undefined)?.reasoning_content ?? '').join('')).toBe('thought about it');
    for (const seed of [1, 2, 3]) {
      const a = createStreamAssembler('chat');
      for (const piece of randomSplits(sse, seed)) a.push(piece);
      expect(a.finish({ done: true })).toEqual(entry.response);
    }
  });

  it('stores nothing from a cut-short stream, an error event, an unfinished choice or an unknown usage', () => {
    const full = replaySse(textEntry, { includeUsage: true });
    const cut = full.slice(0, Math.floor(full.length / 2));
    const feed = (text: string) => {
      const a = createStreamAssembler('chat');
      a.push(text);
      return a;
    };
    // Cut: the translator never saw the end.
    expect(feed(cut).finish({ done: false })).toBeUndefined();
    // Whole stream but the upstream reported an error.
    expect(feed(full).finish({ done: true, error: { message: 'boom' } })).toBeUndefined();
    // An error event relayed inside the stream.
    const withError = full.replace('data: [DONE]', `data: ${JSON.stringify({ error: { message: 'overloaded', type: 'server_error' } })}\n\ndata: [DONE]`);
    const errored = feed(withError);
    expect(errored.sawError).toBe(true);
    expect(errored.finish({ done: true })).toBeUndefined();
    // No finish_reason ever arrived.
    const unfinished = full.replace('"finish_reason":"stop"', '"finish_reason":null');
    expect(feed(unfinished).finish({ done: true })).toBeUndefined();
    // No usage chunk and none in the stream state.
    expect(feed(replaySse(textEntry, { includeUsage: false })).finish({ done: true })).toBeUndefined();
    // Control: the same stream, complete, is stored.
    expect(feed(full).finish({ done: true })).toEqual(textEntry.response);
  });
});
