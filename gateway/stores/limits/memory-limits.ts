/**
 * Limits in this process's memory: the embedded default, and the per-replica
 * fallback of the Redis store under fail_open. consume() runs synchronously to its
 * end, so check-all-then-take-all is atomic on the event loop. Counter ids come from
 * config (keys, teams, aliases), so the maps stay bounded.
 */
import { newToken, retryAfter, type ConsumeResult, type LimitGrant, type LimitRule, type LimitState, type LimitsStore } from './types.js';

interface Window {
  used: number;
  resetAt: number;
}

export function createMemoryLimits(opts: { now?: () => number } = {}): LimitsStore {
  const now = opts.now ?? Date.now;
  const windows = new Map<string, Window>();
  /** counter id → grant token → lease expiry */
  const slots = new Map<string, Map<string, number>>();

  const liveWindow = (id: string, t: number): Window | undefined => {
    const w = windows.get(id);
    if (w && w.resetAt <= t) {
      windows.delete(id);
      return undefined;
    }
    return w;
  };

  const liveSlots = (id: string, t: number): Map<string, number> => {
    let s = slots.get(id);
    if (!s) {
      s = new Map();
      slots.set(id, s);
    }
    for (const [token, exp] of s) if (exp <= t) s.delete(token);
    return s;
  };

  const state = (rule: LimitRule, t: number): LimitState => {
    if (rule.kind === 'concurrent') {
      const used = liveSlots(rule.id, t).size;
      return { id: rule.id, limit: rule.limit, used, remaining: Math.max(0, rule.limit - used), resetMs: 0 };
    }
    const w = liveWindow(rule.id, t);
    const used = w?.used ?? 0;
    return { id: rule.id, limit: rule.limit, used, remaining: Math.max(0, rule.limit - used), resetMs: w ? w.resetAt - t : rule.windowMs };
  };

  return {
    async consume(rules): Promise<ConsumeResult> {
      const t = now();
      const states = rules.map((r) => state(r, t));
      const denied = rules.filter((r, i) => states[i].used + (r.kind === 'concurrent' ? 1 : r.points) > r.limit).map((r) => r.id);
      if (denied.length > 0) return { allowed: false, states, denied, retryAfterMs: retryAfter(rules, states, denied) };
      const token = newToken();
      const windowEnds: Record<string, number> = {};
      rules.forEach((r, i) => {
        const s = states[i];
        if (r.kind === 'concurrent') {
          liveSlots(r.id, t).set(token, t + r.windowMs);
          s.used += 1;
        } else {
          const w = liveWindow(r.id, t) ?? { used: 0, resetAt: t + r.windowMs };
          w.used += r.points;
          windows.set(r.id, w);
          windowEnds[r.id] = w.resetAt;
          s.used = w.used;
          s.resetMs = w.resetAt - t;
        }
        s.remaining = Math.max(0, r.limit - s.used);
      });
      return { allowed: true, states, denied, retryAfterMs: 0, grant: { token, rules, windowEnds } };
    },
    async adjust(grant: LimitGrant, ruleId, delta) {
      const w = liveWindow(ruleId, now());
      const end = grant.windowEnds?.[ruleId];
      if (w && (end === undefined || w.resetAt === end)) w.used = Math.max(0, w.used + delta);
    },
    async release(grant) {
      for (const r of grant.rules) if (r.kind === 'concurrent') slots.get(r.id)?.delete(grant.token);
    },
    async peek(rules) {
      const t = now();
      return rules.map((r) => state(r, t));
    },
    async close() {
      windows.clear();
      slots.clear();
    },
  };
}
