/**
 * The completion tokens a request may produce, as admission sees it: the client's
 * max_completion_tokens or max_tokens, else the alias's default_max_tokens, else the
 * fallback (4096 for reservations, which must assume a worst case), per choice, times
 * the choices the request asks for (n; best_of on completions). Embeddings produce none.
 * Where a budget or tokens-per-minute limit reserves that worst case, enforceMaxTokens
 * makes the body say it, so no backend can generate past the reservation.
 */
import type { ModelConfig } from '../config/schema.js';
import type { Endpoint } from '../providers/types.js';

export const FALLBACK_MAX_TOKENS = 4096;

export function requestedMaxTokens(body: Record<string, unknown>): number | undefined {
  const v = body.max_completion_tokens ?? body.max_tokens;
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : undefined;
}

/** OpenAI's upper bound for n. */
const MAX_CHOICES = 128;

/** Completions one request makes upstream: n (chat, completions), or best_of (completions), each billed. */
export function choiceCount(endpoint: Endpoint, body: Record<string, unknown>): number {
  if (endpoint === 'embeddings') return 0;
  const count = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 1 ? Math.floor(v) : 1);
  const n = Math.max(count(body.n), endpoint === 'completions' ? count(body.best_of) : 1);
  return Math.min(n, MAX_CHOICES);
}

/** Completion tokens of one choice. */
export function completionAllowance(endpoint: Endpoint, body: Record<string, unknown>, model: ModelConfig | undefined, fallback = FALLBACK_MAX_TOKENS): number {
  if (endpoint === 'embeddings') return 0;
  return requestedMaxTokens(body) ?? model?.default_max_tokens ?? fallback;
}

/** Completion tokens of the whole request: every choice's allowance. */
export function totalCompletionAllowance(endpoint: Endpoint, body: Record<string, unknown>, model: ModelConfig | undefined, fallback = FALLBACK_MAX_TOKENS): number {
  return completionAllowance(endpoint, body, model, fallback) * choiceCount(endpoint, body);
}

/**
 * Makes the body bound each choice by `perChoice` (the allowance admission reserved):
 * sets max_tokens when the client set no limit (or a negative one, "unlimited" to some
 * servers) and calls `onAdded` (the caller sets ctx.locals.addedMaxTokens: a translator
 * may carry an added limit in the field its backend prefers), and lowers whichever of
 * max_tokens / max_completion_tokens exceeds it (a backend may honour only one of them).
 * True when the body changed (the caller sets ctx.bodyChanged).
 */
export function enforceMaxTokens(endpoint: Endpoint, body: Record<string, unknown>, perChoice: number, onAdded?: () => void): boolean {
  if (endpoint === 'embeddings') return false;
  let changed = false;
  for (const field of ['max_tokens', 'max_completion_tokens'] as const) {
    const v = body[field];
    if (v === undefined || v === null) continue;
    if (typeof v === 'number' && v >= 0 && v <= perChoice) continue;
    body[field] = perChoice;
    changed = true;
  }
  if (requestedMaxTokens(body) === undefined) {
    body.max_tokens = perChoice;
    onAdded?.();
    changed = true;
  }
  return changed;
}

/**
 * Lowers the completion limit in the body (clamp): whichever of max_completion_tokens /
 * max_tokens the client used, or max_tokens when it set neither. The caller sets
 * ctx.bodyChanged.
 */
export function setMaxTokens(body: Record<string, unknown>, value: number): void {
  if (body.max_completion_tokens !== undefined) body.max_completion_tokens = value;
  if (body.max_tokens !== undefined || body.max_completion_tokens === undefined) body.max_tokens = value;
}
