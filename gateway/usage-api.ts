/**
 * GET /v1/usage (the calling key) and the admin API (GET /admin/keys,
 * POST /admin/keys/{id}/reset?period=day|month), as transport-free functions: the
 * server wiring authenticates /v1/usage like any /v1 request, passes the raw
 * Authorization header for /admin (checked here against admin.key in constant time),
 * and writes {status, headers, body}. Failures are thrown as GatewayError and go
 * through the one error table.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Config, KeyConfig } from './config/schema.js';
import { GatewayError } from './errors.js';
import { budgetScope, type RequestBudgetScope } from './stores/budgets/request-scopes.js';
import { remaining, type BudgetStore } from './stores/budgets/types.js';
import type { PeriodKind } from './stores/budgets/periods.js';
import { formatResetDuration, requestLimitRules } from './stores/limits/request-rules.js';
import type { LimitsStore } from './stores/limits/types.js';

export interface UsageApiDeps {
  config: Config;
  limits: LimitsStore;
  budgets: BudgetStore;
  now?: () => number;
}

export interface ApiResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const json = (status: number, body: unknown): ApiResponse => ({ status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const round = (usd: number) => Math.round(usd * 1e6) / 1e6;

async function periodReport(budgets: BudgetStore, s: RequestBudgetScope) {
  const u = await budgets.get(s.id);
  const left = remaining(s, u);
  return {
    period: s.id.slice(s.id.lastIndexOf(':') + 1),
    resets_at: new Date(s.periodEndMs).toISOString(),
    spent_usd: round(u.spentUsd),
    reserved_usd: round(u.reservedUsd),
    tokens: u.spentTokens,
    limit_usd: s.limitUsd ?? null,
    remaining_usd: s.limitUsd === undefined ? null : round(left.usd),
    limit_tokens: s.limitTokens ?? null,
    remaining_tokens: s.limitTokens === undefined ? null : left.tokens,
  };
}

async function ownerReport(deps: UsageApiDeps, owner: 'key' | 'team', id: string, budget: KeyConfig['budget']) {
  const now = (deps.now ?? Date.now)();
  const tz = deps.config.limits.timezone;
  const [day, month] = await Promise.all((['day', 'month'] as const).map((k) => periodReport(deps.budgets, budgetScope(owner, id, k, budget, now, tz))));
  return { day, month };
}

async function keyReport(deps: UsageApiDeps, key: KeyConfig) {
  const rules = requestLimitRules(deps.config, { keyId: key.id }, 0);
  const states = await deps.limits.peek(rules);
  const limits: Record<string, { limit: number; remaining: number; reset: string }> = {};
  rules.forEach((r, i) => {
    limits[r.measure] = { limit: states[i].limit, remaining: states[i].remaining, reset: formatResetDuration(states[i].resetMs) };
  });
  const report: Record<string, unknown> = { key: key.id, team: key.team ?? null, budget: await ownerReport(deps, 'key', key.id, key.budget), limits };
  if (key.team) report.team_budget = await ownerReport(deps, 'team', key.team, deps.config.teams[key.team]?.budget);
  return report;
}

/** GET /v1/usage. `key`: the authenticated calling key (ctx.key); none when auth is off. */
export async function handleUsage(deps: UsageApiDeps, key: KeyConfig | undefined): Promise<ApiResponse> {
  if (!key) throw new GatewayError('invalid_api_key', { message: 'Usage is reported per API key; send one.' });
  return json(200, { object: 'usage', ...(await keyReport(deps, key)) });
}

/** Constant-time check of "Bearer <admin.key>" (or the bare key). Admin API is off without admin.key. */
export function isAdmin(config: Config, authorization: string | undefined): boolean {
  const expected = config.admin.key;
  if (!expected || !authorization) return false;
  const given = authorization.replace(/^Bearer\s+/i, '');
  // Equal-length digests: timingSafeEqual needs equal lengths, and length must not leak.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function requireAdmin(config: Config, authorization: string | undefined): void {
  if (!isAdmin(config, authorization)) throw new GatewayError('admin_forbidden');
}

/** GET /admin/keys: every configured key with its usage (never the key secret). */
export async function handleAdminListKeys(deps: UsageApiDeps, authorization: string | undefined): Promise<ApiResponse> {
  requireAdmin(deps.config, authorization);
  const data = await Promise.all(deps.config.keys.map((k) => keyReport(deps, k)));
  return json(200, { object: 'list', data });
}

/** POST /admin/keys/{id}/reset?period=day|month (default day): forgets the key's spend in the current period. */
export async function handleAdminResetKey(deps: UsageApiDeps, authorization: string | undefined, keyId: string, period: string | null | undefined): Promise<ApiResponse> {
  requireAdmin(deps.config, authorization);
  const key = deps.config.keys.find((k) => k.id === keyId);
  if (!key) throw new GatewayError('not_found', { message: `No key with id '${keyId}'.` });
  const kind = (period ?? 'day') as PeriodKind;
  if (kind !== 'day' && kind !== 'month') throw new GatewayError('invalid_request', { param: 'period', message: "period must be 'day' or 'month'." });
  const scope = budgetScope('key', key.id, kind, key.budget, (deps.now ?? Date.now)(), deps.config.limits.timezone);
  await deps.budgets.reset(scope.id);
  return json(200, { object: 'reset', key: key.id, period: kind, scope: scope.id });
}
