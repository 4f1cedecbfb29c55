/**
 * rateLimit: after resolveRoute and fitContext. Takes every limit that applies to the
 * request (key, team, model alias, global × rpm, tpm, concurrent) in ONE atomic
 * consume of the limits store; tpm is charged the estimate (prompt + completion
 * allowance) and corrected to actual usage when the response ends; concurrency slots
 * are released when it ends. Over a limit: 429 rate_limit_exceeded with Retry-After
 * and OpenAI's x-ratelimit-* headers, which successful responses carry too.
 * Without a key (auth off) only model and global limits apply.
 */
import { GatewayError } from '../../errors.js';
import type { LimitsStore } from '../../stores/limits/types.js';
import { rateLimitHeaders, requestLimitRules, type RequestLimitRule } from '../../stores/limits/request-rules.js';
import { choiceCount, completionAllowance, enforceMaxTokens } from '../../tokens/max-tokens.js';
import { promptTokens, servedFromCache, targetModel, usedTokens } from '../../tokens/request-tokens.js';
import { createTokenCounter } from '../../tokens/token-counter.js';
import type { RequestContext, Stage } from '../context.js';
import type { GatewayDeps } from '../deps.js';

const MEASURE_TEXT = { rpm: 'requests per minute', tpm: 'tokens per minute', concurrent: 'concurrent requests' } as const;

export function createRateLimitStage(deps: GatewayDeps, limits: LimitsStore): Stage {
  const { config, metrics } = deps;
  const counter = createTokenCounter(config);
  const anyLimits = config.keys.some((k) => k.limits) || Object.values(config.teams).some((t) => t.limits) || Object.values(config.models).some((m) => m.limits) || !!config.limits.global;

  // Synchronous when no limit applies (the common case): no Promise, no await per request.
  return function rateLimit(ctx: RequestContext) {
    if (!anyLimits) return;
    const alias = ctx.target?.alias ?? ctx.modelAlias;
    const probe = requestLimitRules(config, { keyId: ctx.key?.id, team: ctx.key?.team, alias }, 0);
    if (probe.length === 0) return;
    return limit(ctx, probe);
  };

  async function limit(ctx: RequestContext, probe: RequestLimitRule[]): Promise<void> {
    const needsTokens = probe.some((r) => r.measure === 'tpm');
    const prompt = needsTokens ? promptTokens(ctx, counter) : 0;
    const perChoice = needsTokens ? completionAllowance(ctx.endpoint, ctx.body, targetModel(ctx)) : 0;
    const completion = perChoice * (needsTokens ? choiceCount(ctx.endpoint, ctx.body) : 0);
    // The estimate is charged as the worst case: hold the backend to it.
    if (needsTokens && enforceMaxTokens(ctx.endpoint, ctx.body, perChoice, () => (ctx.locals.addedMaxTokens = true))) ctx.bodyChanged = true;
    const rules: RequestLimitRule[] = needsTokens ? probe.map((r) => (r.measure === 'tpm' ? { ...r, points: prompt + completion } : r)) : probe;
    const who = (r: RequestLimitRule) => (r.scope === 'global' ? 'the gateway' : `${r.scope} ${r.id.split(':')[1]}`);

    // Larger than a whole minute's allowance: no wait would ever admit it (OpenAI says
    // "Request too large" here, and gives no time to retry at).
    const tooLarge = rules.find((r) => r.measure === 'tpm' && r.points > r.limit);
    if (tooLarge) {
      metrics.rateLimited.labels(ctx.key?.id ?? 'anonymous', `${tooLarge.scope}_tpm`).inc();
      throw new GatewayError('rate_limit_exceeded', {
        type: 'tokens',
        message: `Request too large for tokens per minute (${who(tooLarge)}): limit ${tooLarge.limit}, requested ${tooLarge.points} (prompt ${prompt} + max_tokens ${perChoice}${completion > perChoice ? ` × n ${completion / perChoice}` : ''}). Lower max_tokens or shorten the prompt.`,
      });
    }

    const result = await limits.consume(rules);
    const headers = rateLimitHeaders(rules, result.states);
    if (!result.allowed) {
      const first = rules.find((r) => r.id === result.denied[0])!;
      metrics.rateLimited.labels(ctx.key?.id ?? 'anonymous', `${first.scope}_${first.measure}`).inc();
      throw new GatewayError('rate_limit_exceeded', {
        type: first.measure === 'tpm' ? 'tokens' : 'requests',
        message: `Rate limit reached for ${MEASURE_TEXT[first.measure]} (${who(first)}): limit ${first.limit}.`,
        headers: { ...headers, 'retry-after': String(Math.max(1, Math.ceil(result.retryAfterMs / 1000))) },
      });
    }
    Object.assign(ctx.responseHeaders, headers);
    const grant = result.grant!;
    ctx.onEnd.push(async (c) => {
      if (needsTokens) {
        // A cache answer used no upstream tokens, whatever its recorded usage says.
        const used = servedFromCache(c) ? { prompt: 0, completion: 0 } : usedTokens(c, { prompt, completion });
        const delta = used.prompt + used.completion - (prompt + completion);
        if (delta !== 0) for (const r of rules) if (r.measure === 'tpm') await limits.adjust(grant, r.id, delta);
      }
      await limits.release(grant);
    });
  }
}
