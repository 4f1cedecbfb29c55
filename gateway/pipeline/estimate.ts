/**
 * Fallback token estimates for when a backend reports no usage (a cut stream, a
 * server without include_usage). Replaced by the exact counter where one is
 * configured (ctx.promptTokensEstimate); actual upstream usage always wins.
 */
import type { RequestContext } from './context.js';
import type { Config } from '../config/schema.js';
import { createTokenCounter, type TokenCounter } from '../tokens/token-counter.js';

/** One counter per config generation (exact OpenAI encodings where the model has one). */
const counters = new WeakMap<Config, TokenCounter>();

export function estimatePromptTokens(ctx: RequestContext): number {
  if (ctx.promptTokensEstimate !== undefined) return ctx.promptTokensEstimate;
  let counter = counters.get(ctx.config);
  if (!counter) counters.set(ctx.config, (counter = createTokenCounter(ctx.config)));
  const model = ctx.target?.model ?? ctx.config.models[ctx.modelAlias] ?? { backend: '', model: ctx.modelAlias, tokenizer: 'auto' as const };
  const n = counter.countPrompt(ctx.endpoint, ctx.body, model);
  // Routing asks before the target is known; only the target's count is kept for the
  // admission stages (a routed alias may use another tokenizer).
  if (ctx.target) ctx.promptTokensEstimate = n;
  return n;
}

export function estimateCompletionTokens(contentChars: number): number {
  return Math.ceil(contentChars / 4);
}
