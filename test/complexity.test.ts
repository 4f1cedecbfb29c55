import { describe, expect, it } from 'vitest';
import { ComplexitySchema } from '../gateway/config/schema.js';
import { classifierText, createClassifier, type ComplexityClass } from '../gateway/routing/complexity.js';
import { createEstimator } from '../gateway/tokens/estimate.js';

const estimateTokens = createEstimator({ cjk_per_char: 1.5, other_per_char: 0.25 });

const classify = createClassifier(ComplexitySchema.parse({}));

function run(prompt: string, opts: { tools?: boolean; history?: number; tokens?: number } = {}) {
  const messages: Array<{ role: string; content: string }> = [];
  for (let i = 0; i < (opts.history ?? 0); i++) messages.push({ role: i % 2 ? 'assistant' : 'user', content: 'ok' });
  messages.push({ role: 'user', content: prompt });
  const { text, turns } = classifierText({ messages });
  return classify({ text, turns, promptTokens: opts.tokens ?? estimateTokens(prompt), hasTools: opts.tools ?? false });
}

describe('the complexity classifier with default rules', () => {
  const prompts: Array<[string, ComplexityClass, string]> = [
    ['What is the capital of France?', 'simple', 'prompt_tokens<=200'],
    ['Translate "good morning" into Spanish.', 'simple', 'prompt_tokens<=200'],
    ['法国的首都是哪里？', 'simple', 'prompt_tokens<=200'],
    ['你好，今天天气怎么样？', 'simple', 'prompt_tokens<=200'],
    ['Please analyze the trade-offs of these two caching strategies.', 'complex', 'keyword:analyze'],
    ['Compare PostgreSQL and MySQL for a write-heavy workload.', 'complex', 'keyword:compare'],
    ['请分析这两种缓存策略的优缺点。', 'complex', 'keyword:分析'],
    ['比较一下 Redis 和 Memcached。', 'complex', 'keyword:比较'],
    ['Prove that the square root of 2 is irrational.', 'reasoning', 'keyword:prove'],
    ['Derive the closed form of the Fibonacci sequence.', 'reasoning', 'keyword:derive'],
    ['Solve it step by step: a train leaves at 3pm...', 'reasoning', 'keyword:step by step'],
    ['证明：任意两个奇数之和是偶数。', 'reasoning', 'keyword:证明'],
    ['请推导二次方程的求根公式。', 'reasoning', 'keyword:推导'],
    ['Fix this:\n```js\nconst x = 1\n```', 'medium', 'code'],
  ];

  it.each(prompts)('classifies %j as %s', (prompt, cls, rule) => {
    expect(run(prompt)).toEqual({ class: cls, rule });
  });

  it('does not mistake a word containing a keyword for the keyword', () => {
    expect(run('Please approve the request.').class).toBe('simple');
  });

  it('puts a prompt between the thresholds in medium', () => {
    expect(run('Write a short poem.', { tokens: 500 })).toEqual({ class: 'medium', rule: 'default' });
  });

  it('puts a long prompt in complex', () => {
    expect(run('Summarise this.', { tokens: 5000 })).toEqual({ class: 'complex', rule: 'prompt_tokens>=2000' });
  });

  it('puts a long conversation in complex', () => {
    expect(run('and then?', { history: 12 })).toEqual({ class: 'complex', rule: 'turns>=10' });
  });

  it('lifts a short request with tools to medium', () => {
    expect(run('What is the weather?', { tools: true })).toEqual({ class: 'medium', rule: 'tools' });
  });

  it('lets reasoning keywords win over every other rule', () => {
    expect(run('prove it', { tools: true, tokens: 9000, history: 20 }).class).toBe('reasoning');
  });
});

describe('the complexity classifier with configured rules', () => {
  it('uses keyword lists and thresholds from YAML', () => {
    const custom = createClassifier(
      ComplexitySchema.parse({
        keywords: { reasoning: ['beweise'], complex: ['vergleiche'] },
        thresholds: { simple_max_tokens: 10, complex_min_tokens: 50, long_conversation_turns: 3 },
        tools_min_class: 'complex',
      }),
    );
    expect(custom({ text: 'Beweise den Satz', turns: 1, promptTokens: 5, hasTools: false })).toEqual({ class: 'reasoning', rule: 'keyword:beweise' });
    expect(custom({ text: 'Vergleiche A und B', turns: 1, promptTokens: 5, hasTools: false }).class).toBe('complex');
    expect(custom({ text: 'prove it', turns: 1, promptTokens: 5, hasTools: false }).class).toBe('simple');
    expect(custom({ text: 'x', turns: 1, promptTokens: 20, hasTools: false }).class).toBe('medium');
    expect(custom({ text: 'x', turns: 1, promptTokens: 5, hasTools: true })).toEqual({ class: 'complex', rule: 'tools' });
  });

  it('reads the last user message of a conversation and the prompt of a completion', () => {
    expect(classifierText({ messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'user', content: [{ type: 'text', text: 'c' }] }] })).toEqual({ text: 'c', turns: 3 });
    expect(classifierText({ prompt: 'p' })).toEqual({ text: 'p', turns: 1 });
  });
});

describe('the code-fence signal on hostile text', () => {
  it('scans 400,000 newlines in linear time, and still finds an indented fence', () => {
    expect(classify({ text: '\n'.repeat(400_000) + 'x', turns: 1, promptTokens: 10, hasTools: false }).class).toBeDefined();
    const fenced = classify({ text: 'fix this:\n   ```js\nlet a = 1\n```', turns: 1, promptTokens: 10, hasTools: false });
    const plain = classify({ text: 'fix this:\n   js\nlet a = 1', turns: 1, promptTokens: 10, hasTools: false });
    expect(fenced).not.toEqual(plain);
  });
});
