/**
 * recordUsage: prices what the request used (switchyard_cost_usd_total{model,key}) and,
 * for complexity-routed requests, what the reference model would have cost
 * (switchyard_routing_savings_usd_total). Reasoning tokens are part of completion
 * tokens and priced as output. Cache hits cost nothing here unless cache.charge_hits.
 */
import { recordCost } from '../../routing/cost.js';
import type { Usage } from '../../providers/types.js';
import type { Finalizer, RequestContext } from '../context.js';
import type { GatewayDeps } from '../deps.js';

export function createRecordUsageFinalizer(deps: GatewayDeps): Finalizer {
  return function recordUsage(ctx: RequestContext) {
    // The usage reported, or (a client abort without it) the worst case the budget charged.
    const usage = ctx.usage ?? (ctx.locals?.chargedUsage as Usage | undefined);
    if (!usage || !ctx.target) return;
    // A cache answer cost nothing upstream; with cache.charge_hits the key is charged it
    // anyway (budgets), and then it is priced here too, so both show the same spend.
    if ((ctx.cacheResult === 'hit' || ctx.cacheResult === 'semantic-hit' || ctx.cacheResult === 'coalesced') && !ctx.config.cache.charge_hits) return;
    const r = recordCost(deps.metrics, deps.prices, {
      alias: ctx.target.alias,
      keyId: ctx.key?.id ?? 'anonymous',
      usage,
      complexity: ctx.locals.complexity as { route: string; class: string; reference?: string } | undefined,
    });
    ctx.costUsd = r.costUsd;
    if (r.savingsUsd !== undefined) ctx.locals.savingsUsd = r.savingsUsd;
  };
}
