/**
 * Reads OpenAI-shaped usage out of response bytes without parsing the whole body:
 * the usage object sits at the end of a chat.completion, so a scan from its last
 * occurrence is enough (hot path: no JSON.parse of large answers).
 */
import type { Usage } from '../types.js';

// `-?`: a negative count is read, then refused below, rather than skipped and taken as 0.
const NUM = (name: string) => new RegExp(`"${name}"\\s*:\\s*(-?\\d+)`);
const PROMPT = NUM('prompt_tokens');
const COMPLETION = NUM('completion_tokens');
const TOTAL = NUM('total_tokens');
const REASONING = NUM('reasoning_tokens');

export function usageFromText(text: string): Usage | undefined {
  const at = text.lastIndexOf('"usage"');
  if (at === -1) return undefined;
  const tail = text.slice(at);
  const p = PROMPT.exec(tail);
  if (!p) return undefined;
  const c = COMPLETION.exec(tail);
  const t = TOTAL.exec(tail);
  const r = REASONING.exec(tail);
  const prompt = Number(p[1]);
  const completion = c ? Number(c[1]) : 0;
  // Negative counts are a broken upstream: no usage, so the gateway estimates (never a refund).
  if (prompt < 0 || completion < 0) return undefined;
  const total = t ? Number(t[1]) : -1;
  const usage: Usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total >= 0 ? total : prompt + completion };
  if (r && Number(r[1]) >= 0) usage.reasoning_tokens = Number(r[1]);
  return usage;
}

/** A usage object from parsed JSON (stream chunks). */
const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n) && n >= 0;

export function usageFromObject(u: Record<string, unknown> | null | undefined): Usage | undefined {
  if (!u || !isCount(u.prompt_tokens)) return undefined;
  if (u.completion_tokens != null && !isCount(u.completion_tokens)) return undefined;
  const completion = isCount(u.completion_tokens) ? u.completion_tokens : 0;
  const usage: Usage = {
    prompt_tokens: u.prompt_tokens,
    completion_tokens: completion,
    total_tokens: isCount(u.total_tokens) ? u.total_tokens : u.prompt_tokens + completion,
  };
  const details = u.completion_tokens_details as { reasoning_tokens?: number } | undefined;
  if (details && isCount(details.reasoning_tokens)) usage.reasoning_tokens = details.reasoning_tokens;
  return usage;
}
