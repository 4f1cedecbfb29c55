import { describe, expect, it } from 'vitest';
import { createSemanticIndex, normaliseVector, semanticQuery, type SemanticIndex } from '../gateway/cache/semantic.js';
import { createRedisSemanticRecords } from '../gateway/stores/cache/redis-semantic.js';
import type { CacheEntry } from '../gateway/cache/entry.js';
import { bagOfWordsEmbedding } from './support/bow-embedding.js';
import { useRedis } from './support/redis.js';

const redisServer = useRedis();

const THRESHOLD = 0.95;
const usage = { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 };
const entry = (content: string, ttlMs = 60_000): CacheEntry => ({
  v: 1,
  endpoint: 'chat',
  response: { id: 'x', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }], usage },
  usage,
  expiresAtMs: Date.now() + ttlMs,
});
const chat = (question: string, system = 'You answer geography questions.', extra: Record<string, unknown> = {}) => ({
  model: 'gpt-4o-mini',
  temperature: 0,
  messages: [
    { role: 'system', content: system },
    { role: 'user', content: question },
  ],
  ...extra,
});
const vec = (text: string) => normaliseVector(bagOfWordsEmbedding(text))!;

async function remember(index: SemanticIndex, body: Record<string, unknown>, answer: string, id: string, target = 'mock/gpt-4o-mini', ttlMs?: number) {
  const q = semanticQuery('chat', target, body)!;
  await index.add(q.partition, { id, vector: vec(q.text), entry: entry(answer, ttlMs) });
}
async function ask(index: SemanticIndex, body: Record<string, unknown>, target = 'mock/gpt-4o-mini') {
  const q = semanticQuery('chat', target, body)!;
  return index.lookup(q.partition, vec(q.text), THRESHOLD);
}

describe('bag-of-words test embeddings', () => {
  it('put a paraphrase next to the original and an unrelated prompt far away', () => {
    const a = vec('What is the capital of France?');
    const dot = (x: Float32Array, y: Float32Array) => x.reduce((s, v, i) => s + v * y[i], 0);
    expect(dot(a, vec('Tell me the capital of France, please.'))).toBeGreaterThanOrEqual(THRESHOLD);
    expect(dot(a, vec('How do I bake sourdough bread at home?'))).toBeLessThan(0.5);
  });
});

describe('the semantic cache index', () => {
  it('hits for a paraphrase and misses for an unrelated or merely similar prompt', async () => {
    const index = createSemanticIndex({ maxEntries: 100 });
    await remember(index, chat('What is the capital of France?'), 'Paris.', 'k1');
    const hit = await ask(index, chat('Tell me the capital of France, please.'));
    expect(hit?.entry.response.choices).toEqual(entry('Paris.').response.choices);
    expect(hit!.similarity).toBeGreaterThanOrEqual(THRESHOLD);
    expect(await ask(index, chat('How do I bake sourdough bread at home?'))).toBeUndefined();
    expect(await ask(index, chat('What is the capital of Germany?'))).toBeUndefined();
  });

  it('partitions by target, system prompt, tools and the earlier turns', async () => {
    const index = createSemanticIndex({ maxEntries: 100 });
    await remember(index, chat('What is the capital of France?'), 'Paris.', 'k1');
    const same = 'What is the capital of France?';
    expect(await ask(index, chat(same))).toBeDefined();
    expect(await ask(index, chat(same), 'mock/gpt-4o')).toBeUndefined();
    expect(await ask(index, chat(same, 'Answer like a pirate.'))).toBeUndefined();
    expect(await ask(index, chat(same, undefined, { tools: [{ type: 'function', function: { name: 'lookup', parameters: {} } }] }))).toBeUndefined();
    const withHistory = chat(same);
    withHistory.messages.splice(1, 0, { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!' });
    expect(await ask(index, withHistory)).toBeUndefined();
  });

  it('embeds only text: a last user message with an image is not semantically cacheable', () => {
    const body = { messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url: 'data:...' } }] }] };
    expect(semanticQuery('chat', 't', body)).toBeUndefined();
    expect(semanticQuery('chat', 't', { messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }] })?.text).toBe('a\nb');
    expect(semanticQuery('completions', 't', { prompt: 'x' })).toBeUndefined();
  });

  it('holds at most max_entries, dropping the least recently used', async () => {
    const index = createSemanticIndex({ maxEntries: 2 });
    await remember(index, chat('capital of France'), 'Paris', 'a');
    await remember(index, chat('capital of Spain'), 'Madrid', 'b');
    expect(await ask(index, chat('capital of France'))).toBeDefined(); // France is now the most recent
    await remember(index, chat('capital of Italy'), 'Rome', 'c');
    expect(index.size).toBe(2);
    expect(await ask(index, chat('capital of Spain'))).toBeUndefined();
    expect(await ask(index, chat('capital of France'))).toBeDefined();
    expect(await ask(index, chat('capital of Italy'))).toBeDefined();
  });

  it('forgets an entry once it expires', async () => {
    const index = createSemanticIndex({ maxEntries: 10 });
    await remember(index, chat('capital of Peru'), 'Lima', 'p', undefined, 100);
    expect(await ask(index, chat('capital of Peru'))).toBeDefined();
    await new Promise((r) => setTimeout(r, 150));
    expect(await ask(index, chat('capital of Peru'))).toBeUndefined();
    expect(index.size).toBe(0);
  });

  it('shares entries through Redis: a second replica finds what the first one stored', async () => {
    const prefix = `sem-${Date.now()}:`;
    const mk = () => {
      const c = redisServer.client();
      return createSemanticIndex({ maxEntries: 100, syncIntervalMs: 0, store: createRedisSemanticRecords({ redis: c, keyPrefix: prefix }) });
    };
    const first = mk();
    const second = mk();
    expect(await ask(second, chat('What is the capital of France?'))).toBeUndefined();
    await remember(first, chat('What is the capital of France?'), 'Paris.', 'k1');
    const hit = await ask(second, chat('Tell me the capital of France'));
    expect(hit?.id).toBe('k1');
    expect(hit?.entry.response.choices).toEqual(entry('Paris.').response.choices);
    expect(second.size).toBe(1);
    // A third replica started later loads it too, and an unrelated prompt still misses there.
    const third = mk();
    expect(await ask(third, chat('How do I bake sourdough bread?'))).toBeUndefined();
    expect(await ask(third, chat('capital of France?'))).toBeDefined();
  });
});
