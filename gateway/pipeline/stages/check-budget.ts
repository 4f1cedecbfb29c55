/**
 * checkBudget: after rateLimit, before checkCache and dispatch. Reserves the worst case
 * (prompt + completion allowance, priced at the alias's price) on all of the key's and
 * team's day and month scopes in ONE atomic step. When it does not fit: 429
 * budget_exceeded, or, when every refusing scope's policy is `clamp`, lowers max_tokens
 * to what is left (ctx.bodyChanged, header x-switchyard-max-tokens-clamped) and
 * reserves that. The reservation is settled to actual usage in ctx.onEnd on every
 * ending — success, upstream error, client abort, cut stream — priced at the alias
 * that finally answered; a cut stream without usage settles at the worst case, never 0.
 * Without a key (auth off) there is no budget.
 */
import { GatewayError } from '../../errors.js';
import type { Metrics } from '../../metrics.js';
import { priceUsd, requestBudgetScopes, type RequestBudgetScope } from '../../stores/budgets/request-scopes.js';
import { newReservationId, remaining, type BudgetStore, type BudgetUsage, type ReserveResult } from '../../stores/budgets/types.js';
import { choiceCount, completionAllowance, enforceMaxTokens, setMaxTokens } from '../../tokens/max-tokens.js';
import { promptTokens, servedFromCache, targetModel, usedTokens } from '../../tokens/request-tokens.js';
import { createTokenCounter } from '../../tokens/token-counter.js';
import type { RequestContext, Stage } from '../context.js';
import type { GatewayDeps } from '../deps.js';
import type { KeyConfig } from '../../config/schema.js';

/** Budget gauges trail the stores by at most this much. */
export const GAUGE_PUBLISH_MS = 250;

export const MAX_TOKENS_CLAMPED_HEADER = 'x-switchyard-max-tokens-clamped';

type GaugeChild = ReturnType<Metrics['budgetSpent']['labels']>;
interface ScopeGauges {
  spent: GaugeChild;
  limit: GaugeChild;
  remaining: GaugeChild;
}

/**
 * Sets the budget gauges of a request's scopes. `children` caches the label children per
 * scope id (prom-client's label hashing is not free, and this runs on every keyed request).
 */
export function updateBudgetGauges(
  metrics: Metrics,
  scopes: readonly RequestBudgetScope[],
  usage: readonly BudgetUsage[],
  children: Map<string, ScopeGauges> = new Map(),
): void {
  if (usage.length !== scopes.length) return;
  scopes.forEach((s, i) => {
    let g = children.get(s.id);
    if (!g) {
      const label = s.owner === 'key' ? s.ownerId : `team:${s.ownerId}`;
      g = { spent: metrics.budgetSpent.labels(label, s.period), limit: metrics.budgetLimit.labels(label, s.period), remaining: metrics.budgetRemaining.labels(label, s.period) };
      children.set(s.id, g);
    }
    g.spent.set(usage[i].spentUsd);
    if (s.limitUsd !== undefined) {
      g.limit.set(s.limitUsd);
      g.remaining.set(Math.max(0, s.limitUsd - usage[i].spentUsd));
    }
  });
}

export function createCheckBudgetStage(deps: GatewayDeps, budgets: BudgetStore, now: () => number = Date.now): Stage {
  const { config, metrics } = deps;
  const counter = createTokenCounter(config);
  const gaugeChildren = new Map<string, ScopeGauges>();
  // Gauges are read by a scrape every few seconds; setting them on every request costs
  // prom-client a label hash each. The latest figures are kept and published at most
  // once per GAUGE_PUBLISH_MS.
  const pending = new Map<string, { scope: RequestBudgetScope; usage: BudgetUsage }>();
  let publishTimer: NodeJS.Timeout | undefined;
  const publish = () => {
    publishTimer = undefined;
    const items = [...pending.values()];
    pending.clear();
    updateBudgetGauges(metrics, items.map((i) => i.scope), items.map((i) => i.usage), gaugeChildren);
  };
  const recordGauges = (scopes: readonly RequestBudgetScope[], usage: readonly BudgetUsage[]) => {
    if (usage.length !== scopes.length) return;
    scopes.forEach((scope, i) => pending.set(scope.id, { scope, usage: usage[i] }));
    publishTimer ??= setTimeout(publish, GAUGE_PUBLISH_MS).unref();
  };
  // A key's scopes only change when a day or month ends: build them once per period.
  const scopeCache = new WeakMap<KeyConfig, { untilMs: number; scopes: RequestBudgetScope[] }>();
  const scopesFor = (key: KeyConfig, t: number): RequestBudgetScope[] => {
    const hit = scopeCache.get(key);
    if (hit && t < hit.untilMs) return hit.scopes;
    const scopes = requestBudgetScopes(config, key, t);
    scopeCache.set(key, { untilMs: Math.min(...scopes.map((x) => x.periodEndMs)), scopes });
    // Old periods' children are dropped with the scopes they belonged to.
    if (gaugeChildren.size > 10_000) gaugeChildren.clear();
    return scopes;
  };

  /** The largest completion that fits every scope's room, given the prompt. */
  const affordableCompletion = (scopes: readonly RequestBudgetScope[], usage: readonly BudgetUsage[], ctx: RequestContext, prompt: number): number => {
    const model = targetModel(ctx);
    const promptUsd = priceUsd(model, prompt, 0);
    const perOutput = priceUsd(model, 0, 1);
    let best = Infinity;
    scopes.forEach((s, i) => {
      const room = remaining(s, usage[i]);
      best = Math.min(best, room.tokens - prompt);
      // The small epsilon absorbs float noise (0.000044 / 0.000001 = 43.99999…); the store re-checks exactly.
      if (perOutput > 0) best = Math.min(best, Math.floor((room.usd - promptUsd) / perOutput + 1e-6));
      else if (room.usd < promptUsd) best = -1;
    });
    return Math.floor(best);
  };

  /** What an ended request spent: nothing for a free cache hit; priced at the alias that answered (a fallback may cost more or less). */
  const spendOf = (c: RequestContext, admitted: { prompt: number; completion: number }, admittedModel: ReturnType<typeof targetModel>) => {
    const free = servedFromCache(c) && !config.cache.charge_hits;
    const used: { prompt: number; completion: number; source?: string } = free ? { prompt: 0, completion: 0 } : usedTokens(c, admitted);
    // A worst case charged for want of usage is what the cost metric and the access line
    // report too (record-usage, access-log), so all three show the same spend.
    if (used.source === 'worst_case' && used.prompt + used.completion > 0) {
      c.locals.chargedUsage = { prompt_tokens: used.prompt, completion_tokens: used.completion, total_tokens: used.prompt + used.completion, estimated: true };
    }
    return { usd: priceUsd(c.target?.model ?? admittedModel, used.prompt, used.completion), tokens: used.prompt + used.completion };
  };

  // Synchronous for keys without a budget limit (the common case): no Promise, no await.
  return function checkBudget(ctx: RequestContext) {
    if (!ctx.key) return;
    const scopes = scopesFor(ctx.key, now());
    const model = targetModel(ctx);
    // A key without any budget limit only has its spend recorded: no worst case to reserve,
    // so the prompt need not be tokenized here (hot path of unbudgeted keys).
    const limited = scopes.some((s) => s.limitUsd !== undefined || s.limitTokens !== undefined);
    if (limited) return reserve(ctx, scopes, model);
    // Nothing to check, so nothing to hold: the spend is recorded once, at the end — and
    // not at all when there is none (a free cache hit): recording nothing changes nothing.
    const recordId = newReservationId();
    ctx.onEnd.push((c) => {
      const s = spendOf(c, { prompt: 0, completion: 0 }, model);
      if (s.usd === 0 && s.tokens === 0) return;
      return budgets.record(recordId, scopes, s.usd, s.tokens).then((usage) => recordGauges(scopes, usage));
    });
  };

  async function reserve(ctx: RequestContext, scopes: RequestBudgetScope[], model: ReturnType<typeof targetModel>): Promise<void> {
    const prompt = promptTokens(ctx, counter);
    const choices = choiceCount(ctx.endpoint, ctx.body);
    let perChoice = completionAllowance(ctx.endpoint, ctx.body, model);
    let completion = perChoice * choices;
    // The reservation is the worst case only if the backend is held to it: without a
    // limit in the body (or with a larger one) it could generate past what was reserved.
    if (enforceMaxTokens(ctx.endpoint, ctx.body, perChoice, () => (ctx.locals.addedMaxTokens = true))) ctx.bodyChanged = true;

    let result: ReserveResult = await budgets.reserve(scopes, priceUsd(model, prompt, completion), prompt + completion);
    if (!result.ok) {
      const refused = scopes.filter((s) => (result as { denied: string[] }).denied.includes(s.id));
      const clampable = ctx.endpoint !== 'embeddings' && refused.every((s) => s.onExceed === 'clamp');
      const fits = clampable ? Math.floor(affordableCompletion(scopes, result.usage, ctx, prompt) / Math.max(1, choices)) : 0;
      if (fits >= 1 && fits < perChoice) {
        result = await budgets.reserve(scopes, priceUsd(model, prompt, fits * choices), prompt + fits * choices);
        if (result.ok) {
          perChoice = fits;
          completion = fits * choices;
          setMaxTokens(ctx.body, fits);
          ctx.bodyChanged = true;
          ctx.responseHeaders[MAX_TOKENS_CLAMPED_HEADER] = String(fits);
        }
      }
      if (!result.ok) {
        const denied = scopes.filter((x) => (result as { denied: string[] }).denied.includes(x.id));
        const list = denied.length ? denied : refused;
        const costUsd = priceUsd(model, prompt, completion);
        const tokens = prompt + completion;
        const describe = (s: RequestBudgetScope) => (s.limitUsd !== undefined ? `$${s.limitUsd} ${s.period === 'day' ? 'daily' : 'monthly'} budget` : `${s.limitTokens} token ${s.period === 'day' ? 'daily' : 'monthly'} budget`);
        // A request that alone costs more than a whole budget fails whenever it is sent:
        // say so, and promise no time at which a retry would succeed.
        const neverFits = list.find((s) => (s.limitUsd !== undefined && costUsd > s.limitUsd) || (s.limitTokens !== undefined && tokens > s.limitTokens));
        if (neverFits) {
          throw new GatewayError('budget_exceeded', {
            message: `This request alone (up to ${tokens} tokens, $${costUsd.toFixed(6)} with max_tokens ${perChoice}${choices > 1 ? ` × n ${choices}` : ''}) exceeds the ${describe(neverFits)} of ${neverFits.owner} ${neverFits.ownerId}; lower max_tokens or n.`,
          });
        }
        // Retry when every refusing period has renewed: the one that renews last.
        const s = list.reduce((a, b) => (b.periodEndMs > a.periodEndMs ? b : a));
        throw new GatewayError('budget_exceeded', {
          message: `The ${describe(s)} of ${s.owner} ${s.ownerId} is exhausted; it renews at ${new Date(s.periodEndMs).toISOString()}.`,
          headers: { 'retry-after': String(Math.max(1, Math.ceil((s.periodEndMs - now()) / 1000))) },
        });
      }
    }

    const reservation = result.reservation;
    const admitted = { prompt, completion };
    ctx.onEnd.push(async (c) => {
      const s = spendOf(c, admitted, model);
      recordGauges(scopes, await budgets.settle(reservation, s.usd, s.tokens));
    });
  }
}
