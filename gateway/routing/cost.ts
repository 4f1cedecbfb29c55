/**
 * Prices: USD per million tokens from `models.<alias>.price`, compiled once per config
 * into USD per token. The usage finalizer calls `cost()` once per request (stream and
 * non-stream alike: one counting path) and `savings()` for complexity-routed requests.
 *
 * Reasoning tokens are already part of completion_tokens (OpenAI's
 * completion_tokens_details.reasoning_tokens) and are billed as output, so they are
 * never added a second time. Cached prompt tokens are priced as input: the schema has
 * no separate cache price.
 */
import type { Config, ModelConfig } from '../config/schema.js';
import type { Metrics } from '../metrics.js';
import type { Usage } from '../providers/types.js';

export interface CompiledPrice {
  /** USD per prompt token. */
  readonly input: number;
  /** USD per completion token (reasoning included). */
  readonly output: number;
}

export interface PriceTable {
  /** Undefined when the alias has no price (or does not exist). */
  price(alias: string): CompiledPrice | undefined;
  /** USD for this usage on this alias; undefined when the alias has no price. */
  cost(alias: string, usage: Usage): number | undefined;
  /**
   * What complexity routing saved: cost on the reference alias minus the actual cost,
   * for the same usage. Negative when the routed model is dearer than the reference
   * (a reasoning model); undefined when either alias has no price.
   */
  savings(actualAlias: string, referenceAlias: string, usage: Usage): number | undefined;
  /** Aliases without a price (for the start-up check when budgets are on). */
  readonly unpriced: readonly string[];
}

const PER_MILLION = 1e-6;

export function compilePrice(model: ModelConfig): CompiledPrice | undefined {
  if (!model.price) return undefined;
  return { input: model.price.input * PER_MILLION, output: model.price.output * PER_MILLION };
}

function billedCompletion(usage: Usage): number {
  // A backend that reports reasoning tokens outside completion_tokens would otherwise get them free.
  return Math.max(usage.completion_tokens, usage.reasoning_tokens ?? 0);
}

export function priceUsage(price: CompiledPrice, usage: Usage): number {
  return usage.prompt_tokens * price.input + billedCompletion(usage) * price.output;
}

/** USD for one request on one model config (undefined without a price). */
export function costUsd(model: ModelConfig, usage: Usage): number | undefined {
  const p = compilePrice(model);
  return p && priceUsage(p, usage);
}

export function createPriceTable(config: Pick<Config, 'models'>): PriceTable {
  const prices = new Map<string, CompiledPrice>();
  const unpriced: string[] = [];
  for (const [alias, m] of Object.entries(config.models)) {
    const p = compilePrice(m);
    if (p) prices.set(alias, p);
    else unpriced.push(alias);
  }
  const cost = (alias: string, usage: Usage): number | undefined => {
    const p = prices.get(alias);
    return p && priceUsage(p, usage);
  };
  return {
    price: (alias) => prices.get(alias),
    cost,
    savings(actualAlias, referenceAlias, usage) {
      const actual = cost(actualAlias, usage);
      const reference = cost(referenceAlias, usage);
      return actual === undefined || reference === undefined ? undefined : reference - actual;
    },
    unpriced,
  };
}

export interface CostRecord {
  /** The alias that served the request (after fallbacks). */
  alias: string;
  /** keys[].id, or 'anonymous'. */
  keyId: string;
  usage: Usage;
  /** Set for complexity-routed requests. */
  complexity?: { route: string; class: string; reference?: string };
}

/**
 * Called once per finished request by the usage finalizer (success, error with usage,
 * cut stream with estimated usage). Increments switchyard_cost_usd_total and, for a
 * complexity-routed request with a reference, switchyard_routing_savings_usd_total —
 * only when positive, because a counter cannot go down; the signed figure is returned
 * for the access log.
 */
export function recordCost(
  metrics: Pick<Metrics, 'cost' | 'routingSavings'>,
  table: PriceTable,
  r: CostRecord,
): { costUsd?: number; savingsUsd?: number } {
  const cost = table.cost(r.alias, r.usage);
  if (cost !== undefined && cost > 0) metrics.cost.labels(r.alias, r.keyId).inc(cost);
  let savings: number | undefined;
  if (r.complexity?.reference) {
    savings = table.savings(r.alias, r.complexity.reference, r.usage);
    if (savings !== undefined && savings > 0) metrics.routingSavings.labels(r.complexity.route, r.complexity.class).inc(savings);
  }
  return { costUsd: cost, savingsUsd: savings };
}
