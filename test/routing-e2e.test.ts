/**
 * Routing end to end: the openai SDK through a real gateway to a mock upstream.
 * Route matching (model glob, headers, key, has_tools), weighted targets, complexity
 * routing of English and Chinese prompts (seen in x-switchyard-route and in the
 * upstream model the mock received), cost and routing-savings metrics.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { startMockUpstream, type MockUpstream } from './support/mock-upstream.js';
import { startTestGateway, type TestGateway } from './support/gateway.js';

const KEY = 'sk-team-a-0123456789';
const VIP = 'sk-vip-0123456789abc';
const TOOLS = [{ type: 'function' as const, function: { name: 'weather', parameters: { type: 'object', properties: {} } } }];

// USD per million tokens; `ref` is the reference the savings are measured against.
const PRICES = {
  cheap: { input: 0.15, output: 0.6 },
  mid: { input: 2.5, output: 10 },
  strong: { input: 5, output: 15 },
  think: { input: 1.1, output: 4.4 },
  ref: { input: 10, output: 30 },
};

let mock: MockUpstream;
let gw: TestGateway;
let client: OpenAI;

async function counter(name: 'cost' | 'routingSavings', labels: Record<string, string>): Promise<number> {
  const v = (await gw.metrics[name].get()).values.find((s) => Object.entries(labels).every(([k, x]) => (s.labels as Record<string, unknown>)[k] === x));
  return v?.value ?? 0;
}

/** Chat through the SDK; returns the route header and the upstream model the mock saw. */
async function chat(model: string, content: string | OpenAI.Chat.ChatCompletionMessageParam[], extra: Partial<OpenAI.Chat.ChatCompletionCreateParamsNonStreaming> = {}, c = client) {
  const before = mock.requests.length;
  const messages = typeof content === 'string' ? [{ role: 'user' as const, content }] : content;
  const { data, response } = await c.chat.completions.create({ model, messages, ...extra }).withResponse();
  return { data, route: response.headers.get('x-switchyard-route') ?? '', upstream: mock.requests[before]?.body?.model };
}

beforeAll(async () => {
  mock = await startMockUpstream();
  const models: Record<string, unknown> = {};
  for (const [alias, price] of Object.entries(PRICES)) models[alias] = { backend: 'mock', model: `up-${alias}`, price };
  for (const alias of ['a', 'b', 'canary', 'tools-model', 'gpt-4o-family', 'plain']) models[alias] = { backend: 'mock', model: `up-${alias}`, price: PRICES.cheap };
  gw = await startTestGateway(
    {
      server: { host: '127.0.0.1', port: 0 },
      cache: { exact: { enabled: false } },
      keys: [
        { id: 'team-a', key: '${KEY_A}' },
        { id: 'vip', key: '${KEY_VIP}' },
      ],
      backends: { mock: { type: 'openai-compatible', base_url: mock.url, max_connections: 16 } },
      models,
      routes: [
        { name: 'canary', match: { model: 'chat', headers: { 'X-Canary': 'y*' } }, targets: [{ model: 'canary' }] },
        { name: 'vip', match: { model: 'chat', key: 'vip' }, targets: [{ model: 'strong' }] },
        { name: 'tools', match: { model: 'chat', has_tools: true }, targets: [{ model: 'tools-model' }] },
        { name: 'chat', match: { model: 'chat' }, targets: [{ model: 'cheap' }] },
        { name: 'family', match: { model: 'gpt-4o*' }, targets: [{ model: 'gpt-4o-family' }] },
        { name: 'split', match: { model: 'split' }, targets: [{ model: 'a', weight: 3 }, { model: 'b', weight: 1 }] },
        { name: 'auto', match: { model: 'auto' }, complexity: { simple: 'cheap', medium: 'mid', complex: 'strong', reasoning: 'think', reference: 'ref' } },
      ],
    },
    { env: { KEY_A: KEY, KEY_VIP: VIP } },
  );
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0 });
});
afterAll(async () => {
  await gw?.close();
  await mock?.close();
});
beforeEach(() => mock.reset());

describe('route matching', () => {
  it('sends a request with a matching header to the canary route, whatever the header name case', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-canary': 'yes' } })
      .withResponse();
    expect(data.model).toBe('up-canary');
    expect(response.headers.get('x-switchyard-route')).toBe('route=canary; target=canary');
    expect(mock.requests[0].body?.model).toBe('up-canary');
  });

  it('matches the key id, not the secret', async () => {
    const vip = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: VIP, maxRetries: 0 });
    const r = await chat('chat', 'hi', {}, vip);
    expect(r.route).toBe('route=vip; target=strong');
    expect(r.upstream).toBe('up-strong');
  });

  it('routes a request that offers tools to the tools route and one without to the next route', async () => {
    const withTools = await chat('chat', 'weather?', { tools: TOOLS });
    expect(withTools.route).toBe('route=tools; target=tools-model');
    expect(withTools.upstream).toBe('up-tools-model');
    const without = await chat('chat', 'hi', {}, client);
    expect(without.route).toBe('route=chat; target=cheap');
    expect(without.upstream).toBe('up-cheap');
  });

  it('matches a model glob and sends an unrouted alias to the model of the same name', async () => {
    const glob = await chat('gpt-4o-2026', 'hi');
    expect(glob.route).toBe('route=family; target=gpt-4o-family');
    expect(glob.upstream).toBe('up-gpt-4o-family');
    const direct = await chat('plain', 'hi');
    expect(direct.route).toBe('target=plain');
    expect(direct.upstream).toBe('up-plain');
  });

  it('answers 404 model_not_found for an alias no route or model knows', async () => {
    const err = await client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect((err as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
    expect(mock.requests).toHaveLength(0);
  });
});

describe('weighted targets', () => {
  it('splits traffic by weight (3:1)', async () => {
    const n = 400;
    let next = 0;
    const worker = async () => {
      while (next < n) {
        next++;
        await client.chat.completions.create({ model: 'split', messages: [{ role: 'user', content: 'hi' }] });
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    const a = mock.requests.filter((r) => r.body?.model === 'up-a').length;
    const b = mock.requests.filter((r) => r.body?.model === 'up-b').length;
    expect(a + b).toBe(n);
    // Expected 300 : 100; ±40 is more than 4 standard deviations of the binomial.
    expect(a).toBeGreaterThan(260);
    expect(a).toBeLessThan(340);
  });
});

describe('complexity routing (model "auto")', () => {
  const longPlain = 'Tell me a story about a cat who lives on a boat. '.repeat(30);
  const conversation: OpenAI.Chat.ChatCompletionMessageParam[] = [];
  for (let i = 0; i < 6; i++) conversation.push({ role: 'user', content: `question ${i}` }, { role: 'assistant', content: `answer ${i}` });
  conversation.push({ role: 'user', content: 'and then?' });

  const cases: Array<[string, string | OpenAI.Chat.ChatCompletionMessageParam[], string, string, string]> = [
    ['a short English question', 'What is the capital of France?', 'simple', 'prompt_tokens<=200', 'cheap'],
    ['a short Chinese greeting', '你好，今天天气怎么样？', 'simple', 'prompt_tokens<=200', 'cheap'],
    ['a long prompt without keywords', longPlain, 'medium', 'default', 'mid'],
    ['an English "compare"', 'Compare PostgreSQL and MySQL for a write-heavy workload.', 'complex', 'keyword:compare', 'strong'],
    ['a Chinese 分析 (analyse)', '请分析这两种缓存策略的优缺点。', 'complex', `keyword:${encodeURIComponent('分析')}`, 'strong'],
    ['a Chinese 比较 (compare)', '比较一下红茶和绿茶。', 'complex', `keyword:${encodeURIComponent('比较')}`, 'strong'],
    ['a long conversation', conversation, 'complex', 'turns>=10', 'strong'],
    ['an English "prove"', 'Prove that the square root of 2 is irrational.', 'reasoning', 'keyword:prove', 'think'],
    ['a Chinese 推导 (derive)', '请推导二次方程的求根公式。', 'reasoning', `keyword:${encodeURIComponent('推导')}`, 'think'],
    ['a Chinese 证明 (prove)', '证明勾股定理。', 'reasoning', `keyword:${encodeURIComponent('证明')}`, 'think'],
  ];

  it.each(cases)('classifies %s', async (_name, content, cls, rule, target) => {
    const r = await chat('auto', content);
    expect(r.route).toBe(`route=auto; class=${cls}; rule=${rule}; target=${target}`);
    expect(r.upstream).toBe(`up-${target}`);
    // OpenAI-compatible answers pass through untouched: `model` names who answered.
    expect(r.data.model).toBe(`up-${target}`);
  });

  it('puts a request with tools at least in the medium class', async () => {
    const r = await chat('auto', 'Weather in Paris?', { tools: TOOLS });
    expect(r.route).toBe('route=auto; class=medium; rule=tools; target=mid');
    expect(r.upstream).toBe('up-mid');
  });

  it('records the cost per model and key, and the savings against the reference model', async () => {
    const usage = { prompt_tokens: 1000, completion_tokens: 500 };
    const cost0 = await counter('cost', { model: 'cheap', key: 'team-a' });
    const saved0 = await counter('routingSavings', { route: 'auto', class: 'simple' });
    mock.enqueue({ usage });
    const r = await chat('auto', 'What is 2 + 2?');
    expect(r.route).toContain('class=simple');
    expect(r.data.usage).toMatchObject(usage);
    const cost = (1000 * PRICES.cheap.input + 500 * PRICES.cheap.output) / 1e6;
    const reference = (1000 * PRICES.ref.input + 500 * PRICES.ref.output) / 1e6;
    expect((await counter('cost', { model: 'cheap', key: 'team-a' })) - cost0).toBeCloseTo(cost, 12);
    expect((await counter('routingSavings', { route: 'auto', class: 'simple' })) - saved0).toBeCloseTo(reference - cost, 12);
  });

  it('records cost for a streamed request under the key that made it', async () => {
    const vip = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: VIP, maxRetries: 0 });
    const cost0 = await counter('cost', { model: 'strong', key: 'vip' });
    mock.enqueue({ chunks: 3, usage: { prompt_tokens: 200, completion_tokens: 3 } });
    const stream = await vip.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }], stream: true });
    for await (const _ of stream) void _;
    const expected = (200 * PRICES.strong.input + 3 * PRICES.strong.output) / 1e6;
    expect((await counter('cost', { model: 'strong', key: 'vip' })) - cost0).toBeCloseTo(expected, 12);
  });
});
