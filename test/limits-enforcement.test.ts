/**
 * What budgets and tokens-per-minute limits reserve is what the backend may spend:
 * every choice of `n` is counted, a request without max_tokens is held to the reserved
 * allowance (in the field its backend understands), an answer without usage is billed by
 * its length, and a refusal says when (or whether) a retry can succeed. Through the
 * gateway with the official openai SDK, against the mock upstream.
 */
import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createMetrics } from '../gateway/metrics.js';
import { startMockUpstream, type MockUpstream } from './support/mock-upstream.js';
import { startTestGateway, type TestGateway } from './support/gateway.js';
import { settledSpend } from './support/usage.js';

const spend = (key: string) => settledSpend(gw.url, key);

// USD per million tokens: 1 prompt token = $0.01, 1 completion token = $0.02.
const PRICE = { input: 10_000, output: 20_000 };
const KEYS = { N: 'sk-enf-n-0123456789', OPEN: 'sk-enf-open-0123456789', TPM: 'sk-enf-tpm-0123456789', BOTH: 'sk-enf-both-0123456789', NOUSE: 'sk-enf-nouse-0123456789' };

let mock: MockUpstream;
let gw: TestGateway;
beforeAll(async () => {
  mock = await startMockUpstream();
  gw = await startTestGateway(
    {
      server: { host: '127.0.0.1', port: 0 },
      backends: {
        mock: { type: 'openai-compatible', base_url: mock.url },
        cloud: { type: 'openai', base_url: mock.url, api_key: '${K_UP}' },
      },
      models: {
        m: { backend: 'mock', model: 'gpt-4o-mini', price: PRICE },
        reasoning: { backend: 'cloud', model: 'o3-mini', price: PRICE },
        tiny: { backend: 'mock', model: 'tiny-window', price: PRICE, context_window: 50 },
      },
      routes: [
        { name: 'fb-field', match: { model: 'think' }, targets: [{ model: 'reasoning' }], fallbacks: ['m'] },
        { name: 'fb-window', match: { model: 'big' }, targets: [{ model: 'm' }], fallbacks: ['tiny'] },
      ],
      keys: [
        { id: 'n', key: '${K_N}', budget: { usd_per_day: 10 } },
        { id: 'open', key: '${K_OPEN}', budget: { usd_per_day: 1000 } },
        { id: 'tpm', key: '${K_TPM}', limits: { tpm: 1000 } },
        { id: 'both', key: '${K_BOTH}', budget: { usd_per_day: 1, usd_per_month: 1 } },
        { id: 'nouse', key: '${K_NOUSE}', budget: { usd_per_day: 1000 } },
      ],
    },
    { env: { K_UP: 'sk-upstream-test', K_N: KEYS.N, K_OPEN: KEYS.OPEN, K_TPM: KEYS.TPM, K_BOTH: KEYS.BOTH, K_NOUSE: KEYS.NOUSE }, metrics: createMetrics({ defaultMetrics: false }) },
  );
});
afterAll(async () => {
  await gw?.close();
  await mock?.close();
});
beforeEach(() => mock.reset());

const client = (key: string) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 });
const hi = [{ role: 'user' as const, content: 'hi' }];

async function refusal(p: Promise<unknown>): Promise<APIError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof APIError) return err;
    throw err;
  }
  throw new Error('the request was admitted');
}

describe('budget and TPM reservations hold the backend to them', () => {
  it('counts every choice of n: 8 choices of 80 tokens do not fit a $10 budget that one would', async () => {
    // One choice: $0.02 + 80 × $0.02 = $1.62, admitted. Eight: ~$12.8, more than the whole budget.
    await client(KEYS.N).chat.completions.create({ model: 'm', messages: hi, max_tokens: 80 });
    const err = await refusal(client(KEYS.N).chat.completions.create({ model: 'm', messages: hi, max_tokens: 80, n: 8 }));
    expect(err.status).toBe(429);
    expect(err.message).toMatch(/This request alone .*exceeds the \$10 daily budget/);
    expect(err.message).toContain('n 8');
    expect(err.headers?.get('retry-after')).toBeNull(); // no wait would ever admit it
  });

  it('sends the reserved allowance as max_tokens when the client set none, and max_completion_tokens to OpenAI', async () => {
    await client(KEYS.OPEN).chat.completions.create({ model: 'm', messages: hi });
    await client(KEYS.OPEN).chat.completions.create({ model: 'reasoning', messages: hi });
    // Both limits given and the larger one would outrun the reservation: both are lowered.
    await client(KEYS.OPEN).chat.completions.create({ model: 'm', messages: hi, max_completion_tokens: 100, max_tokens: 100_000 } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const bodies = mock.requests.filter((r) => r.path === '/v1/chat/completions').map((r) => r.body as Record<string, unknown>);
    expect(bodies[0]).toMatchObject({ max_tokens: 4096 });
    expect(bodies[0]!.max_completion_tokens).toBeUndefined();
    expect(bodies[1]).toMatchObject({ max_completion_tokens: 4096 });
    expect(bodies[1]!.max_tokens).toBeUndefined();
    expect(bodies[2]).toMatchObject({ max_completion_tokens: 100, max_tokens: 100 });
  });

  it("gives a fallback the limit field its own backend understands, and skips one whose window is too small", async () => {
    mock.enqueue({ status: 500 }, {});
    await client(KEYS.OPEN).chat.completions.create({ model: 'think', messages: hi });
    const [primary, fallback] = mock.requests.filter((r) => r.path === '/v1/chat/completions').map((r) => r.body as Record<string, unknown>);
    expect(primary).toMatchObject({ model: 'o3-mini', max_completion_tokens: 4096 });
    expect(primary!.max_tokens).toBeUndefined();
    expect(fallback).toMatchObject({ model: 'gpt-4o-mini', max_tokens: 4096 });
    expect(fallback!.max_completion_tokens).toBeUndefined();

    mock.reset();
    mock.enqueue({ status: 500 });
    const err = await refusal(client(KEYS.OPEN).chat.completions.create({ model: 'big', messages: [{ role: 'user', content: 'a question longer than fifty tokens '.repeat(10) }], max_tokens: 10 }));
    expect(err.status).toBe(500); // the first target's answer, not a 400 from a fallback that could never fit
    expect(mock.requests.filter((r) => (r.body as { model?: string })?.model === 'tiny-window')).toHaveLength(0);
  });

  it('bills an answer that reports no usage by its length, not as zero completion tokens', async () => {
    const text = 'x'.repeat(4000);
    await client(KEYS.NOUSE).chat.completions.create({ model: 'm', messages: hi, max_tokens: 2000, mock: { text, noUsage: true } } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const s = await spend(KEYS.NOUSE);
    expect(s.tokens).toBeGreaterThanOrEqual(1000); // ~4000 chars / 4 completion tokens, plus the prompt
    expect(s.spent_usd).toBeGreaterThanOrEqual(20); // 1,000 × $0.02
  });

  it('refuses a request larger than a whole minute of TPM as too large, without a Retry-After', async () => {
    const err = await refusal(client(KEYS.TPM).chat.completions.create({ model: 'm', messages: hi, max_tokens: 5000 }));
    expect(err.status).toBe(429);
    expect(err.type).toBe('tokens');
    expect(err.message).toMatch(/Request too large for tokens per minute .*limit 1000, requested \d+/);
    expect(err.headers?.get('retry-after')).toBeNull();
    // One that fits is admitted and held to its allowance.
    await client(KEYS.TPM).chat.completions.create({ model: 'm', messages: hi, max_tokens: 100 });
    expect((mock.requests.at(-1)!.body as Record<string, unknown>).max_tokens).toBe(100);
  });

  it('asks to retry when every refusing period has renewed: the month, when day and month are both spent', async () => {
    // Reserved: ~$0.22; the answer reports 60 completion tokens: $1.20 spent of $1 a day and a month.
    await client(KEYS.BOTH).chat.completions.create({ model: 'm', messages: hi, max_tokens: 10, mock: { usage: { prompt_tokens: 1, completion_tokens: 60 } } } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    await spend(KEYS.BOTH);
    const err = await refusal(client(KEYS.BOTH).chat.completions.create({ model: 'm', messages: hi, max_tokens: 1 }));
    expect(err.status).toBe(429);
    const now = new Date();
    const monthEnd = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
    const retryAfter = Number(err.headers?.get('retry-after'));
    expect(Math.abs(retryAfter - (monthEnd - Date.now()) / 1000)).toBeLessThan(5);
    expect(err.message).toContain('monthly budget');
  });
});
