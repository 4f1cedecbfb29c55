/**
 * Config → the budget scopes of one request: the key's day and month, and its team's
 * day and month when it has a team. Every key's spend is tracked (for /v1/usage) even
 * without a budget; limits come from keys[].budget and teams.<name>.budget. Prices are
 * USD per million tokens (models.<alias>.price).
 */
import type { BudgetConfig, Config, KeyConfig, ModelConfig } from '../../config/schema.js';
import { currentPeriod, type PeriodKind } from './periods.js';
import type { BudgetScope } from './types.js';

export interface RequestBudgetScope extends BudgetScope {
  owner: 'key' | 'team';
  ownerId: string;
  period: PeriodKind;
  periodEndMs: number;
  onExceed: 'reject' | 'clamp';
}

const DAY = 86_400_000;
/** How long a period's counter outlives it (usage history for reports, late settles). */
const GRACE: Record<PeriodKind, number> = { day: 2 * DAY, month: 35 * DAY };

export function budgetScope(owner: 'key' | 'team', ownerId: string, kind: PeriodKind, budget: BudgetConfig | undefined, nowMs: number, timeZone: string): RequestBudgetScope {
  const p = currentPeriod(kind, nowMs, timeZone);
  return {
    id: `${owner}:${ownerId}:${kind}:${p.label}`,
    limitUsd: kind === 'day' ? budget?.usd_per_day : budget?.usd_per_month,
    limitTokens: kind === 'day' ? budget?.tokens_per_day : budget?.tokens_per_month,
    expireAtMs: p.endMs + GRACE[kind],
    owner,
    ownerId,
    period: kind,
    periodEndMs: p.endMs,
    onExceed: budget?.on_exceed ?? 'reject',
  };
}

export function requestBudgetScopes(config: Config, key: KeyConfig, nowMs: number): RequestBudgetScope[] {
  const tz = config.limits.timezone;
  const scopes = [budgetScope('key', key.id, 'day', key.budget, nowMs, tz), budgetScope('key', key.id, 'month', key.budget, nowMs, tz)];
  if (key.team) {
    const team = config.teams[key.team]?.budget;
    scopes.push(budgetScope('team', key.team, 'day', team, nowMs, tz), budgetScope('team', key.team, 'month', team, nowMs, tz));
  }
  return scopes;
}

/** USD for a token count at the alias's price; 0 without a price (see budgetPricingProblems). */
export function priceUsd(model: ModelConfig | undefined, promptTokens: number, completionTokens: number): number {
  if (!model?.price) return 0;
  return (promptTokens * model.price.input + completionTokens * model.price.output) / 1_000_000;
}

/**
 * PEERS #9: an unpriced model under a USD budget would spend for free. Config loading
 * refuses to start with these problems (field paths, like every config error).
 */
export function budgetPricingProblems(config: Config): string[] {
  const usdBudgets = config.keys.some((k) => k.budget?.usd_per_day !== undefined || k.budget?.usd_per_month !== undefined) ||
    Object.values(config.teams).some((t) => t.budget?.usd_per_day !== undefined || t.budget?.usd_per_month !== undefined);
  if (!usdBudgets) return [];
  return Object.entries(config.models)
    .filter(([, m]) => !m.price)
    .map(([alias]) => `models.${alias}.price: required when USD budgets are configured (USD per million tokens: {input, output})`);
}
