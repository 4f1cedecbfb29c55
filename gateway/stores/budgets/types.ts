/**
 * The budget store: spend per scope (a key or team, in one calendar period), with
 * reserve-then-settle so concurrent requests can never spend past a limit (PEERS #2).
 * reserve() checks and holds the worst case on ALL of a request's scopes in one atomic
 * step (all or nothing); settle() releases the hold and adds the actual spend, once,
 * however many times it is called. Memory and Redis implementations pass
 * test/stores-contract-budgets.test.ts.
 *
 * Amounts: USD in the API, kept as integer micro-USD inside both stores so sums are
 * exact (reservations round up, actual spend rounds to nearest).
 */

export interface BudgetScope {
  /** e.g. "key:team-a:day:2026-11-25" (ids from config plus the period label). */
  id: string;
  /** Undefined: no limit, spend is only tracked. */
  limitUsd?: number;
  limitTokens?: number;
  /** When the counter may be forgotten (period end plus a grace), UTC ms. */
  expireAtMs: number;
}

export interface BudgetUsage {
  spentUsd: number;
  reservedUsd: number;
  spentTokens: number;
  reservedTokens: number;
}

export interface Reservation {
  readonly id: string;
  readonly scopes: readonly BudgetScope[];
  readonly usd: number;
  readonly tokens: number;
}

export type ReserveResult =
  | { ok: true; reservation: Reservation; usage: BudgetUsage[] }
  /** usage: per scope as found; denied: ids of scopes without room. */
  | { ok: false; usage: BudgetUsage[]; denied: string[] };

export interface BudgetStore {
  /** `id`: the reservation's id, when the caller must know it before the call returns (to undo a call that timed out). */
  reserve(scopes: readonly BudgetScope[], usd: number, tokens: number, id?: string): Promise<ReserveResult>;
  /**
   * Releases the reservation and adds the actual spend to every scope. Idempotent:
   * only the first call counts. Returns the usage after settling, per scope
   * (empty when the shared store could not be reached and the settle was deferred).
   */
  settle(reservation: Reservation, actualUsd: number, actualTokens: number): Promise<BudgetUsage[]>;
  /**
   * Adds spend to scopes that have no limit, with no reservation before (nothing to
   * check, so nothing to hold): one store call per request instead of two, the common
   * case of keys that only have their spend tracked. Idempotent per `id` (a replay
   * after a timeout counts once). Returns the usage after, per scope (empty when the
   * shared store could not be reached and the record was deferred).
   */
  record(id: string, scopes: readonly BudgetScope[], usd: number, tokens: number): Promise<BudgetUsage[]>;
  get(scopeId: string): Promise<BudgetUsage>;
  /** Forgets a scope's spend and reservations (admin reset). */
  reset(scopeId: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Integer micro-dollars in the stores. Holds and spends round up (toMicroCeil): a request
 * cheaper than half a micro-dollar must still count, or many of them spend a budget
 * without it ever noticing; limits round to nearest (toMicro).
 */
export const MICRO = 1_000_000;
export const toMicroCeil = (usd: number) => Math.ceil(usd * MICRO - 1e-6);
export const toMicro = (usd: number) => Math.round(usd * MICRO);
export const fromMicro = (micro: number) => micro / MICRO;

/** Room left in a scope after spend and holds; Infinity without a limit. */
export function remaining(scope: BudgetScope, usage: BudgetUsage): { usd: number; tokens: number } {
  return {
    usd: scope.limitUsd === undefined ? Infinity : Math.max(0, fromMicro(toMicro(scope.limitUsd) - toMicro(usage.spentUsd) - toMicro(usage.reservedUsd))),
    tokens: scope.limitTokens === undefined ? Infinity : Math.max(0, scope.limitTokens - usage.spentTokens - usage.reservedTokens),
  };
}

let seq = 0;
const PROCESS_ID = Math.random().toString(36).slice(2, 10);
export function newReservationId(): string {
  seq = (seq + 1) % Number.MAX_SAFE_INTEGER;
  return `${PROCESS_ID}.${seq.toString(36)}`;
}
