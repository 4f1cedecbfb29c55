/**
 * The exact-cache key: SHA-256 over canonical JSON (object keys sorted at every depth,
 * so key order in the client's JSON never matters) of the endpoint, the resolved target
 * (backend + upstream model, so two aliases of one model share entries) and the request
 * body minus the fields that cannot change the answer.
 *
 * Why a deny-list and not an allow-list of fields: a field the list did not foresee
 * (logprobs, logit_bias, reasoning_effort, a provider extension...) can change the
 * answer or its shape; keying on it costs at most a miss, ignoring it can serve a
 * wrong answer. Called per request by check-cache (and on completion, to notice a
 * request that a later stage changed).
 */
import { hash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { CacheEndpoint } from './entry.js';

/**
 * Never part of the key: who asks (user, metadata), how the answer is delivered
 * (stream, stream_options), where it is stored upstream (store, service_tier), and the
 * client's model alias (replaced by the resolved target).
 */
const IGNORED_FIELDS: ReadonlySet<string> = new Set(['user', 'stream', 'stream_options', 'model', 'metadata', 'store', 'service_tier']);

/**
 * The most values (objects, arrays, scalars) a body may hold for the cache to key it: a
 * real chat request, tool schemas included, holds a few thousand; a crafted one of
 * millions of tiny values took seconds of event loop to canonicalise. Past this the
 * request bypasses the cache (KeyTooLargeError).
 */
export const MAX_KEY_VALUES = 200_000;

export class KeyTooLargeError extends Error {
  constructor() {
    super(`The request holds more than ${MAX_KEY_VALUES} JSON values: not cached.`);
    this.name = 'KeyTooLargeError';
  }
}

/**
 * JSON with object keys sorted at every depth; undefined members are dropped like
 * JSON.stringify does. Throws KeyTooLargeError past MAX_KEY_VALUES values.
 */
export function canonicalJson(value: unknown, budget = { left: MAX_KEY_VALUES }): string {
  if (--budget.left < 0) throw new KeyTooLargeError();
  if (value === null || typeof value !== 'object') {
    const s = JSON.stringify(value);
    return s === undefined ? 'null' : s;
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v, budget)).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k], budget)}`).join(',')}}`;
}

export interface KeyInput {
  endpoint: CacheEndpoint;
  /** Resolved target, e.g. `${backendName}/${model.model}`. */
  target: string;
  body: Record<string, unknown>;
  /**
   * The client's body bytes, when `body` is exactly their parse (no stage changed it):
   * then the key is memoised by those bytes, and a repeated request (the cache's whole
   * point) skips canonicalisation and hashing (~8 µs of a ~40 µs hit).
   */
  raw?: Buffer;
}

/** Bodies above this are not memoised: hashing dominates their cost less than their memory would. */
const MEMO_MAX_BODY = 16 * 1024;
const memo = new LRUCache<string, string>({ max: 4096, maxSize: 16 * 1024 * 1024, sizeCalculation: (_v, k) => k.length + 64 });

/** The body fields that make up the key (max_completion_tokens folded into max_tokens: same meaning). */
export function normaliseBody(body: Record<string, unknown>, omit?: ReadonlySet<string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(body)) {
    if (IGNORED_FIELDS.has(k) || omit?.has(k) || body[k] === undefined) continue;
    out[k] = body[k];
  }
  if (out.max_tokens === undefined && out.max_completion_tokens !== undefined) out.max_tokens = out.max_completion_tokens;
  delete out.max_completion_tokens;
  return out;
}

export function sha256Hex(text: string): string {
  return hash('sha256', text, 'hex');
}

/** Throws KeyTooLargeError for a body too large to key (check-cache bypasses the cache then). */
export function exactCacheKey(input: KeyInput): string {
  const memoKey = input.raw && input.raw.length <= MEMO_MAX_BODY ? `${input.endpoint}\u0000${input.target}\u0000${input.raw.toString('latin1')}` : undefined;
  if (memoKey !== undefined) {
    const known = memo.get(memoKey);
    if (known !== undefined) return known;
  }
  const key = sha256Hex(canonicalJson({ e: input.endpoint, t: input.target, b: normaliseBody(input.body) }));
  if (memoKey !== undefined) memo.set(memoKey, key);
  return key;
}
