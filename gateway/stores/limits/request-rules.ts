/**
 * Config → the limit rules of one request: per key, per team (when the key has one),
 * per model alias, and global; each with rpm (1 point per request, 60 s window), tpm
 * (estimated tokens, 60 s window) and concurrent (a slot until the response ends).
 * Ids come from config names only, so counters and metric labels stay bounded.
 */
import type { Config, LimitsConfig } from '../../config/schema.js';
import { DEFAULT_LEASE_MS, type LimitRule, type LimitState } from './types.js';

export type LimitScope = 'key' | 'team' | 'model' | 'global';
export type LimitMeasure = 'rpm' | 'tpm' | 'concurrent';

export interface RequestLimitRule extends LimitRule {
  scope: LimitScope;
  measure: LimitMeasure;
}

export interface LimitSubject {
  keyId?: string;
  team?: string;
  alias?: string;
}

const MINUTE = 60_000;

function rulesFor(scope: LimitScope, prefix: string, limits: LimitsConfig | undefined, tokens: number, out: RequestLimitRule[]): void {
  if (!limits) return;
  if (limits.rpm) out.push({ id: `${prefix}:rpm`, kind: 'window', points: 1, limit: limits.rpm, windowMs: MINUTE, scope, measure: 'rpm' });
  if (limits.tpm) out.push({ id: `${prefix}:tpm`, kind: 'window', points: tokens, limit: limits.tpm, windowMs: MINUTE, scope, measure: 'tpm' });
  if (limits.concurrent) out.push({ id: `${prefix}:concurrent`, kind: 'concurrent', points: 1, limit: limits.concurrent, windowMs: DEFAULT_LEASE_MS, scope, measure: 'concurrent' });
}

/** tokens: the admission estimate (prompt + completion allowance), an integer. */
export function requestLimitRules(config: Config, who: LimitSubject, tokens: number): RequestLimitRule[] {
  const out: RequestLimitRule[] = [];
  if (who.keyId) rulesFor('key', `key:${who.keyId}`, config.keys.find((k) => k.id === who.keyId)?.limits, tokens, out);
  if (who.team) rulesFor('team', `team:${who.team}`, config.teams[who.team]?.limits, tokens, out);
  if (who.alias) rulesFor('model', `model:${who.alias}`, config.models[who.alias]?.limits, tokens, out);
  rulesFor('global', 'global', config.limits.global, tokens, out);
  return out;
}

/** Go-style durations as OpenAI sends them: "250ms", "1s", "6m0s", "1h2m3s". */
export function formatResetDuration(ms: number): string {
  if (ms <= 0) return '0s';
  if (ms < 1000) return `${Math.ceil(ms)}ms`;
  const total = Math.ceil(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

/**
 * OpenAI's x-ratelimit-* headers from the tightest rpm and tpm rule (least remaining)
 * among those that applied to the request.
 */
export function rateLimitHeaders(rules: readonly RequestLimitRule[], states: readonly LimitState[]): Record<string, string> {
  const h: Record<string, string> = {};
  const tightest = (measure: LimitMeasure) => {
    let best: LimitState | undefined;
    rules.forEach((r, i) => {
      if (r.measure === measure && (!best || states[i].remaining < best.remaining)) best = states[i];
    });
    return best;
  };
  const req = tightest('rpm');
  if (req) {
    h['x-ratelimit-limit-requests'] = String(req.limit);
    h['x-ratelimit-remaining-requests'] = String(req.remaining);
    h['x-ratelimit-reset-requests'] = formatResetDuration(req.resetMs);
  }
  const tok = tightest('tpm');
  if (tok) {
    h['x-ratelimit-limit-tokens'] = String(tok.limit);
    h['x-ratelimit-remaining-tokens'] = String(tok.remaining);
    h['x-ratelimit-reset-tokens'] = formatResetDuration(tok.resetMs);
  }
  return h;
}
