/**
 * Budgets in this process's memory: the embedded default, and the per-replica
 * fallback of the Redis store under fail_open. reserve() runs to its end without
 * awaiting, so check-all-then-hold-all is atomic on the event loop.
 */
import { fromMicro, newReservationId, toMicro, toMicroCeil, type BudgetScope, type BudgetStore, type BudgetUsage, type Reservation } from './types.js';

interface Counter {
  su: number;
  ru: number;
  st: number;
  rt: number;
  expireAtMs: number;
}

interface Hold {
  u: number;
  t: number;
}

/** How many recent record ids are remembered (at one per request: seconds of traffic, ~1 MB). */
const RECORDED_MAX = 10_000;

export function createMemoryBudgets(opts: { now?: () => number } = {}): BudgetStore {
  const now = opts.now ?? Date.now;
  const counters = new Map<string, Counter>();
  const holds = new Map<string, Hold>();
  /** The most recent ids recorded, for idempotence (a replay comes within seconds): a set plus a ring of the same ids for eviction. */
  const recorded = new Set<string>();
  const recordedRing: string[] = new Array<string>(RECORDED_MAX);
  let ringAt = 0;
  let lastSweep = 0;

  const sweep = (t: number) => {
    if (t - lastSweep < 60_000) return;
    lastSweep = t;
    for (const [id, c] of counters) if (c.expireAtMs <= t) counters.delete(id);
  };
  const counter = (scope: BudgetScope): Counter => {
    let c = counters.get(scope.id);
    if (!c) {
      c = { su: 0, ru: 0, st: 0, rt: 0, expireAtMs: scope.expireAtMs };
      counters.set(scope.id, c);
    }
    return c;
  };
  const view = (c: Counter | undefined): BudgetUsage =>
    c ? { spentUsd: fromMicro(c.su), reservedUsd: fromMicro(c.ru), spentTokens: c.st, reservedTokens: c.rt } : { spentUsd: 0, reservedUsd: 0, spentTokens: 0, reservedTokens: 0 };

  return {
    async reserve(scopes, usd, tokens) {
      sweep(now());
      const u = toMicroCeil(usd);
      const t = Math.ceil(tokens);
      const found = scopes.map((s) => counters.get(s.id));
      const denied = scopes
        .filter((s, i) => {
          const c = found[i];
          const over = (limit: number | undefined, spent: number, held: number, add: number) => limit !== undefined && spent + held + add > limit;
          return over(s.limitUsd === undefined ? undefined : toMicro(s.limitUsd), c?.su ?? 0, c?.ru ?? 0, u) || over(s.limitTokens, c?.st ?? 0, c?.rt ?? 0, t);
        })
        .map((s) => s.id);
      if (denied.length > 0) return { ok: false, usage: found.map(view), denied };
      const reservation: Reservation = { id: newReservationId(), scopes, usd: fromMicro(u), tokens: t };
      holds.set(reservation.id, { u, t });
      const usage = scopes.map((s) => {
        const c = counter(s);
        c.ru += u;
        c.rt += t;
        return view(c);
      });
      return { ok: true, reservation, usage };
    },
    async settle(reservation, actualUsd, actualTokens) {
      const hold = holds.get(reservation.id);
      if (hold) {
        holds.delete(reservation.id);
        const au = toMicroCeil(actualUsd);
        const at = Math.round(actualTokens);
        for (const s of reservation.scopes) {
          const c = counter(s);
          // Floors: an admin reset between reserve and settle already dropped the hold.
          c.ru = Math.max(0, c.ru - hold.u);
          c.rt = Math.max(0, c.rt - hold.t);
          c.su += au;
          c.st += at;
        }
      }
      return reservation.scopes.map((s) => view(counters.get(s.id)));
    },
    async record(id, scopes, usd, tokens) {
      sweep(now());
      if (!recorded.has(id)) {
        // Evict the id this slot held (the oldest), by key: O(1), no iteration.
        const old = recordedRing[ringAt];
        if (old !== undefined) recorded.delete(old);
        recordedRing[ringAt] = id;
        ringAt = (ringAt + 1) % RECORDED_MAX;
        recorded.add(id);
        const au = toMicroCeil(usd);
        const at = Math.round(tokens);
        for (const s of scopes) {
          const c = counter(s);
          c.su += au;
          c.st += at;
        }
      }
      return scopes.map((s) => view(counters.get(s.id)));
    },
    async get(scopeId) {
      return view(counters.get(scopeId));
    },
    async reset(scopeId) {
      counters.delete(scopeId);
    },
    async close() {
      counters.clear();
      holds.clear();
      recorded.clear();
      recordedRing.fill(undefined as unknown as string);
    },
  };
}
