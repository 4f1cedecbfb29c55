/**
 * The completion tokens a request may produce, as admission sees it: the client's
 * max_completion_tokens or max_tokens, else the alias's default_max_tokens, else the
 * fallback (4096 for reservations, which must assume a worst case). Embeddings produce none.
 */
import type { ModelConfig } from '../config/schema.js';
import type { Endpoint } from '../providers/types.js';

export const FALLBACK_MAX_TOKENS = 4096;

export function requestedMaxTokens(body: Record<string, unknown>): number | undefined {
  const v = body.max_completion_tokens ?? body.max_tokens;
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : undefined;
}

export function completionAllowance(endpoint: Endpoint, body: Record<string, unknown>, model: ModelConfig | undefined, fallback = FALLBACK_MAX_TOKENS): number {
  if (endpoint === 'embeddings') return 0;
  return requestedMaxTokens(body) ?? model?.default_max_tokens ?? fallback;
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
