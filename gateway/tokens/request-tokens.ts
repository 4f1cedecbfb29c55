/**
 * Per-request token figures shared by the admission stages (fit-context, rate-limit,
 * check-budget) and their end hooks: the prompt is counted once per request and kept
 * in ctx.promptTokensEstimate; what a request really used is decided in one place so
 * limits and budgets reconcile the same way.
 */
import type { ModelConfig } from '../config/schema.js';
import type { RequestContext } from '../pipeline/context.js';
import type { BackendClient } from '../upstream/types.js';
import { countingPlan, EXACT_REQUEST_CHARS, type CountText } from './encodings.js';
import type { TokenCounter } from './token-counter.js';

const BACKEND_COUNT = 'tokens.backendCount';

/** The request's text counter under its backend's own tokenizer (see prepareBackendCount), if any. */
export function requestTextCounter(ctx: RequestContext): CountText | undefined {
  return ctx.locals[BACKEND_COUNT] as CountText | undefined;
}

/**
 * For a target whose backend tokenizes itself (local models, BackendClient.countTokens):
 * tokenizes every text the prompt count reads, once and concurrently, so the sync
 * counters of fit-context, rate-limit and check-budget count with the model's own
 * tokenizer (message overheads stay OpenAI's). Called by the countPrompt stage.
 */
export async function prepareBackendCount(ctx: RequestContext, counter: TokenCounter, backend: Pick<BackendClient, 'countTokens'>): Promise<void> {
  if (!backend.countTokens) return;
  const model = targetModel(ctx);
  const texts = new Set<string>();
  counter.countPrompt(ctx.endpoint, ctx.body, model, (t) => (texts.add(t), 0));
  const counts = new Map<string, number>();
  const fallback = counter.textCounter(model);
  // A backend's tokenizer (node-llama-cpp's, synchronous on the event loop) gets the same
  // bounds as the tiktoken counters: long runs sliced, and exact counting only for the
  // first EXACT_REQUEST_CHARS of all texts together; the rest is estimated. Unbounded,
  // 400,000 'a's held the event loop for 12 s.
  let budget = EXACT_REQUEST_CHARS;
  const exact: Promise<unknown>[] = [];
  for (const t of texts) {
    if (budget <= 0) break;
    const plan = countingPlan(t.length > budget ? t.slice(0, budget) : t);
    const scale = t.length > budget ? t.length / budget : plan.scale;
    budget -= Math.min(t.length, budget);
    exact.push(Promise.all(plan.pieces.map((p) => backend.countTokens!(p))).then((ns) => counts.set(t, Math.ceil(ns.reduce((a, n) => a + n, 0) * scale))));
  }
  await Promise.all(exact);
  ctx.locals[BACKEND_COUNT] = ((t: string) => counts.get(t) ?? fallback(t)) satisfies CountText;
  ctx.promptTokensEstimate = undefined;
}

export function targetModel(ctx: RequestContext): ModelConfig {
  return ctx.target?.model ?? { backend: '', model: ctx.modelAlias, tokenizer: 'auto' };
}

/** Counts the prompt once; fit-context resets ctx.promptTokensEstimate after trimming. */
export function promptTokens(ctx: RequestContext, counter: TokenCounter): number {
  if (ctx.promptTokensEstimate === undefined) ctx.promptTokensEstimate = counter.countPrompt(ctx.endpoint, ctx.body, targetModel(ctx), requestTextCounter(ctx));
  return ctx.promptTokensEstimate;
}

/** Answered from the cache (or by joining an identical in-flight request): no upstream tokens. */
export function servedFromCache(ctx: RequestContext): boolean {
  return ctx.cacheResult === 'hit' || ctx.cacheResult === 'semantic-hit' || ctx.cacheResult === 'coalesced';
}

export interface UsedTokens {
  prompt: number;
  completion: number;
  /** actual: upstream usage (or the dispatcher's estimate of a cut stream); none: nothing reached a backend; worst_case: unknown, so the admission figure stands. */
  source: 'actual' | 'none' | 'worst_case';
}

/**
 * What a finished request used, for reconciliation, on every ending:
 * - usage present (the backend's, or the dispatcher's estimate for a cut stream) → it;
 * - never reached a backend (refused by a later stage, failed to connect) → nothing;
 * - client abort or broken stream without usage → the admission worst case: the backend
 *   may have generated up to max_tokens, and a cut stream is never billed as zero;
 * - the backend answered an error → nothing (backends do not bill failed requests).
 */
export function usedTokens(ctx: RequestContext, admitted: { prompt: number; completion: number }): UsedTokens {
  if (ctx.usage) return { prompt: ctx.usage.prompt_tokens, completion: ctx.usage.completion_tokens, source: 'actual' };
  const reachedBackend = ctx.upstreamNs > 0n || ctx.firstByteNs !== undefined;
  if (!reachedBackend) return { prompt: 0, completion: 0, source: 'none' };
  const cut = ctx.abort.aborted || ctx.res.aborted || (ctx.streamOutcome !== undefined && ctx.streamOutcome !== 'complete');
  if (cut) return { ...admitted, source: 'worst_case' };
  return { prompt: 0, completion: 0, source: 'none' };
}
