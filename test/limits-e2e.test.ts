/**
 * Rate limits, budgets and context fitting end to end, as operators run them: two
 * gateway PROCESSES (bin/switchyard.js) sharing one real redis-server, the official
 * openai SDK as the client, a mock upstream that reports usage. One limit is one limit
 * whatever the replica count; no budget is spent past its figure; every reservation is
 * settled to what the backend really used.
 */
import OpenAI, { APIError } from 'openai';
import type { ChatCompletionCreateParamsNonStreaming, ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenCounter } from '../gateway/tokens/token-counter.js';
import { startGatewayProcess, type GatewayProcess } from './support/gateway-process.js';
import { startMockUpstream, type MockBehaviour, type MockUpstream } from './support/mock-upstream.js';
import { startRedis, type TestRedis } from './support/redis.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// USD per million tokens: 1 prompt token = $0.01, 1 completion token = $0.02 (whole micro-dollars).
const PRICE = { input: 10_000, output: 20_000 };
const costUsd = (prompt: number, completion: number) => (prompt * PRICE.input + completion * PRICE.output) / 1e6;

const SECRETS = {
  KEY_HEAD: 'sk-e2e-head',
  KEY_RPM: 'sk-e2e-rpm',
  KEY_CONC: 'sk-e2e-conc',
  KEY_RACE: 'sk-e2e-race',
  KEY_ABORT: 'sk-e2e-abort',
  KEY_CLAMP: 'sk-e2e-clamp',
  KEY_CTX: 'sk-e2e-ctx',
  KEY_TPM: 'sk-e2e-tpm',
  SWITCHYARD_ADMIN_KEY: 'sk-e2e-admin-secret',
};

// The conversation the context tests send; windows are derived from its exact o200k count.
const say = (role: 'system' | 'user' | 'assistant', content: string): ChatCompletionMessageParam => ({ role, content });
const CONVERSATION: ChatCompletionMessageParam[] = [
  say('system', 'You answer in one sentence.'),
  say('user', `Old question about the weather in the mountains, ${'with many details '.repeat(12)}`),
  { role: 'assistant', content: null, tool_calls: [{ id: 'call_a', type: 'function', function: { name: 'lookup', arguments: '{"city":"Zermatt"}' } }] },
  { role: 'tool', tool_call_id: 'call_a', content: `Sunny, ${'light wind and clear skies '.repeat(10)}` },
  say('assistant', 'It is sunny.'),
  say('user', 'And tomorrow?'),
];
const counter = createTokenCounter({ token_estimator: { cjk_per_char: 1.5, other_per_char: 0.25 } });
const MODEL = { backend: 'mock', model: 'gpt-4o-mini', tokenizer: 'auto' as const };
const split = counter.countChat({ messages: CONVERSATION }, MODEL);
const total = counter.countPrompt('chat', { messages: CONVERSATION }, MODEL);
/** Dropping the oldest user message alone would be enough (the whole old turn goes). */
const WINDOW_ONE = total - split.perMessage[1] + 2;
/** Dropping the oldest user message alone would not be enough. */
const WINDOW_PAIR = total - split.perMessage[1] - 5;

function config(): Record<string, unknown> {
  const model = (extra: Record<string, unknown> = {}) => ({ backend: 'mock', model: 'gpt-4o-mini', price: PRICE, ...extra });
  return {
    server: { host: '127.0.0.1', port: 0 },
    logging: { level: 'info' },
    store: { kind: 'redis', redis_url: '${REDIS_URL}', on_failure: 'fail_closed', timeout_ms: 1000, key_prefix: 'e2e:' },
    admin: { key: '${SWITCHYARD_ADMIN_KEY}' },
    backends: { mock: { type: 'openai-compatible', base_url: '${MOCK_URL}', max_connections: 64, timeout_ms: 10_000 } },
    models: {
      'gpt-4o-mini': model(),
      'trim-one': model({ context_window: WINDOW_ONE }),
      'trim-pair': model({ context_window: WINDOW_PAIR }),
      'reject-ctx': model({ context_window: 40 }),
      // An alias whose name is no OpenAI model: only its upstream model says o200k.
      routed: model(),
    },
    routes: [
      { name: 'fit-one', match: { model: 'trim-one' }, context: 'trim' },
      { name: 'fit-pair', match: { model: 'trim-pair' }, context: 'trim' },
      { name: 'strict', match: { model: 'reject-ctx' }, context: 'reject' },
      { name: 'by-size', match: { model: 'routed', prompt_tokens: { max: 100_000 } } },
    ],
    keys: [
      { id: 'head', key: '${KEY_HEAD}', limits: { rpm: 2, tpm: 100_000 } },
      { id: 'rpm', key: '${KEY_RPM}', limits: { rpm: 4 } },
      { id: 'conc', key: '${KEY_CONC}', limits: { concurrent: 3 } },
      { id: 'race', key: '${KEY_RACE}', budget: { usd_per_day: 10 } },
      { id: 'abort', key: '${KEY_ABORT}', budget: { usd_per_day: 100 } },
      { id: 'clamp', key: '${KEY_CLAMP}', budget: { usd_per_day: 1, on_exceed: 'clamp' } },
      { id: 'ctx', key: '${KEY_CTX}' },
      { id: 'tpm', key: '${KEY_TPM}', limits: { tpm: 100_000 } },
    ],
  };
}

let redis: TestRedis;
let mock: MockUpstream;
let a: GatewayProcess;
let b: GatewayProcess;

beforeAll(async () => {
  [redis, mock] = await Promise.all([startRedis(), startMockUpstream()]);
  const env = { ...SECRETS, REDIS_URL: redis.url, MOCK_URL: mock.url };
  [a, b] = await Promise.all([startGatewayProcess(config(), env), startGatewayProcess(config(), env)]);
}, 60_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await Promise.all([mock?.close(), redis?.close()]);
});

function client(gw: GatewayProcess, apiKey: string): OpenAI {
  return new OpenAI({ apiKey, baseURL: `${gw.url}/v1`, maxRetries: 0 });
}

/** A chat body with the mock's per-request behaviour (forwarded untouched by the gateway). */
function chat(content: string, extra: Record<string, unknown> = {}, behaviour?: MockBehaviour): ChatCompletionCreateParamsNonStreaming {
  return { model: 'gpt-4o-mini', messages: [{ role: 'user', content }], ...extra, ...(behaviour ? { mock: behaviour } : {}) } as ChatCompletionCreateParamsNonStreaming;
}

type Outcome = { ok: true; headers: Headers; usage?: { prompt_tokens: number; completion_tokens: number } } | { ok: false; err: APIError };

async function send(c: OpenAI, body: ChatCompletionCreateParamsNonStreaming): Promise<Outcome> {
  try {
    const { data, response } = await c.chat.completions.create(body).withResponse();
    return { ok: true, headers: response.headers, usage: data.usage ?? undefined };
  } catch (err) {
    if (err instanceof APIError) return { ok: false, err };
    throw err;
  }
}

interface PeriodReport {
  spent_usd: number;
  reserved_usd: number;
  tokens: number;
  limit_usd: number | null;
  remaining_usd: number | null;
}

async function usage(gw: GatewayProcess, apiKey: string): Promise<{ key: string; budget: { day: PeriodReport; month: PeriodReport }; limits: Record<string, { limit: number; remaining: number; reset: string }> }> {
  const res = await fetch(`${gw.url}/v1/usage`, { headers: { authorization: `Bearer ${apiKey}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as never;
}

/** Waits until every reservation of the key is settled (end hooks run after the response is written). */
async function settled(gw: GatewayProcess, apiKey: string): Promise<PeriodReport> {
  const end = Date.now() + 5000;
  for (;;) {
    const day = (await usage(gw, apiKey)).budget.day;
    if (day.reserved_usd === 0 || Date.now() > end) return day;
    await sleep(20);
  }
}

const RESET = /^(\d+ms|\d+s|\d+m\d+s)$/;

describe('rate limits shared by two gateway processes through one Redis', () => {
  it('sends the x-ratelimit-* headers on 200 and on 429, with Retry-After on the 429', async () => {
    const first = await send(client(a, SECRETS.KEY_HEAD), chat('hello'));
    const second = await send(client(b, SECRETS.KEY_HEAD), chat('hello'));
    const third = await send(client(a, SECRETS.KEY_HEAD), chat('hello'));
    expect(first.ok && second.ok).toBe(true);
    for (const [r, remaining] of [[first, '1'], [second, '0']] as const) {
      const h = (r as Extract<Outcome, { ok: true }>).headers;
      expect(h.get('x-ratelimit-limit-requests')).toBe('2');
      expect(h.get('x-ratelimit-remaining-requests')).toBe(remaining);
      expect(h.get('x-ratelimit-reset-requests')).toMatch(RESET);
      expect(h.get('x-ratelimit-limit-tokens')).toBe('100000');
      expect(Number(h.get('x-ratelimit-remaining-tokens'))).toBeLessThan(100_000);
      expect(h.get('x-ratelimit-reset-tokens')).toMatch(RESET);
    }
    expect(third.ok).toBe(false);
    const err = (third as Extract<Outcome, { ok: false }>).err;
    expect(err.status).toBe(429);
    expect(err.code).toBe('rate_limit_exceeded');
    const retryAfter = Number(err.headers?.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(err.headers?.get('x-ratelimit-limit-requests')).toBe('2');
    expect(err.headers?.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(err.headers?.get('x-ratelimit-reset-requests')).toMatch(RESET);
    expect(err.headers?.get('x-ratelimit-limit-tokens')).toBe('100000');
    expect(err.headers?.get('x-ratelimit-remaining-tokens')).not.toBeNull();
    expect(err.headers?.get('x-ratelimit-reset-tokens')).toMatch(RESET);
    const metrics = await (await fetch(`${a.url}/metrics`)).text();
    expect(metrics).toMatch(/switchyard_rate_limited_total\{key="head",limit="key_rpm"\} 1/);
  });

  it('charges tpm the exact o200k prompt count plus max_tokens, also when a route matched on prompt size first', async () => {
    const content = 'Zermatt weather forecast, please: '.repeat(20);
    const prompt = counter.countPrompt('chat', { messages: [{ role: 'user', content }] }, MODEL);
    const { response } = await client(a, SECRETS.KEY_TPM)
      .chat.completions.create(chat(content, { model: 'routed', max_tokens: 50 }, { latencyMs: 300 }))
      .withResponse();
    expect(response.headers.get('x-switchyard-route')).toContain('by-size');
    expect(Number(response.headers.get('x-ratelimit-remaining-tokens'))).toBe(100_000 - prompt - 50);
  });

  it('admits exactly N of 2×N concurrent requests against an rpm limit of N', async () => {
    const N = 4;
    const results = await Promise.all(Array.from({ length: 2 * N }, (_, i) => send(client(i % 2 ? a : b, SECRETS.KEY_RPM), chat(`rpm ${i}`))));
    const ok = results.filter((r) => r.ok);
    const refused = results.filter((r): r is Extract<Outcome, { ok: false }> => !r.ok);
    expect(ok).toHaveLength(N);
    expect(refused).toHaveLength(N);
    for (const r of refused) {
      expect(r.err.status).toBe(429);
      expect(r.err.code).toBe('rate_limit_exceeded');
      expect(Number(r.err.headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(r.err.headers?.get('x-ratelimit-limit-requests')).toBe(String(N));
      expect(r.err.headers?.get('x-ratelimit-remaining-requests')).toBe('0');
    }
    const remaining = ok.map((r) => Number((r as Extract<Outcome, { ok: true }>).headers.get('x-ratelimit-remaining-requests'))).sort();
    expect(remaining).toEqual([0, 1, 2, 3]);
  });

  it('admits exactly N of 2×N concurrent requests against a concurrency limit of N, and frees the slots', async () => {
    const N = 3;
    const results = await Promise.all(
      Array.from({ length: 2 * N }, (_, i) => send(client(i % 2 ? a : b, SECRETS.KEY_CONC), chat(`conc ${i}`, {}, { latencyMs: 1200 }))),
    );
    expect(results.filter((r) => r.ok)).toHaveLength(N);
    const refused = results.filter((r): r is Extract<Outcome, { ok: false }> => !r.ok);
    expect(refused).toHaveLength(N);
    for (const r of refused) {
      expect(r.err.status).toBe(429);
      expect(r.err.code).toBe('rate_limit_exceeded');
      expect(r.err.headers?.get('retry-after')).not.toBeNull();
    }
    // Slots are released when each response ends (end hooks run just after the write).
    await sleep(100);
    const again = await Promise.all(Array.from({ length: N }, (_, i) => send(client(i % 2 ? b : a, SECRETS.KEY_CONC), chat(`again ${i}`))));
    expect(again.every((r) => r.ok)).toBe(true);
  });
});

describe('budgets shared by two gateway processes through one Redis', () => {
  it('lets 50 concurrent requests race for the last dollar without spending past the budget, and books exactly what the backend reported', async () => {
    // Spend $9 of the $10 day: the mock reports 450 completion tokens for one request.
    const warm = await send(client(a, SECRETS.KEY_RACE), chat('warm up', { max_tokens: 10 }, { usage: { prompt_tokens: 0, completion_tokens: 450 } }));
    expect(warm.ok).toBe(true);
    expect((await settled(b, SECRETS.KEY_RACE)).spent_usd).toBeCloseTo(9, 6);

    let polling = true;
    let polls = 0;
    let worst = 0;
    const poller = (async () => {
      while (polling) {
        const day = (await usage(polls % 2 ? a : b, SECRETS.KEY_RACE)).budget.day;
        worst = Math.max(worst, day.spent_usd + day.reserved_usd);
        polls++;
      }
    })();
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        send(client(i % 2 ? a : b, SECRETS.KEY_RACE), chat(`race ${i}`, { max_tokens: 10 }, { latencyMs: (i % 5) * 15, usage: { prompt_tokens: 3, completion_tokens: 1 + (i % 10) } })),
      ),
    );
    const final = await settled(a, SECRETS.KEY_RACE);
    polling = false;
    await poller;

    const ok = results.filter((r): r is Extract<Outcome, { ok: true }> => r.ok);
    const refused = results.filter((r): r is Extract<Outcome, { ok: false }> => !r.ok);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    for (const r of refused) {
      expect(r.err.status).toBe(429);
      expect(r.err.code).toBe('budget_exceeded');
      expect(r.err.type).toBe('insufficient_quota');
    }
    const reported = ok.reduce((sum, r) => sum + costUsd(r.usage!.prompt_tokens, r.usage!.completion_tokens), 0);
    expect(final.reserved_usd).toBe(0);
    expect(final.spent_usd).toBeCloseTo(9 + reported, 6);
    expect(final.spent_usd).toBeLessThanOrEqual(10);
    expect(polls).toBeGreaterThan(0);
    expect(worst).toBeLessThanOrEqual(10 + 1e-9);
    // Both processes read the same books.
    expect((await usage(b, SECRETS.KEY_RACE)).budget.day.spent_usd).toBe(final.spent_usd);
  });

  it('settles the reservation of a stream the client aborted, and does not bill it as zero', async () => {
    const c = client(b, SECRETS.KEY_ABORT);
    const before = mock.requests.length;
    const ac = new AbortController();
    const stream = await c.chat.completions.create(
      { ...chat('tell me a long story', { max_tokens: 200, stream: true }, { chunks: 60, chunkDelayMs: 40 }), stream: true } as unknown as OpenAI.Chat.ChatCompletionCreateParamsStreaming,
      { signal: ac.signal },
    );
    let contentChunks = 0;
    // The SDK ends the iteration quietly when its signal aborts.
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content) contentChunks++;
      if (contentChunks === 3) ac.abort();
    }
    expect(ac.signal.aborted).toBe(true);
    expect(contentChunks).toBe(3);
    const day = await settled(b, SECRETS.KEY_ABORT);
    expect(day.reserved_usd).toBe(0);
    expect(day.spent_usd).toBeGreaterThan(0);
    expect(day.tokens).toBeGreaterThan(0);
    // The worst case was 200 completion tokens; the settle booked the estimate of what was relayed.
    expect(day.spent_usd).toBeLessThan(costUsd(50, 200));
    // The gateway let the upstream go, too.
    const upstream = mock.requests.slice(before).find((r) => (r.body?.messages as Array<{ content: string }>)?.[0]?.content === 'tell me a long story');
    expect(upstream).toBeDefined();
    const end = Date.now() + 3000;
    while (upstream!.abortedAt === undefined && Date.now() < end) await sleep(20);
    expect(upstream!.abortedAt).toBeDefined();
    expect(upstream!.chunksSent).toBeLessThan(60);
  });

  it('under on_exceed: clamp lowers max_tokens, as seen by the backend, to exactly what the budget still covers', async () => {
    const before = mock.requests.length;
    const body = chat('clamp me', { max_tokens: 1000 }, { usage: { prompt_tokens: 1, completion_tokens: 1 } });
    const r = await send(client(a, SECRETS.KEY_CLAMP), body);
    expect(r.ok).toBe(true);
    const clamped = Number((r as Extract<Outcome, { ok: true }>).headers.get('x-switchyard-max-tokens-clamped'));
    const prompt = counter.countPrompt('chat', { messages: body.messages }, MODEL);
    // The largest completion whose worst case fits the $1 day.
    expect(clamped).toBe(Math.floor((1 - costUsd(prompt, 0)) / costUsd(0, 1) + 1e-9));
    expect(clamped).toBeGreaterThan(0);
    expect(clamped).toBeLessThan(1000);
    const seen = mock.requests.slice(before).find((q) => (q.body?.messages as Array<{ content: string }>)?.[0]?.content === 'clamp me');
    expect(seen?.body?.max_tokens).toBe(clamped);
  });
});

describe('context fitting in front of the backend', () => {
  const lastUpstream = (before: number) => mock.requests.slice(before).find((q) => q.path.endsWith('/chat/completions'));
  const assertToolPairsIntact = (messages: Array<{ role: string; tool_calls?: Array<{ id: string }>; tool_call_id?: string }>) => {
    messages.forEach((m, i) => {
      if (m.role === 'tool') expect(messages.slice(0, i).some((p) => p.tool_calls?.some((t) => t.id === m.tool_call_id))).toBe(true);
      for (const t of m.tool_calls ?? []) expect(messages.some((p) => p.role === 'tool' && p.tool_call_id === t.id)).toBe(true);
    });
  };

  it('trims whole turns: the old question goes with its tool call, result and answer', async () => {
    expect(total).toBeGreaterThan(WINDOW_ONE);
    for (const [gw, model] of [[a, 'trim-one'], [b, 'trim-pair']] as const) {
      const before = mock.requests.length;
      const { response } = await client(gw, SECRETS.KEY_CTX).chat.completions.create({ model, messages: CONVERSATION }).withResponse();
      expect(response.headers.get('x-switchyard-context-trimmed')).toBe('4');
      const sent = lastUpstream(before)?.body?.messages as Array<{ role: string; tool_calls?: Array<{ id: string }>; tool_call_id?: string }>;
      // Never an assistant message (or a tool result) where the conversation starts.
      expect(sent).toEqual([CONVERSATION[0], CONVERSATION[5]]);
      assertToolPairsIntact(sent);
    }
  });

  it('answers 400 context_length_exceeded under the reject policy, without calling the backend', async () => {
    const before = mock.requests.length;
    const err = await client(a, SECRETS.KEY_CTX)
      .chat.completions.create({ model: 'reject-ctx', messages: CONVERSATION })
      .then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as APIError).status).toBe(400);
    expect((err as APIError).code).toBe('context_length_exceeded');
    expect((err as APIError).param).toBe('messages');
    expect(mock.requests.length).toBe(before);
  });
});

describe('usage and admin APIs over HTTP', () => {
  it('reports the calling key its usage and limits, and refuses a request without a key', async () => {
    const u = await usage(b, SECRETS.KEY_RPM);
    expect(u.key).toBe('rpm');
    expect(u.limits.rpm).toMatchObject({ limit: 4, remaining: 0 });
    expect(u.limits.rpm.reset).toMatch(RESET);
    expect(u.budget.day.spent_usd).toBeGreaterThan(0);
    const anonymous = await fetch(`${a.url}/v1/usage`);
    expect(anonymous.status).toBe(401);
  });

  it('guards /admin with the admin key from the environment (403 without it) and lists every key without its secret', async () => {
    for (const authorization of [undefined, 'Bearer sk-wrong', `Bearer ${SECRETS.KEY_RACE}`]) {
      const res = await fetch(`${a.url}/admin/keys`, { headers: authorization ? { authorization } : {} });
      expect(res.status).toBe(403);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('admin_forbidden');
      const reset = await fetch(`${a.url}/admin/keys/race/reset`, { method: 'POST', headers: authorization ? { authorization } : {} });
      expect(reset.status).toBe(403);
    }
    const res = await fetch(`${b.url}/admin/keys`, { headers: { authorization: `Bearer ${SECRETS.SWITCHYARD_ADMIN_KEY}` } });
    expect(res.status).toBe(200);
    const text = await res.text();
    const list = JSON.parse(text) as { data: Array<{ key: string; budget: { day: PeriodReport } }> };
    expect(list.data.map((k) => k.key)).toEqual(['head', 'rpm', 'conc', 'race', 'abort', 'clamp', 'ctx', 'tpm']);
    expect(list.data.find((k) => k.key === 'race')!.budget.day.spent_usd).toBeGreaterThan(9);
    for (const secret of Object.values(SECRETS)) expect(text).not.toContain(secret);
  });

  it('resets a key’s day through one process and the other process admits it again', async () => {
    // A worst case of over $2 cannot fit in what the race left of the day.
    const refused = await send(client(b, SECRETS.KEY_RACE), chat('still broke?', { max_tokens: 100 }));
    expect(refused.ok).toBe(false);
    expect((refused as Extract<Outcome, { ok: false }>).err.code).toBe('budget_exceeded');
    const reset = await fetch(`${a.url}/admin/keys/race/reset?period=day`, { method: 'POST', headers: { authorization: `Bearer ${SECRETS.SWITCHYARD_ADMIN_KEY}` } });
    expect(reset.status).toBe(200);
    expect(await reset.json()).toMatchObject({ key: 'race', period: 'day' });
    expect((await usage(b, SECRETS.KEY_RACE)).budget.day).toMatchObject({ spent_usd: 0, reserved_usd: 0 });
    const admitted = await send(client(b, SECRETS.KEY_RACE), chat('solvent again', { max_tokens: 100 }));
    expect(admitted.ok).toBe(true);
  });
});
