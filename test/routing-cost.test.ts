import { describe, expect, it } from 'vitest';
import { createMetrics } from '../gateway/metrics.js';
import { costUsd, createPriceTable, recordCost } from '../gateway/routing/cost.js';

const models = {
  'gpt-4o-mini': { backend: 'openai', model: 'gpt-4o-mini', price: { input: 0.15, output: 0.6 }, tokenizer: 'auto' as const },
  'gpt-4o': { backend: 'openai', model: 'gpt-4o', price: { input: 2.5, output: 10 }, tokenizer: 'auto' as const },
  o3: { backend: 'openai', model: 'o3', price: { input: 2, output: 8 }, tokenizer: 'auto' as const },
  local: { backend: 'local', model: 'tiny', tokenizer: 'auto' as const },
};
const table = createPriceTable({ models });

describe('cost accounting', () => {
  it('prices prompt and completion tokens per million', () => {
    expect(table.cost('gpt-4o', { prompt_tokens: 1_000_000, completion_tokens: 500_000, total_tokens: 1_500_000 })).toBeCloseTo(2.5 + 5, 10);
    expect(table.cost('gpt-4o-mini', { prompt_tokens: 1000, completion_tokens: 200, total_tokens: 1200 })).toBeCloseTo(0.00015 + 0.00012, 12);
  });

  it('bills reasoning tokens once, as output, because they are part of completion tokens', () => {
    const usage = { prompt_tokens: 100, completion_tokens: 1000, reasoning_tokens: 800, total_tokens: 1100 };
    expect(table.cost('o3', usage)).toBeCloseTo(100 * 2e-6 + 1000 * 8e-6, 12);
  });

  it('still bills reasoning tokens a backend reported outside completion tokens', () => {
    expect(table.cost('o3', { prompt_tokens: 0, completion_tokens: 10, reasoning_tokens: 500, total_tokens: 10 })).toBeCloseTo(500 * 8e-6, 12);
  });

  it('reports aliases without a price instead of pricing them at a default', () => {
    expect(table.cost('local', { prompt_tokens: 10, completion_tokens: 10, total_tokens: 20 })).toBeUndefined();
    expect(table.unpriced).toEqual(['local']);
  });

  it('computes savings as the reference cost minus the actual cost', () => {
    const usage = { prompt_tokens: 2000, completion_tokens: 1000, total_tokens: 3000 };
    const expected = 2000 * 2.5e-6 + 1000 * 10e-6 - (2000 * 0.15e-6 + 1000 * 0.6e-6);
    expect(table.savings('gpt-4o-mini', 'gpt-4o', usage)).toBeCloseTo(expected, 12);
    expect(table.savings('gpt-4o', 'gpt-4o', usage)).toBe(0);
    expect(table.savings('local', 'gpt-4o', usage)).toBeUndefined();
  });

  it('prices a single model config directly', () => {
    expect(costUsd(models['gpt-4o'], { prompt_tokens: 1_000_000, completion_tokens: 0, total_tokens: 1_000_000 })).toBe(2.5);
    expect(costUsd(models.local, { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 })).toBeUndefined();
  });
});

describe('recording cost and savings', () => {
  it('moves the cost counter and the savings counter for an auto-routed request', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const usage = { prompt_tokens: 1_000_000, completion_tokens: 0, total_tokens: 1_000_000 };
    const r = recordCost(metrics, table, { alias: 'gpt-4o-mini', keyId: 'k1', usage, complexity: { route: 'auto', class: 'simple', reference: 'gpt-4o' } });
    expect(r.costUsd).toBeCloseTo(0.15, 10);
    expect(r.savingsUsd).toBeCloseTo(2.35, 10);
    expect((await metrics.cost.get()).values).toEqual([expect.objectContaining({ labels: { model: 'gpt-4o-mini', key: 'k1' }, value: expect.closeTo(0.15, 10) })]);
    expect((await metrics.routingSavings.get()).values).toEqual([expect.objectContaining({ labels: { route: 'auto', class: 'simple' }, value: expect.closeTo(2.35, 10) })]);
  });

  it('does not record negative savings on the counter but returns them', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const usage = { prompt_tokens: 1000, completion_tokens: 1000, total_tokens: 2000 };
    const r = recordCost(metrics, table, { alias: 'gpt-4o', keyId: 'k1', usage, complexity: { route: 'auto', class: 'reasoning', reference: 'gpt-4o-mini' } });
    expect(r.savingsUsd).toBeLessThan(0);
    expect((await metrics.routingSavings.get()).values).toEqual([]);
  });
});
