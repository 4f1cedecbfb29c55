import { describe, expect, it } from 'vitest';
import { ConfigSchema } from '../gateway/config/schema.js';
import { createMemoryBudgets } from '../gateway/stores/budgets/memory-budgets.js';
import { createMemoryLimits } from '../gateway/stores/limits/memory-limits.js';
import { handleAdminListKeys, handleAdminResetKey, handleUsage, isAdmin } from '../gateway/usage-api.js';

const NOW = Date.UTC(2026, 10, 25, 12);
const config = ConfigSchema.parse({
  admin: { key: 'admin-secret' },
  keys: [
    { id: 'team-a', key: 'k1', team: 'research', limits: { rpm: 10, tpm: 1000 }, budget: { usd_per_day: 5, tokens_per_day: 1000 } },
    { id: 'team-b', key: 'k2' },
  ],
  teams: { research: { budget: { usd_per_month: 100 } } },
});

async function setup() {
  const budgets = createMemoryBudgets();
  const limits = createMemoryLimits();
  const day = { id: 'key:team-a:day:2026-11-25', limitUsd: 5, expireAtMs: NOW + 86_400_000 };
  const month = { id: 'key:team-a:month:2026-11', expireAtMs: NOW + 86_400_000 };
  const r = await budgets.reserve([day, month], 1, 100);
  if (!r.ok) throw new Error('refused');
  await budgets.settle(r.reservation, 1.25, 300);
  await limits.consume([{ id: 'key:team-a:rpm', kind: 'window', points: 1, limit: 10, windowMs: 60_000 }]);
  return { config, budgets, limits, now: () => NOW };
}

describe('the usage API', () => {
  it('reports the calling key’s spend, remaining budget and remaining quota', async () => {
    const deps = await setup();
    const res = await handleUsage(deps, config.keys[0]);
    expect(res.status).toBe(200);
    const body = JSON.parse(res.body);
    expect(body.key).toBe('team-a');
    expect(body.budget.day).toEqual({
      period: '2026-11-25', resets_at: '2026-11-26T00:00:00.000Z', spent_usd: 1.25, reserved_usd: 0, tokens: 300,
      limit_usd: 5, remaining_usd: 3.75, limit_tokens: 1000, remaining_tokens: 700,
    });
    expect(body.budget.month).toMatchObject({ period: '2026-11', spent_usd: 1.25, limit_usd: null, remaining_usd: null });
    expect(body.limits.rpm).toEqual({ limit: 10, remaining: 9, reset: expect.stringMatching(/^\d+s$|^1m0s$/) });
    expect(body.limits.tpm).toMatchObject({ limit: 1000, remaining: 1000 });
    expect(body.team_budget.month).toMatchObject({ limit_usd: 100, remaining_usd: 100 });
  });

  it('answers 401 without a calling key', async () => {
    await expect(handleUsage(await setup(), undefined)).rejects.toMatchObject({ code: 'invalid_api_key', status: 401 });
  });
});

describe('the admin API', () => {
  it('accepts only the admin key', () => {
    expect(isAdmin(config, 'Bearer admin-secret')).toBe(true);
    expect(isAdmin(config, 'admin-secret')).toBe(true);
    expect(isAdmin(config, 'Bearer admin-secre')).toBe(false);
    expect(isAdmin(config, 'Bearer k1')).toBe(false);
    expect(isAdmin(config, undefined)).toBe(false);
    expect(isAdmin(ConfigSchema.parse({}), 'Bearer ')).toBe(false);
  });

  it('lists every key with its usage and never the key secret', async () => {
    const res = await handleAdminListKeys(await setup(), 'Bearer admin-secret');
    const body = JSON.parse(res.body);
    expect(body.data.map((k: { key: string }) => k.key)).toEqual(['team-a', 'team-b']);
    expect(body.data[0].budget.day.spent_usd).toBe(1.25);
    expect(res.body).not.toContain('"k1"');
    await expect(handleAdminListKeys(await setup(), 'Bearer k1')).rejects.toMatchObject({ code: 'admin_forbidden', status: 403 });
  });

  it('resets a key’s day so its budget is whole again', async () => {
    const deps = await setup();
    const res = await handleAdminResetKey(deps, 'Bearer admin-secret', 'team-a', 'day');
    expect(JSON.parse(res.body)).toEqual({ object: 'reset', key: 'team-a', period: 'day', scope: 'key:team-a:day:2026-11-25' });
    expect(await deps.budgets.get('key:team-a:day:2026-11-25')).toEqual({ spentUsd: 0, reservedUsd: 0, spentTokens: 0, reservedTokens: 0 });
    expect((await deps.budgets.get('key:team-a:month:2026-11')).spentUsd).toBe(1.25);
    await expect(handleAdminResetKey(deps, 'Bearer admin-secret', 'nobody', 'day')).rejects.toMatchObject({ code: 'not_found' });
    await expect(handleAdminResetKey(deps, 'Bearer admin-secret', 'team-a', 'week')).rejects.toMatchObject({ code: 'invalid_request' });
    await expect(handleAdminResetKey(deps, 'Bearer nope', 'team-a', 'day')).rejects.toMatchObject({ code: 'admin_forbidden' });
  });
});
