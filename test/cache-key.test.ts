import { describe, expect, it } from 'vitest';
import { canonicalJson, exactCacheKey } from '../gateway/cache/key.js';
import { decideCachePolicy } from '../gateway/cache/policy.js';
import { CacheSchema, RouteSchema } from '../gateway/config/schema.js';

const base = {
  model: 'gpt-4o-mini',
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Capital of France?' },
  ],
  temperature: 0,
  max_tokens: 50,
};
const key = (body: Record<string, unknown>, target = 'mock/gpt-4o-mini', endpoint: 'chat' | 'completions' = 'chat') => exactCacheKey({ endpoint, target, body });

describe('exact cache key', () => {
  it('memoised by the raw body gives the same key as computed, per endpoint and target, and never mixes bodies', () => {
    const raw = (b: unknown) => Buffer.from(JSON.stringify(b));
    const computed = key(base);
    const viaRaw = () => exactCacheKey({ endpoint: 'chat', target: 'mock/gpt-4o-mini', body: base, raw: raw(base) });
    expect(viaRaw()).toBe(computed);
    expect(viaRaw()).toBe(computed); // second call: from the memo
    expect(exactCacheKey({ endpoint: 'chat', target: 'other/gpt-4o', body: base, raw: raw(base) })).toBe(key(base, 'other/gpt-4o'));
    expect(exactCacheKey({ endpoint: 'completions', target: 'mock/gpt-4o-mini', body: base, raw: raw(base) })).toBe(key(base, 'mock/gpt-4o-mini', 'completions'));
    const warmer = { ...base, temperature: 0.7 };
    expect(exactCacheKey({ endpoint: 'chat', target: 'mock/gpt-4o-mini', body: warmer, raw: raw(warmer) })).toBe(key(warmer));
    expect(key(warmer)).not.toBe(computed);
    // Same bytes differing only in a non-ASCII character still key apart.
    const a = { ...base, messages: [{ role: 'user', content: 'café' }] };
    const b = { ...base, messages: [{ role: 'user', content: 'cafë' }] };
    expect(exactCacheKey({ endpoint: 'chat', target: 't', body: a, raw: raw(a) })).not.toBe(exactCacheKey({ endpoint: 'chat', target: 't', body: b, raw: raw(b) }));
  });

  it('is the same for the same request with its keys in a different order, at every depth', () => {
    const reordered = {
      max_tokens: 50,
      temperature: 0,
      messages: [
        { content: 'Be brief.', role: 'system' },
        { content: 'Capital of France?', role: 'user' },
      ],
      model: 'gpt-4o-mini',
    };
    expect(key(reordered)).toBe(key(base));
    expect(key(base)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('changes when the temperature changes', () => {
    expect(key({ ...base, temperature: 0.7 })).not.toBe(key(base));
  });

  it('changes with every field that can change the answer', () => {
    const variants: Record<string, unknown>[] = [
      { ...base, messages: [...base.messages, { role: 'user', content: 'And Spain?' }] },
      { ...base, tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] },
      { ...base, tool_choice: 'required' },
      { ...base, top_p: 0.5 },
      { ...base, max_tokens: 51 },
      { ...base, response_format: { type: 'json_object' } },
      { ...base, seed: 7 },
      { ...base, stop: ['\n'] },
      { ...base, n: 2 },
      { ...base, logprobs: true },
    ];
    const keys = new Set([key(base), ...variants.map((v) => key(v))]);
    expect(keys.size).toBe(variants.length + 1);
  });

  it('ignores user, stream, stream_options and the client alias, but not the resolved target', () => {
    expect(key({ ...base, user: 'u-1', stream: true, stream_options: { include_usage: true }, model: 'other-alias' })).toBe(key(base));
    expect(key(base, 'mock/gpt-4o')).not.toBe(key(base));
    expect(key(base, 'mock/gpt-4o-mini', 'completions')).not.toBe(key(base));
  });

  it('treats max_completion_tokens as max_tokens', () => {
    const { max_tokens, ...rest } = base;
    expect(key({ ...rest, max_completion_tokens: max_tokens })).toBe(key(base));
  });

  it('writes canonical JSON with sorted keys and no undefined members', () => {
    expect(canonicalJson({ b: 1, a: [{ d: undefined, c: 'x' }], e: null })).toBe('{"a":[{"c":"x"}],"b":1,"e":null}');
  });
});

describe('cacheability policy', () => {
  const cache = CacheSchema.parse({});
  const decide = (body: Record<string, unknown>, header?: string, route?: Record<string, unknown>, c = cache) =>
    decideCachePolicy({ cache: c, body, header, route: route ? RouteSchema.parse({ name: 'r', ...route }) : undefined, semanticAvailable: true });

  it('caches deterministic requests by default: temperature 0 or a seed', () => {
    expect(decide({ temperature: 0 })).toMatchObject({ read: true, write: true, exact: true, semantic: false, exactTtlS: 3600 });
    expect(decide({ temperature: 1, seed: 42 })).toMatchObject({ read: true, write: true });
    expect(decide({ temperature: 0.7 })).toBeUndefined();
    expect(decide({})).toBeUndefined();
  });

  it('honours no-store, no-cache and force from the request header', () => {
    expect(decide({ temperature: 0 }, 'no-store')).toMatchObject({ read: true, write: false });
    expect(decide({ temperature: 0 }, 'No-Cache')).toMatchObject({ read: false, write: true });
    expect(decide({ temperature: 0 }, 'no-cache, no-store')).toBeUndefined();
    expect(decide({ temperature: 0.9 }, 'force')).toMatchObject({ read: true, write: true });
  });

  it('takes per-route overrides: on/off, semantic, ttl and determinism', () => {
    expect(decide({ temperature: 0 }, undefined, { cache: { exact: false } })).toBeUndefined();
    expect(decide({ temperature: 0 }, 'force', { cache: { exact: false } })).toBeUndefined();
    expect(decide({ temperature: 0 }, undefined, { cache: { semantic: true, ttl_s: 600 } })).toMatchObject({ exact: true, semantic: true, exactTtlS: 600, semanticTtlS: 600 });
    expect(decide({ temperature: 0.8 }, undefined, { cache: { only_deterministic: false } })).toMatchObject({ read: true, write: true });
  });

  it('keeps the semantic layer off without an embedder, whatever the config says', () => {
    const on = CacheSchema.parse({ semantic: { enabled: true } });
    expect(decide({ temperature: 0 }, undefined, undefined, on)?.semantic).toBe(true);
    expect(decideCachePolicy({ cache: on, body: { temperature: 0 }, semanticAvailable: false })?.semantic).toBe(false);
  });
});
