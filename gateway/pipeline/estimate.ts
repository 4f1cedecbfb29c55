/**
 * Fallback token estimates for when a backend reports no usage (a cut stream, a
 * server without include_usage). Replaced by the exact counter where one is
 * configured (ctx.promptTokensEstimate); actual upstream usage always wins.
 */
import type { RequestContext } from './context.js';

const CJK = /[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]/g;

export function estimateTextTokens(text: string, cjkPerChar = 1.5, otherPerChar = 0.25): number {
  const cjk = text.match(CJK)?.length ?? 0;
  return Math.ceil(cjk * cjkPerChar + (text.length - cjk) * otherPerChar);
}

export function estimatePromptTokens(ctx: RequestContext): number {
  if (ctx.promptTokensEstimate !== undefined) return ctx.promptTokensEstimate;
  const e = ctx.config.token_estimator;
  const src = ctx.endpoint === 'chat' ? JSON.stringify(ctx.body.messages ?? '') : JSON.stringify(ctx.body.prompt ?? ctx.body.input ?? '');
  ctx.promptTokensEstimate = estimateTextTokens(src, e.cjk_per_char, e.other_per_char);
  return ctx.promptTokensEstimate;
}

export function estimateCompletionTokens(contentChars: number): number {
  return Math.ceil(contentChars / 4);
}
