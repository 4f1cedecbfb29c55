/**
 * The Redis budget store under store.on_failure. While Redis answers, every call goes
 * to it. During an outage fail_open reserves against per-replica memory budgets (each
 * limit divided by store.replicas_hint, counted from zero for the outage), and
 * fail_closed refuses with 503 store_unavailable. A reservation settles in the store
 * that made it; a Redis settle that fails is kept and replayed when the outage ends
 * (settle is idempotent), so spend made before an outage is never lost. A reserve that
 * failed is settled at zero the same way: a timeout may still have made its hold.
 */
import { GatewayError } from '../../errors.js';
import type { StoreHealth } from '../redis/connection.js';
import { createMemoryBudgets } from './memory-budgets.js';
import { newReservationId, type BudgetScope, type BudgetStore, type Reservation } from './types.js';

const MAX_DEFERRED = 100_000;

export interface ResilientBudgetsOptions {
  shared: BudgetStore;
  health: StoreHealth;
  /** store.replicas_hint */
  replicas: number;
  local?: BudgetStore;
}

type DeferredSettle =
  | { reservation: Reservation; usd: number; tokens: number }
  | { record: { id: string; scopes: readonly BudgetScope[] }; usd: number; tokens: number };

export function createResilientBudgets(opts: ResilientBudgetsOptions): BudgetStore {
  const { shared, health } = opts;
  const local = opts.local ?? createMemoryBudgets();
  const localReservations = new WeakSet<Reservation>();
  const deferred: DeferredSettle[] = [];
  const scale = (scopes: readonly BudgetScope[]): BudgetScope[] =>
    scopes.map((s) => ({
      ...s,
      limitUsd: s.limitUsd === undefined ? undefined : s.limitUsd / opts.replicas,
      limitTokens: s.limitTokens === undefined ? undefined : Math.floor(s.limitTokens / opts.replicas),
    }));

  const replay = async () => {
    while (deferred.length > 0 && !health.degraded) {
      const d = deferred[0];
      const replayed =
        'record' in d
          ? await health.attempt('budgets.record', () => shared.record(d.record.id, d.record.scopes, d.usd, d.tokens))
          : await health.attempt('budgets.settle', () => shared.settle(d.reservation, d.usd, d.tokens));
      if (!replayed) return;
      deferred.shift();
    }
  };
  health.onRecover(() => void replay());

  return {
    reserve(scopes, usd, tokens) {
      const id = newReservationId();
      const sharedReserve = async () => {
        try {
          return await shared.reserve(scopes, usd, tokens, id);
        } catch (err) {
          // A call that timed out may still run on Redis and hold its worst case until
          // the period ends: settle it at zero when the outage ends (settling a hold
          // that was never made is a no-op).
          if (deferred.length < MAX_DEFERRED) deferred.push({ reservation: { id, scopes, usd, tokens }, usd: 0, tokens: 0 });
          throw err;
        }
      };
      return health.run('budgets.reserve', sharedReserve, async () => {
        const result = await local.reserve(scale(scopes), usd, tokens);
        if (result.ok) localReservations.add(result.reservation);
        return result;
      });
    },
    async settle(reservation, usd, tokens) {
      if (localReservations.has(reservation)) return local.settle(reservation, usd, tokens);
      let usage: Awaited<ReturnType<BudgetStore['settle']>> = [];
      const ok = await health.attempt('budgets.settle', async () => {
        usage = await shared.settle(reservation, usd, tokens);
      });
      if (!ok && deferred.length < MAX_DEFERRED) deferred.push({ reservation, usd, tokens });
      return usage;
    },
    async record(id, scopes, usd, tokens) {
      let usage: Awaited<ReturnType<BudgetStore['record']>> = [];
      const ok = await health.attempt('budgets.record', async () => {
        usage = await shared.record(id, scopes, usd, tokens);
      });
      if (!ok && deferred.length < MAX_DEFERRED) deferred.push({ record: { id, scopes }, usd, tokens });
      return usage;
    },
    get(scopeId) {
      return health.run('budgets.get', () => shared.get(scopeId), () => local.get(scopeId));
    },
    async reset(scopeId) {
      await local.reset(scopeId);
      await health.run('budgets.reset', () => shared.reset(scopeId), () => {
        throw new GatewayError('store_unavailable', { detail: 'budget reset needs the shared store' });
      });
    },
    async close() {
      await local.close();
      await shared.close();
    },
  };
}
