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

/**
 * Characters generated in a whole (non-stream) answer, every choice: message content,
 * refusals, tool-call names and arguments, completions text. For answers that carry no
 * usage (parsed only then); 0 when the body is not such an answer.
 */
export function completionCharsOf(body: string | Uint8Array): number {
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof body === 'string' ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch {
    return 0;
  }
  const choices = (parsed as { choices?: unknown })?.choices;
  if (!Array.isArray(choices)) return 0;
  const len = (v: unknown): number => (typeof v === 'string' ? v.length : Array.isArray(v) ? v.reduce((n: number, p) => n + len((p as { text?: unknown })?.text), 0) : 0);
  let chars = 0;
  for (const c of choices as Array<Record<string, unknown>>) {
    chars += len(c?.text);
    const m = c?.message as Record<string, unknown> | undefined;
    if (!m) continue;
    chars += len(m.content) + len(m.refusal);
    if (Array.isArray(m.tool_calls)) {
      for (const t of m.tool_calls as Array<{ function?: { name?: unknown; arguments?: unknown } }>) chars += len(t?.function?.name) + len(t?.function?.arguments);
    }
  }
  return chars;
}
