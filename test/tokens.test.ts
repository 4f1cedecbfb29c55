import { describe, expect, it } from 'vitest';
import { functionCallingTestCases } from 'gpt-tokenizer/fixtures/functionCallingTestCases';
import type { ModelConfig } from '../gateway/config/schema.js';
import { encodingCounter, encodingForModel } from '../gateway/tokens/encodings.js';
import { createRequire } from 'node:module';
import { completionAllowance, setMaxTokens } from '../gateway/tokens/max-tokens.js';
import { createTokenCounter } from '../gateway/tokens/token-counter.js';

const counter = createTokenCounter({ token_estimator: { cjk_per_char: 1.5, other_per_char: 0.25 } });
const model = (name: string, tokenizer: ModelConfig['tokenizer'] = 'auto'): ModelConfig => ({ backend: 'b', model: name, tokenizer });

// The example of OpenAI's cookbook "How to count tokens with tiktoken"; the API reported
// 129 prompt tokens for gpt-3.5-turbo / gpt-4 and 124 for gpt-4o / gpt-4o-mini.
const COOKBOOK = [
  { role: 'system', content: 'You are a helpful, pattern-following assistant that translates corporate jargon into plain English.' },
  { role: 'system', name: 'example_user', content: 'New synergies will help drive top-line growth.' },
  { role: 'system', name: 'example_assistant', content: 'Things working well together will increase revenue.' },
  { role: 'system', name: 'example_user', content: "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage." },
  { role: 'system', name: 'example_assistant', content: "Let's talk later when we're less busy about how to do better." },
  { role: 'user', content: "This late pivot means we don't have time to boil the ocean for the client deliverable." },
];

// The cookbook's tool example: the API reported 105 prompt tokens for gpt-3.5-turbo / gpt-4, 101 for gpt-4o.
const WEATHER = {
  messages: [
    { role: 'system', content: 'You are a helpful assistant that can answer to questions about the weather.' },
    { role: 'user', content: "What's the weather like in San Francisco?" },
  ],
  tools: [
    {
      type: 'function',
      function: {
        name: 'get_current_weather',
        description: 'Get the current weather in a given location',
        parameters: {
          type: 'object',
          properties: {
            location: { type: 'string', description: 'The city and state, e.g. San Francisco, CA' },
            unit: { type: 'string', description: 'The unit of temperature to return', enum: ['celsius', 'fahrenheit'] },
          },
          required: ['location'],
        },
      },
    },
  ],
};

describe('exact prompt-token counts for OpenAI models', () => {
  it('counts the cookbook conversation as OpenAI billed it for gpt-4o and gpt-4', () => {
    expect(counter.countPrompt('chat', { messages: COOKBOOK }, model('gpt-4o'))).toBe(124);
    expect(counter.countPrompt('chat', { messages: COOKBOOK }, model('gpt-4o-mini'))).toBe(124);
    expect(counter.countPrompt('chat', { messages: COOKBOOK }, model('gpt-4-0613'))).toBe(129);
    expect(counter.countPrompt('chat', { messages: COOKBOOK }, model('gpt-3.5-turbo'))).toBe(129);
  });

  it('counts tool definitions as OpenAI billed them for gpt-4o and gpt-4', () => {
    expect(counter.countPrompt('chat', WEATHER, model('gpt-4o'))).toBe(101);
    expect(counter.countPrompt('chat', WEATHER, model('gpt-4'))).toBe(105);
  });

  it('counts the same with the legacy functions field as with tools', () => {
    const legacy = { messages: WEATHER.messages, functions: WEATHER.tools.map((t) => t.function) };
    expect(counter.countPrompt('chat', legacy, model('gpt-4o'))).toBe(101);
  });

  it.each([
    [{ messages: [{ role: 'user', content: 'hello' }] }, 8],
    [{ messages: [{ role: 'user', content: 'hello world' }] }, 9],
    [{ messages: [{ role: 'system', content: "# Important: you're the best robot" }, { role: 'user', content: 'hello robot' }, { role: 'assistant', content: 'hello world' }] }, 26],
    [{ messages: [{ role: 'user', content: 'hello' }], tools: [{ type: 'function', function: { name: 'foo', parameters: { type: 'object', properties: {} } } }] }, 31],
    [{ messages: [{ role: 'user', content: 'hello' }], tools: [{ type: 'function', function: { name: 'foo', parameters: { type: 'object', properties: {} } } }], tool_choice: 'none' }, 32],
    [{ messages: [{ role: 'user', content: 'hello' }], tools: [{ type: 'function', function: { name: 'foo', parameters: { type: 'object', properties: {} } } }], tool_choice: { type: 'function', function: { name: 'foo' } } }, 36],
    [{ messages: [{ role: 'user', content: 'hello world' }, { role: 'function', name: 'do_stuff', content: '{}' }] }, 16],
    [{ messages: [{ role: 'assistant', content: '', function_call: { name: 'do_stuff', arguments: '{"foo": "bar", "baz": 1.5}' } }] }, 27],
    [{ messages: [{ role: 'system', content: 'Hello' }, { role: 'user', content: 'Hi there' }], functions: [{ name: 'do_stuff', parameters: { type: 'object', properties: {} } }] }, 36],
  ])('matches the known gpt-4o count of case %#', (body, tokens) => {
    expect(counter.countPrompt('chat', body, model('gpt-4o'))).toBe(tokens);
  });

  it('matches every function-calling count recorded in gpt-tokenizer’s fixtures', () => {
    expect(functionCallingTestCases.length).toBeGreaterThan(20);
    for (const t of functionCallingTestCases) {
      const body = { messages: t.messages, functions: t.functions, function_call: t.function_call };
      expect(counter.countPrompt('chat', body as Record<string, unknown>, model('gpt-4o'))).toBe(t.tokens);
    }
  });

  it('counts an assistant tool call like a function call', () => {
    const asFunctionCall = { messages: [{ role: 'assistant', content: '', function_call: { name: 'do_stuff', arguments: '{"a":1}' } }] };
    const asToolCall = { messages: [{ role: 'assistant', content: '', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'do_stuff', arguments: '{"a":1}' } }] }] };
    expect(counter.countPrompt('chat', asToolCall, model('gpt-4o'))).toBe(counter.countPrompt('chat', asFunctionCall, model('gpt-4o')));
  });

  it('counts text parts of array content like the same string content', () => {
    const str = { messages: [{ role: 'user', content: 'hello world' }] };
    const parts = { messages: [{ role: 'user', content: [{ type: 'text', text: 'hello world' }] }] };
    expect(counter.countPrompt('chat', parts, model('gpt-4o'))).toBe(counter.countPrompt('chat', str, model('gpt-4o')));
    const img = { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:,', detail: 'low' } }] }] };
    expect(counter.countPrompt('chat', img, model('gpt-4o'))).toBe(3 + 1 + 85 + 3);
  });

  it('counts special-token text typed by a user as ordinary text instead of throwing', () => {
    expect(counter.countPrompt('chat', { messages: [{ role: 'user', content: 'say <|endoftext|> now' }] }, model('gpt-4o'))).toBeGreaterThan(8);
  });

  it('counts completions prompts and embeddings inputs without chat overhead', () => {
    expect(counter.countPrompt('completions', { prompt: 'hello world' }, model('gpt-3.5-turbo-instruct'))).toBe(2);
    expect(counter.countPrompt('embeddings', { input: ['hello', 'hello world'] }, model('text-embedding-3-small'))).toBe(3);
    expect(counter.countPrompt('embeddings', { input: [1, 2, 3, 4] }, model('text-embedding-3-small'))).toBe(4);
  });

  it('picks o200k for the gpt-4o, gpt-4.1, gpt-5 and o-series families and cl100k for gpt-4 and gpt-3.5', () => {
    for (const m of ['gpt-4o', 'gpt-4o-mini', 'gpt-4.1', 'gpt-5-mini', 'o1', 'o3-mini', 'o4-mini', 'openai/gpt-4o']) expect(encodingForModel(m)).toBe('o200k');
    for (const m of ['gpt-4', 'gpt-4-turbo', 'gpt-3.5-turbo', 'text-embedding-3-small']) expect(encodingForModel(m)).toBe('cl100k');
    for (const m of ['claude-3-5-sonnet', 'llama-3.1-8b', 'qwen2.5', 'o']) expect(encodingForModel(m)).toBeUndefined();
  });

  it('obeys an explicit tokenizer over the model name', () => {
    const body = { messages: COOKBOOK };
    expect(counter.countPrompt('chat', body, model('my-proxy-name', 'o200k'))).toBe(124);
    expect(counter.countPrompt('chat', body, model('gpt-4o', 'cl100k'))).toBe(129);
  });
});

describe('exact counting stays linear on hostile text', () => {
  const raw = createRequire(import.meta.url)('gpt-tokenizer/cjs/encoding/o200k_base') as { countTokens(t: string, o?: object): number };
  const ordinary = { disallowedSpecial: new Set<string>() };
  /** Deterministic random lowercase letters (no repeats for gpt-tokenizer's cache to find). */
  const letters = (n: number) => {
    let a = 7;
    let out = '';
    for (let i = 0; i < n; i++) {
      a = (a * 1103515245 + 12345) >>> 0;
      out += String.fromCharCode(97 + ((a >>> 16) % 26));
    }
    return out;
  };

  it('counts a 400,000-character word (one BPE pre-token: quadratic, minutes, if counted whole)', () => {
    const n = encodingCounter('o200k')(`say ${letters(400_000)} please`);
    expect(n).toBeGreaterThan(400_000 / 6);
    expect(n).toBeLessThan(400_000 / 1.5);
  });

  it('counts 400,000 spaces, tabs or newlines (a whitespace run is one pre-token too: quadratic if counted whole)', () => {
    const count = encodingCounter('o200k');
    for (const ws of [' ', '\t', '\n']) {
      const n = count(`a${ws.repeat(400_000)}b`);
      expect(n).toBeGreaterThan(2);
      expect(n).toBeLessThan(400_000);
    }
  });

  it('gives the same count as BPE whole for ordinary text, and nearly the same for long runs', () => {
    const count = encodingCounter('o200k');
    const prose = 'The quick brown fox jumps over the lazy dog. '.repeat(200);
    expect(count(prose)).toBe(raw.countTokens(prose, ordinary));
    const run = letters(3000);
    const cjk = '我们今天讨论语言模型网关的设计与实现细节'.repeat(60); // one 1,200-character run
    for (const t of [run, cjk, `url: https://example.com/${letters(1000)}`]) {
      const whole = raw.countTokens(t, ordinary);
      expect(Math.abs(count(t) - whole) / whole).toBeLessThan(0.03);
    }
  });

  it('extrapolates beyond a million characters from the exact count of the first million', () => {
    const count = encodingCounter('o200k');
    const unit = 'Tokens are counted exactly up to a point. ';
    const huge = unit.repeat(Math.ceil(3_000_000 / unit.length));
    const perUnit = raw.countTokens(unit.repeat(100), ordinary) / 100;
    expect(count(huge) / (huge.length / unit.length)).toBeCloseTo(perUnit, 0);
  });
});

describe('the estimator for other backends', () => {
  it('charges about 1.5 tokens per CJK character and 0.25 per other character, rounded up', () => {
    const count = counter.textCounter(model('llama-3', 'auto'));
    expect(count('abcdefgh')).toBe(2);
    expect(count('abcdefghi')).toBe(3);
    expect(count('你好世界')).toBe(6);
    expect(count('こんにちは')).toBe(8);
    expect(count('안녕')).toBe(3);
    expect(count('hi 你好')).toBe(Math.ceil(3 * 0.25 + 2 * 1.5));
  });

  it('never counts fewer tokens than o200k (a modern vocabulary) for other scripts and emoji', () => {
    const count = counter.textCounter(model('llama-3', 'auto'));
    const o200k = encodingCounter('o200k');
    for (const t of ['Привет, как дела? Сегодня хорошая погода.', 'नमस्ते, आप कैसे हैं? आज मौसम अच्छा है।', 'สวัสดีครับ วันนี้อากาศดีมาก', 'مرحبا، كيف حالك اليوم؟', 'שלום, מה שלומך היום?', '😀🎉🚀👍🔥', 'Ελληνικά κείμενα εδώ', 'ნუ გეშინია']) {
      expect(count(t), t).toBeGreaterThanOrEqual(o200k(t));
    }
    expect(count('😀')).toBe(2); // one character, not two UTF-16 units at the Latin rate
  });

  it('uses the configured rates', () => {
    const c = createTokenCounter({ token_estimator: { cjk_per_char: 2, other_per_char: 0.5 } });
    expect(c.textCounter(model('x', 'estimate'))('ab你')).toBe(3);
  });

  it('adds the chat overhead to estimated message text', () => {
    // 3 per message + "user"(1) + "abcdefgh"(2) + 3 priming
    expect(counter.countPrompt('chat', { messages: [{ role: 'user', content: 'abcdefgh' }] }, model('claude-x'))).toBe(9);
  });
});

describe('the completion allowance at admission', () => {
  it('prefers max_completion_tokens, then max_tokens, then the alias default, then 4096', () => {
    const m = { ...model('gpt-4o'), default_max_tokens: 1000 };
    expect(completionAllowance('chat', { max_completion_tokens: 10, max_tokens: 20 }, m)).toBe(10);
    expect(completionAllowance('chat', { max_tokens: 20 }, m)).toBe(20);
    expect(completionAllowance('chat', {}, m)).toBe(1000);
    expect(completionAllowance('chat', {}, model('gpt-4o'))).toBe(4096);
    expect(completionAllowance('embeddings', { max_tokens: 20 }, m)).toBe(0);
  });

  it('clamps whichever limit field the client used', () => {
    const a: Record<string, unknown> = { max_completion_tokens: 100 };
    setMaxTokens(a, 10);
    expect(a).toEqual({ max_completion_tokens: 10 });
    const b: Record<string, unknown> = {};
    setMaxTokens(b, 10);
    expect(b).toEqual({ max_tokens: 10 });
  });
});
