/**
 * One generation per loaded config: backends (HTTP pools or in-process models),
 * translators, router, price table, the stages built from them, and the /v1/models
 * body. app.ts keeps the current one; a reload builds the next and swaps it. Circuit
 * breakers are carried over while a backend's health settings are unchanged, and
 * admission queues always (reconfigured in place), so a reload neither closes an open
 * circuit nor forgets queued and in-flight requests.
 */
import type { LoadedConfig } from './config/load.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { GatewayDeps } from './pipeline/deps.js';
import { createPipeline, type Pipeline } from './pipeline/pipeline.js';
import { createBackendClient, createTranslator } from './providers/registry.js';
import type { Translator } from './providers/types.js';
import type { Stores } from './stores/types.js';
import type { BackendClient } from './upstream/types.js';
import type { SharedEngines } from '../local-backend/in-process-client.js';
import { cancellationFromSignal } from './upstream/cancellation.js';
import { createRouter } from './routing/router.js';
import { createPriceTable } from './routing/cost.js';
import { createCircuitBreaker, startActiveHealthCheck, type ActiveHealthCheck, type CircuitBreaker } from './upstream/circuit-breaker.js';
import { createAdmission, type AdmissionConfig, type AdmissionController } from './upstream/admission.js';
import type { CacheParts } from './cache/parts.js';
import { createKeyIndex, type KeyIndex } from './pipeline/stages/authenticate.js';

export interface Generation {
  deps: GatewayDeps;
  pipeline: Pipeline;
  modelsBody: string;
  inflight: number;
  healthChecks: ActiveHealthCheck[];
  keyIndex: KeyIndex;
}

/** Long-lived per-backend state carried across reloads while the backend's settings are unchanged. */
export interface Carried {
  breakers: Map<string, { key: string; breaker: CircuitBreaker }>;
  admissions: Map<string, { key: string; admission: AdmissionController; cfg: AdmissionConfig | undefined }>;
  /** Loaded in-process models, reused by a generation whose settings for them are the same. */
  localEngines?: SharedEngines;
}

export type Shared = { logger: Logger; metrics: Metrics; stores: Stores; carried: Carried; cache: CacheParts };

/**
 * A config that fails to build (a bad regex in a filter, a backend that cannot start)
 * leaves no trace: its pools are closed, its health probes stopped, and the carried
 * breakers and admission queues (and switchyard_backend_up) are as they were.
 */
export async function buildGeneration(loaded: LoadedConfig, shared: Shared): Promise<Generation> {
  const saved: Carried = { breakers: new Map(shared.carried.breakers), admissions: new Map(shared.carried.admissions) };
  const partial = { backends: new Map<string, BackendClient>(), healthChecks: [] as ActiveHealthCheck[] };
  try {
    return await assembleGeneration(loaded, shared, partial);
  } catch (err) {
    for (const h of partial.healthChecks) h.stop();
    await Promise.allSettled([...partial.backends.values()].map((b) => b.close()));
    // A controller reconfigured by the failed build gets its limits back.
    for (const [name, old] of saved.admissions) {
      if (shared.carried.admissions.get(name)?.key !== old.key) old.admission.reconfigure(old.cfg);
    }
    shared.carried.breakers = saved.breakers;
    shared.carried.admissions = saved.admissions;
    for (const [name, { breaker }] of saved.breakers) shared.metrics.backendUp.labels(name).set(breaker.state === 'open' ? 0 : 1);
    throw err;
  }
}

async function assembleGeneration(
  loaded: LoadedConfig,
  shared: Shared,
  partial: { backends: Map<string, BackendClient>; healthChecks: ActiveHealthCheck[] },
): Promise<Generation> {
  const { backends, healthChecks } = partial;
  const translators = new Map<string, Translator>();
  const breakers = new Map<string, CircuitBreaker>();
  const admissions = new Map<string, AdmissionController>();
  const { metrics, carried } = shared;
  for (const [name, cfg] of Object.entries(loaded.config.backends)) {
    translators.set(name, await createTranslator(cfg));
    const client = await createBackendClient(name, cfg, { logger: shared.logger, registry: metrics.registry, localEngines: (carried.localEngines ??= new Map()) });
    backends.set(name, client);
    const hKey = JSON.stringify(cfg.health);
    let b = carried.breakers.get(name);
    if (!b || b.key !== hKey) {
      const gauge = metrics.backendUp.labels(name);
      gauge.set(1);
      b = { key: hKey, breaker: createCircuitBreaker(cfg.health, { onStateChange: (st) => gauge.set(st === 'open' ? 0 : 1) }) };
      carried.breakers.set(name, b);
    }
    breakers.set(name, b.breaker);
    const aKey = JSON.stringify(cfg.admission ?? null);
    let a = carried.admissions.get(name);
    if (!a) {
      a = { key: aKey, admission: createAdmission(name, cfg.admission, metrics), cfg: cfg.admission };
      carried.admissions.set(name, a);
    } else if (a.key !== aKey) {
      // The same controller with new limits: what is in flight and queued stays counted.
      a.admission.reconfigure(cfg.admission);
      a = { key: aKey, admission: a.admission, cfg: cfg.admission };
      carried.admissions.set(name, a);
    }
    admissions.set(name, a.admission);
    if (cfg.health.active_check_ms) {
      const breaker = b.breaker;
      healthChecks.push(
        startActiveHealthCheck(
          breaker,
          async (signal) => {
            const r = await client.request({ method: 'GET', path: '/models', headers: cfg.api_key ? { authorization: `Bearer ${cfg.api_key}` } : {} }, { cancel: cancellationFromSignal(signal) });
            await r.dump();
            if (r.status >= 500) throw new Error(`health check answered ${r.status}`);
          },
          cfg.health.active_check_ms,
        ),
      );
    }
  }
  const deps: GatewayDeps = {
    loaded,
    config: loaded.config,
    logger: shared.logger,
    metrics,
    stores: shared.stores,
    backends,
    translators,
    router: createRouter(loaded.config),
    prices: createPriceTable(loaded.config),
    breakers,
    admissions,
    cache: shared.cache,
  };
  const created = Math.floor(Date.now() / 1000);
  const modelsBody = JSON.stringify({
    object: 'list',
    data: Object.keys(loaded.config.models).map((id) => ({ id, object: 'model', created, owned_by: 'switchyard' })),
  });
  return { deps, pipeline: createPipeline(deps), modelsBody, inflight: 0, healthChecks, keyIndex: createKeyIndex(loaded.config.keys) };
}

export async function closeGeneration(g: Generation): Promise<void> {
  for (const h of g.healthChecks) h.stop();
  await Promise.allSettled([...g.deps.backends.values()].map((b) => b.close()));
}
