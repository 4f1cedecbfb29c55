/**
 * The cache entry: the complete OpenAI response (chat.completion or text_completion
 * JSON, usage included) plus the gateway's Usage. One format for both directions, so a
 * stream request can be served from an entry made by a non-stream request (replay.ts)
 * and the other way round (assemble.ts builds the same JSON from streamed chunks).
 * Entries are immutable once made: same key, same answer, so replicas never need to
 * invalidate each other.
 */
import type { Usage } from '../providers/types.js';

export type CacheEndpoint = 'chat' | 'completions';

/** OpenAI's usage object as it appears in responses and in the include_usage chunk. */
export interface OpenAIUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  completion_tokens_details?: { reasoning_tokens?: number };
  [extra: string]: unknown;
}

export interface CacheEntry {
  /** Format version: an entry written by a future format is treated as a miss. */
  v: 1;
  endpoint: CacheEndpoint;
  /** The client-facing response body, parsed (never an error body). */
  response: Record<string, unknown>;
  usage: Usage;
  /** Wall-clock ms when the entry expires; lets a memory tier in front of Redis keep the remaining TTL. */
  expiresAtMs: number;
}

export function toOpenAIUsage(u: Usage): OpenAIUsage {
  const out: OpenAIUsage = { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: u.total_tokens };
  if (u.reasoning_tokens !== undefined) out.completion_tokens_details = { reasoning_tokens: u.reasoning_tokens };
  return out;
}

/** A token count as usage may hold it: a finite number, not negative. */
const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n) && n >= 0;

/**
 * Reads OpenAI's usage object; undefined when absent or malformed (negative or
 * non-finite counts included: an upstream that reports -10 tokens is not believed, and
 * its answer is stored with the gateway's own count instead).
 */
export function fromOpenAIUsage(raw: unknown): Usage | undefined {
  if (!raw || typeof raw !== 'object') return undefined;
  const r = raw as Record<string, unknown>;
  const p = r.prompt_tokens;
  const c = r.completion_tokens;
  if (!isCount(p) || !isCount(c)) return undefined;
  const usage: Usage = { prompt_tokens: p, completion_tokens: c, total_tokens: isCount(r.total_tokens) ? r.total_tokens : p + c };
  const details = r.completion_tokens_details as Record<string, unknown> | undefined;
  if (details && isCount(details.reasoning_tokens)) usage.reasoning_tokens = details.reasoning_tokens;
  return usage;
}

/** The gateway's Usage as a stored entry must hold it (a value from Redis is not trusted). */
function isUsage(u: unknown): u is Usage {
  if (!u || typeof u !== 'object') return false;
  const r = u as Record<string, unknown>;
  return isCount(r.prompt_tokens) && isCount(r.completion_tokens) && isCount(r.total_tokens) && (r.reasoning_tokens === undefined || isCount(r.reasoning_tokens));
}

/**
 * A choice the cache can serve and replay: finished, and with the field types the replay
 * and the hit accounting read (a chat message object whose tool_calls, when present, is an
 * array of objects; a completion's text a string).
 */
function isServableChoice(c: unknown): boolean {
  if (!c || typeof c !== 'object' || Array.isArray(c)) return false;
  const choice = c as Record<string, unknown>;
  if (typeof choice.finish_reason !== 'string') return false;
  if ('message' in choice) {
    const m = choice.message as Record<string, unknown> | null;
    if (!m || typeof m !== 'object' || Array.isArray(m)) return false;
    if (m.content != null && typeof m.content !== 'string') return false;
    if (m.tool_calls != null && !(Array.isArray(m.tool_calls) && m.tool_calls.every((t) => t && typeof t === 'object'))) return false;
  } else if (typeof choice.text !== 'string') return false;
  return true;
}

/**
 * True when `response` is a complete, successful answer worth storing: an object with
 * a non-empty choices array, every choice finished, and no error anywhere (PEERS 8:
 * never cache an error).
 */
export function isStorableResponse(response: unknown): response is Record<string, unknown> {
  if (!response || typeof response !== 'object' || Array.isArray(response)) return false;
  const r = response as Record<string, unknown>;
  if ('error' in r && r.error != null) return false;
  if (!Array.isArray(r.choices) || r.choices.length === 0) return false;
  return r.choices.every(isServableChoice);
}

/** `entry` with expiresAtMs no later than now + ttlS (the same object when already so). */
export function withExpiry(entry: CacheEntry, ttlS: number, nowMs: number): CacheEntry {
  const at = nowMs + Math.ceil(ttlS * 1000);
  return entry.expiresAtMs <= at ? entry : { ...entry, expiresAtMs: at };
}

export function encodeEntry(entry: CacheEntry): Buffer {
  return Buffer.from(JSON.stringify(entry), 'utf8');
}

/** Bytes from a store → entry; undefined for anything unreadable (treated as a miss, never thrown). */
export function decodeEntry(bytes: Uint8Array | string): CacheEntry | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    return undefined;
  }
  if (!parsed || typeof parsed !== 'object') return undefined;
  const e = parsed as Partial<CacheEntry>;
  if (e.v !== 1 || (e.endpoint !== 'chat' && e.endpoint !== 'completions')) return undefined;
  if (!isStorableResponse(e.response) || !isUsage(e.usage) || typeof e.expiresAtMs !== 'number') return undefined;
  return e as CacheEntry;
}
