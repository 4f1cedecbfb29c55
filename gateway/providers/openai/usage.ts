/**
 * Reads OpenAI-shaped usage out of response bytes without parsing the whole body:
 * the usage object sits at the end of a chat.completion, so a scan from its last
 * occurrence is enough (hot path: no JSON.parse of large answers).
 */
import type { Usage } from '../types.js';

const NUM = (name: string) => new RegExp(`"${name}"\\s*:\\s*(\\d+)`);
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
  const usage: Usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: t ? Number(t[1]) : prompt + completion };
  if (r) usage.reasoning_tokens = Number(r[1]);
  return usage;
}

/** A usage object from parsed JSON (stream chunks). */
export function usageFromObject(u: Record<string, unknown> | null | undefined): Usage | undefined {
  if (!u || typeof u.prompt_tokens !== 'number') return undefined;
  const completion = typeof u.completion_tokens === 'number' ? u.completion_tokens : 0;
  const usage: Usage = {
    prompt_tokens: u.prompt_tokens,
    completion_tokens: completion,
    total_tokens: typeof u.total_tokens === 'number' ? u.total_tokens : u.prompt_tokens + completion,
  };
  const details = u.completion_tokens_details as { reasoning_tokens?: number } | undefined;
  if (details && typeof details.reasoning_tokens === 'number') usage.reasoning_tokens = details.reasoning_tokens;
  return usage;
}
