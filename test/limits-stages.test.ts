/**
 * The rate-limit and check-budget stages on hand-built request contexts (the lead's
 * end-to-end gateway tests cover the HTTP side). Memory stores; the Redis stores pass
 * the same contract suites.
 */
import { describe, expect, it } from 'vitest';
import { ConfigSchema, type Config } from '../gateway/config/schema.js';
import { GatewayError } from '../gateway/errors.js';
import { createLogger } from '../gateway/logger.js';
import { createMetrics, type Metrics } from '../gateway/metrics.js';
import type { RequestContext } from '../gateway/pipeline/context.js';
import type { GatewayDeps } from '../gateway/pipeline/deps.js';
import { createCheckBudgetStage } from '../gateway/pipeline/stages/check-budget.js';
import { createRateLimitStage } from '../gateway/pipeline/stages/rate-limit.js';
import { createMemoryBudgets } from '../gateway/stores/budgets/memory-budgets.js';
import { createMemoryLimits } from '../gateway/stores/limits/memory-limits.js';
import { formatResetDuration } from '../gateway/stores/limits/request-rules.js';
import type { Usage } from '../gateway/providers/types.js';
import { RequestCancellation } from '../gateway/upstream/cancellation.js';

/** One silent logger for the file: each createLogger adds a flush timer and an exit listener. */
const silent = createLogger({ level: 'silent' });

function deps(raw: Record<string, unknown>): GatewayDeps {
  return { config: ConfigSchema.parse(raw), metrics: createMetrics({ defaultMetrics: false }), logger: silent } as unknown as GatewayDeps;
}

function ctxFor(config: Config, keyId: string | undefined, body: Record<string, unknown>): RequestContext {
  const alias = body.model as string;
  const model = config.models[alias];
  return {
    id: 't', config, endpoint: 'chat', body, bodyChanged: false, modelAlias: alias, stream: false, candidates: [],
    key: config.keys.find((k) => k.id === keyId), abort: new RequestCancellation(), res: { aborted: false },
    target: { alias, model, backendName: model.backend, backend: {} },
    responseHeaders: {}, status: 0, upstreamNs: 0n, waitNs: 0n, onEnd: [], locals: {},
  } as unknown as RequestContext;
}

/** What dispatch does to a context, then the end hooks, as runPipeline runs them. */
async function finish(ctx: RequestContext, how: { usage?: Usage; reached?: boolean; outcome?: RequestContext['streamOutcome']; abort?: boolean }): Promise<void> {
  if (how.reached ?? true) ctx.upstreamNs = 1_000_000n;
  ctx.usage = how.usage;
  ctx.streamOutcome = how.outcome;
  if (how.abort) ctx.abort.abort();
  for (const hook of ctx.onEnd) await hook(ctx);
}

async function thrown(p: unknown): Promise<GatewayError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
  throw new Error('expected a GatewayError');
}

const usage = (prompt: number, completion: number): Usage => ({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });
const hello = { model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }] }; // 8 prompt tokens
const counterValue = async (m: Metrics['rateLimited'], labels: Record<string, string>) => (await m.get()).values.find((v) => Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x))?.value ?? 0;

describe('the rate-limit stage', () => {
  const raw = {
    keys: [
      { id: 'team-a', key: 'k1', team: 'research', limits: { rpm: 2, tpm: 100, concurrent: 1 } },
      { id: 'team-b', key: 'k2', team: 'research' },
    ],
    teams: { research: { limits: { rpm: 3 } } },
    models: { 'gpt-4o': { backend: 'b', model: 'gpt-4o', limits: { rpm: 50 } } },
    limits: { global: { rpm: 1000 } },
  };

  it('admits within limits and sends OpenAI’s rate-limit headers on the successful response', async () => {
    const d = deps(raw);
    const stage = createRateLimitStage(d, createMemoryLimits());
    const ctx = ctxFor(d.config, 'team-a', { ...hello, max_tokens: 12 });
    await stage(ctx);
    expect(ctx.responseHeaders).toMatchObject({
      'x-ratelimit-limit-requests': '2',
      'x-ratelimit-remaining-requests': '1',
      'x-ratelimit-reset-requests': '1m0s',
      'x-ratelimit-limit-tokens': '100',
      'x-ratelimit-remaining-tokens': String(100 - 8 - 12),
      'x-ratelimit-reset-tokens': '1m0s',
    });
  });

  it('refuses over a limit with 429 rate_limit_exceeded, Retry-After, headers and the metric', async () => {
    const d = deps(raw);
    const stage = createRateLimitStage(d, createMemoryLimits());
    for (let i = 0; i < 2; i++) {
      const ok = ctxFor(d.config, 'team-a', { ...hello, max_tokens: 1 });
      await stage(ok);
      await finish(ok, { usage: usage(8, 1) });
    }
    const err = await thrown(stage(ctxFor(d.config, 'team-a', { ...hello, max_tokens: 1 })));
    expect(err.code).toBe('rate_limit_exceeded');
    expect(err.status).toBe(429);
    expect(err.message).toContain('requests per minute (key team-a): limit 2');
    expect(Number(err.headers!['retry-after'])).toBeGreaterThanOrEqual(59);
    expect(err.headers).toMatchObject({ 'x-ratelimit-limit-requests': '2', 'x-ratelimit-remaining-requests': '0' });
    expect(await counterValue(d.metrics.rateLimited, { key: 'team-a', limit: 'key_rpm' })).toBe(1);
  });

  it('applies the team limit across the team’s keys', async () => {
    const d = deps(raw);
    const stage = createRateLimitStage(d, createMemoryLimits());
    for (let i = 0; i < 3; i++) await stage(ctxFor(d.config, 'team-b', hello));
    const err = await thrown(stage(ctxFor(d.config, 'team-b', hello)));
    expect(err.message).toContain('(team research)');
    expect(await counterValue(d.metrics.rateLimited, { key: 'team-b', limit: 'team_rpm' })).toBe(1);
  });

  it('holds a concurrency slot until the response ends', async () => {
    const d = deps(raw);
    const stage = createRateLimitStage(d, createMemoryLimits());
    const first = ctxFor(d.config, 'team-a', { ...hello, max_tokens: 1 });
    await stage(first);
    const err = await thrown(stage(ctxFor(d.config, 'team-a', { ...hello, max_tokens: 1 })));
    expect(err.message).toContain('concurrent requests');
    expect(err.headers!['retry-after']).toBe('1');
    await finish(first, { usage: usage(8, 1) });
    await stage(ctxFor(d.config, 'team-a', { ...hello, max_tokens: 1 }));
  });

  it('charges the token estimate at admission and corrects it to actual usage at the end', async () => {
    const d = deps(raw);
    const limits = createMemoryLimits();
    const stage = createRateLimitStage(d, limits);
    const ctx = ctxFor(d.config, 'team-a', { ...hello, max_tokens: 80 });
    await stage(ctx);
    expect(ctx.responseHeaders['x-ratelimit-remaining-tokens']).toBe('12');
    await finish(ctx, { usage: usage(8, 2) });
    const [tpm] = await limits.peek([{ id: 'key:team-a:tpm', kind: 'window', points: 0, limit: 100, windowMs: 60_000 }]);
    expect(tpm.used).toBe(10);
  });

  it('refunds the tokens of a request that never reached a backend', async () => {
    const d = deps(raw);
    const limits = createMemoryLimits();
    const stage = createRateLimitStage(d, limits);
    const ctx = ctxFor(d.config, 'team-a', { ...hello, max_tokens: 80 });
    await stage(ctx);
    await finish(ctx, { reached: false });
    const [tpm] = await limits.peek([{ id: 'key:team-a:tpm', kind: 'window', points: 0, limit: 100, windowMs: 60_000 }]);
    expect(tpm.used).toBe(0);
  });

  it('applies only model and global limits to a request without a key', async () => {
    const d = deps({ ...raw, models: { 'gpt-4o': { backend: 'b', model: 'gpt-4o', limits: { rpm: 1 } } } });
    const stage = createRateLimitStage(d, createMemoryLimits());
    await stage(ctxFor(d.config, undefined, hello));
    const err = await thrown(stage(ctxFor(d.config, undefined, hello)));
    expect(err.message).toContain('(model gpt-4o)');
    expect(await counterValue(d.metrics.rateLimited, { key: 'anonymous', limit: 'model_rpm' })).toBe(1);
  });

  it('formats reset durations the way OpenAI does', () => {
    expect([250, 1000, 1001, 59_000, 60_000, 360_000, 3_723_000].map(formatResetDuration)).toEqual(['250ms', '1s', '2s', '59s', '1m0s', '6m0s', '1h2m3s']);
  });
});

describe('the check-budget stage', () => {
  // $1 per million tokens in and out: 1 token = $0.000001.
  const raw = (onExceed: 'reject' | 'clamp') => ({
    keys: [{ id: 'team-a', key: 'k1', team: 'research', budget: { usd_per_day: 0.0001, tokens_per_month: 1_000_000, on_exceed: onExceed } }],
    teams: { research: { budget: { usd_per_month: 5 } } },
    models: { 'gpt-4o': { backend: 'b', model: 'gpt-4o', price: { input: 1, output: 1 }, default_max_tokens: 50 } },
  });
  const NOW = Date.UTC(2026, 10, 25, 12);
  const setup = (onExceed: 'reject' | 'clamp' = 'reject') => {
    const d = deps(raw(onExceed));
    const budgets = createMemoryBudgets();
    return { d, budgets, stage: createCheckBudgetStage(d, budgets, () => NOW) };
  };

  it('reserves prompt plus the default max_tokens and settles to actual usage on every scope', async () => {
    const { d, budgets, stage } = setup();
    const ctx = ctxFor(d.config, 'team-a', hello);
    await stage(ctx);
    expect(await budgets.get('key:team-a:day:2026-11-25')).toEqual({ spentUsd: 0, reservedUsd: 0.000058, spentTokens: 0, reservedTokens: 58 });
    await finish(ctx, { usage: usage(8, 5) });
    for (const id of ['key:team-a:day:2026-11-25', 'key:team-a:month:2026-11', 'team:research:day:2026-11-25', 'team:research:month:2026-11']) {
      expect(await budgets.get(id)).toEqual({ spentUsd: 0.000013, reservedUsd: 0, spentTokens: 13, reservedTokens: 0 });
    }
    // Gauges are published shortly after the settle (batched, not per request).
    const spentNow = async () => (await d.metrics.budgetSpent.get()).values.find((v) => v.labels.key === 'team-a' && v.labels.period === 'day')?.value;
    await expect.poll(spentNow, { timeout: 2000 }).toBe(0.000013);
    const left = (await d.metrics.budgetRemaining.get()).values.find((v) => v.labels.key === 'team-a' && v.labels.period === 'day');
    expect(left?.value).toBeCloseTo(0.000087, 12);
  });

  it('refuses with 429 budget_exceeded when the worst case does not fit', async () => {
    const { d, stage } = setup();
    // Larger than the whole budget: refused whenever it is sent, so no Retry-After.
    const never = await thrown(stage(ctxFor(d.config, 'team-a', { ...hello, max_tokens: 93 })));
    expect(never.code).toBe('budget_exceeded');
    expect(never.status).toBe(429);
    expect(never.type).toBe('insufficient_quota');
    expect(never.message).toContain('This request alone');
    expect(never.message).toContain('daily budget of key team-a');
    expect(never.headers?.['retry-after']).toBeUndefined();
    // Fits the budget, not what is left of it (the first one's reservation is held): retry at the renewal.
    await stage(ctxFor(d.config, 'team-a', { ...hello, max_tokens: 50 }));
    const err = await thrown(stage(ctxFor(d.config, 'team-a', { ...hello, max_tokens: 50 })));
    expect(err.code).toBe('budget_exceeded');
    expect(err.message).toContain('daily budget of key team-a is exhausted');
    expect(Number(err.headers!['retry-after'])).toBe(12 * 3600);
  });

  it('clamps max_tokens to what is left under the clamp policy', async () => {
    const { d, stage } = setup('clamp');
    const first = ctxFor(d.config, 'team-a', { ...hello, max_tokens: 40 });
    await stage(first);
    const ctx = ctxFor(d.config, 'team-a', { ...hello, max_tokens: 500 });
    await stage(ctx);
    // $0.0001 = 100 tokens; 48 held by the first request, 8 for this prompt → 44 left.
    expect(ctx.body.max_tokens).toBe(44);
    expect(ctx.bodyChanged).toBe(true);
    expect(ctx.responseHeaders['x-switchyard-max-tokens-clamped']).toBe('44');
    expect(await thrown(stage(ctxFor(d.config, 'team-a', { ...hello, max_tokens: 500 })))).toMatchObject({ code: 'budget_exceeded' });
  });

  it('settles a cut stream without usage at the worst case, never at zero', async () => {
    const { d, budgets, stage } = setup();
    const ctx = ctxFor(d.config, 'team-a', { ...hello, max_tokens: 20, stream: true });
    await stage(ctx);
    await finish(ctx, { outcome: 'interrupted' });
    expect(await budgets.get('key:team-a:day:2026-11-25')).toMatchObject({ spentTokens: 28, reservedTokens: 0 });
  });

  it('settles a client abort without usage at the worst case', async () => {
    const { d, budgets, stage } = setup();
    const ctx = ctxFor(d.config, 'team-a', { ...hello, max_tokens: 20 });
    await stage(ctx);
    await finish(ctx, { abort: true });
    expect(await budgets.get('key:team-a:day:2026-11-25')).toMatchObject({ spentTokens: 28, reservedTokens: 0 });
  });

  it('settles the dispatcher’s estimate of a cut stream when it made one', async () => {
    const { d, budgets, stage } = setup();
    const ctx = ctxFor(d.config, 'team-a', { ...hello, max_tokens: 20, stream: true });
    await stage(ctx);
    await finish(ctx, { outcome: 'client_aborted', usage: { ...usage(8, 3), estimated: true } });
    expect(await budgets.get('key:team-a:day:2026-11-25')).toMatchObject({ spentTokens: 11, reservedTokens: 0 });
  });

  it('releases the whole reservation of a request that never reached a backend, or got an upstream error', async () => {
    const { d, budgets, stage } = setup();
    const never = ctxFor(d.config, 'team-a', hello);
    await stage(never);
    await finish(never, { reached: false });
    const failed = ctxFor(d.config, 'team-a', hello);
    await stage(failed);
    await finish(failed, { reached: true });
    expect(await budgets.get('key:team-a:day:2026-11-25')).toEqual({ spentUsd: 0, reservedUsd: 0, spentTokens: 0, reservedTokens: 0 });
  });

  it('does not charge a cache hit unless cache.charge_hits is set', async () => {
    const { d, budgets, stage } = setup();
    const ctx = ctxFor(d.config, 'team-a', hello);
    await stage(ctx);
    ctx.cacheResult = 'hit';
    await finish(ctx, { usage: usage(8, 5) });
    expect(await budgets.get('key:team-a:day:2026-11-25')).toMatchObject({ spentTokens: 0, reservedTokens: 0 });
  });

  it('lets 50 concurrent requests race for the last of a budget without overshoot', async () => {
    const { d, budgets, stage } = setup();
    const ctxs = Array.from({ length: 50 }, () => ctxFor(d.config, 'team-a', { ...hello, max_tokens: 2 }));
    const results = await Promise.allSettled(ctxs.map((c) => stage(c)));
    const admitted = ctxs.filter((_, i) => results[i].status === 'fulfilled');
    expect(admitted).toHaveLength(10); // 10 × (8 + 2) tokens = $0.0001
    expect((await budgets.get('key:team-a:day:2026-11-25')).reservedUsd).toBeLessThanOrEqual(0.0001);
    await Promise.all(admitted.map((c, i) => finish(c, { usage: usage(8, i % 3) })));
    const expectedTokens = admitted.reduce((s, _, i) => s + 8 + (i % 3), 0);
    expect(await budgets.get('key:team-a:day:2026-11-25')).toEqual({ spentUsd: expectedTokens / 1e6, reservedUsd: 0, spentTokens: expectedTokens, reservedTokens: 0 });
  });

  it('tracks nothing for a request without a key', async () => {
    const { d, stage } = setup();
    const ctx = ctxFor(d.config, undefined, hello);
    await stage(ctx);
    expect(ctx.onEnd).toHaveLength(0);
  });
});

describe('usedTokens', () => {
  it('reports the worst case of a cut request without writing it into the request (stages must not see each other\'s figures)', async () => {
    const { usedTokens } = await import('../gateway/tokens/request-tokens.js');
    const ctx = { upstreamNs: 1_000_000n, abort: { aborted: true }, res: { aborted: true } } as unknown as RequestContext;
    expect(usedTokens(ctx, { prompt: 100, completion: 4096 })).toEqual({ prompt: 100, completion: 4096, source: 'worst_case' });
    expect(ctx.usage).toBeUndefined();
    expect(usedTokens(ctx, { prompt: 100, completion: 50 })).toEqual({ prompt: 100, completion: 50, source: 'worst_case' });
  });
});
