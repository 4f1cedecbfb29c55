import { describe, expect, it } from 'vitest';
import { ConfigSchema } from '../gateway/config/schema.js';
import { compileRoutes, matchRoute, pickTargets, type MatchInput } from '../gateway/routing/match.js';
import { createRouter, formatRouteInfo, requestFeatures } from '../gateway/routing/router.js';

const config = ConfigSchema.parse({
  routes: [
    { name: 'vision', match: { model: 'gpt-4o*', has_images: true }, targets: [{ model: 'gpt-4o' }] },
    { name: 'team-a', match: { key: 'team-a-*', model: 'gpt-4o' }, targets: [{ model: 'gpt-4o-azure' }] },
    { name: 'canary', match: { model: 'gpt-4o', headers: { 'X-Canary': 'yes' } }, targets: [{ model: 'gpt-4o-canary' }] },
    { name: 'long', match: { model: 'gpt-4o', prompt_tokens: { min: 10000 } }, targets: [{ model: 'claude-sonnet' }] },
    { name: 'agents', match: { model: 'gpt-4o', has_tools: true, stream: false }, targets: [{ model: 'gpt-4o-tools' }] },
    {
      name: 'primary-with-fallback',
      match: { model: 'gpt-4o' },
      targets: [{ model: 'gpt-4o', weight: 3 }, { model: 'gpt-4o-azure', weight: 1 }],
      fallbacks: ['claude-sonnet', 'gpt-4o'],
    },
    { name: 'auto', match: { model: 'auto' }, complexity: { simple: 'mini', medium: 'gpt-4o', complex: 'gpt-4o', reasoning: 'o3-mini', reference: 'gpt-4o' } },
    { name: 'key-fallback', match: { key: 'batch' }, fallbacks: ['mini'] },
  ],
});

const base: MatchInput = { model: 'gpt-4o', headers: {}, hasTools: false, hasImages: false, stream: false, promptTokens: 100 };
const compiled = compileRoutes(config);

describe('route matching', () => {
  const cases: Array<[string, Partial<MatchInput>, string | undefined]> = [
    ['a glob on the model with has_images', { model: 'gpt-4o-mini', hasImages: true }, 'vision'],
    ['a glob on the key id', { keyId: 'team-a-prod' }, 'team-a'],
    ['a key id the glob does not cover falls through', { keyId: 'team-b' }, 'primary-with-fallback'],
    ['a header, whatever the case of its name in YAML', { headers: { 'x-canary': 'yes' } }, 'canary'],
    ['a header with another value falls through', { headers: { 'x-canary': 'no' } }, 'primary-with-fallback'],
    ['prompt tokens at the minimum of the range', { promptTokens: 10000 }, 'long'],
    ['prompt tokens counted lazily', { promptTokens: () => 20000 }, 'long'],
    ['tools on a non-stream request', { hasTools: true }, 'agents'],
    ['tools on a stream request fall through', { hasTools: true, stream: true }, 'primary-with-fallback'],
    ['the plain alias', {}, 'primary-with-fallback'],
    ['the complexity alias', { model: 'auto' }, 'auto'],
    ['a route matching on key alone', { model: 'whatever', keyId: 'batch' }, 'key-fallback'],
    ['no route for an unrouted alias', { model: 'mini' }, undefined],
  ];
  it.each(cases)('matches %s', (_name, over, expected) => {
    expect(matchRoute(compiled, { ...base, ...over })?.route.name).toBe(expected);
  });

  it('never counts prompt tokens when no route before the match needs them', () => {
    let calls = 0;
    const hit = matchRoute(compiled, { ...base, model: 'auto', promptTokens: () => ++calls });
    expect(hit?.route.name).toBe('auto');
    expect(calls).toBe(0);
  });

  it('knows whether any route needs a prompt token count', () => {
    expect(compiled.needsPromptTokens).toBe(true);
    expect(compileRoutes({ routes: [] }).needsPromptTokens).toBe(false);
  });
});

describe('target picking', () => {
  const route = compiled.routes.find((r) => r.route.name === 'primary-with-fallback')!;

  it('orders the picked target, the other targets, then the fallbacks without duplicates', () => {
    expect(pickTargets(route, { random: () => 0 })).toEqual(['gpt-4o', 'gpt-4o-azure', 'claude-sonnet']);
    expect(pickTargets(route, { random: () => 0.8 })).toEqual(['gpt-4o-azure', 'gpt-4o', 'claude-sonnet']);
  });

  it('follows the weights over many picks', () => {
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let first = 0;
    for (let i = 0; i < 4000; i++) if (pickTargets(route, { random })[0] === 'gpt-4o') first++;
    expect(first / 4000).toBeGreaterThan(0.7);
    expect(first / 4000).toBeLessThan(0.8);
  });

  it('skips aliases whose backend circuit is open', () => {
    expect(pickTargets(route, { random: () => 0, available: (a) => a !== 'gpt-4o' })).toEqual(['gpt-4o-azure', 'claude-sonnet']);
    expect(pickTargets(route, { available: () => false })).toEqual([]);
  });

  it('picks the least loaded target per unit of weight with least_inflight', () => {
    const lr = compileRoutes({
      routes: [
        {
          ...config.routes[5],
          strategy: 'least_inflight',
        },
      ],
    }).routes[0];
    const load: Record<string, number> = { 'gpt-4o': 9, 'gpt-4o-azure': 2 };
    expect(pickTargets(lr, { inflight: (a) => load[a] ?? 0, random: () => 0 })[0]).toBe('gpt-4o-azure');
    load['gpt-4o-azure'] = 4; // 9/3 = 3 < 4/1
    expect(pickTargets(lr, { inflight: (a) => load[a] ?? 0, random: () => 0.99 })[0]).toBe('gpt-4o');
  });
});

describe('the router', () => {
  const router = createRouter(config);

  it('sends a request whose model has no route to the alias of the same name', () => {
    expect(router.decide({ ...base, model: 'mini', body: {} })).toEqual({ aliases: ['mini'], info: 'target=mini' });
  });

  it('uses the requested alias then the fallbacks for a route without targets', () => {
    const d = router.decide({ ...base, model: 'whatever', keyId: 'batch', body: {} });
    expect(d.aliases).toEqual(['whatever', 'mini']);
    expect(d.route?.name).toBe('key-fallback');
  });

  it('routes auto by complexity class and explains itself in an ASCII-safe header value', () => {
    const simple = router.decide({ ...base, model: 'auto', promptTokens: 12, body: { messages: [{ role: 'user', content: 'hi there' }] } });
    expect(simple.aliases).toEqual(['mini']);
    expect(simple.complexity).toEqual({ class: 'simple', rule: 'prompt_tokens<=200', reference: 'gpt-4o' });
    expect(simple.info).toBe('route=auto; class=simple; rule=prompt_tokens<=200; target=mini');

    const proof = router.decide({ ...base, model: 'auto', promptTokens: 30, body: { messages: [{ role: 'user', content: '请证明根号2是无理数' }] } });
    expect(proof.aliases).toEqual(['o3-mini']);
    expect(proof.info).toBe(`route=auto; class=reasoning; rule=keyword:${encodeURIComponent('证明')}; target=o3-mini`);
  });
});

describe('request features', () => {
  it('sees tools and image parts in an OpenAI body', () => {
    expect(requestFeatures({ messages: [{ role: 'user', content: 'x' }] })).toEqual({ hasTools: false, hasImages: false });
    expect(requestFeatures({ tools: [{ type: 'function', function: { name: 'f' } }], messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'image_url', image_url: { url: 'https://x/y.png' } }] }] })).toEqual({ hasTools: true, hasImages: true });
    expect(requestFeatures({ tools: [], messages: [] })).toEqual({ hasTools: false, hasImages: false });
  });
});

describe('the x-switchyard-route value', () => {
  it('is printable ASCII and bounded, whatever the model id', () => {
    expect(formatRouteInfo({ route: 'r', class: 'simple', target: 'gpt-4o-mini' })).toBe('route=r; class=simple; target=gpt-4o-mini');
    expect(formatRouteInfo({ target: 'modèle\r\nx-evil: 1' })).toBe('target=mod%C3%A8le%0D%0Ax-evil: 1');
    const long = formatRouteInfo({ target: 'm'.repeat(20_000) });
    expect(long.length).toBeLessThanOrEqual('target='.length + 256 + 3);
    expect(long.endsWith('...')).toBe(true);
  });
});
