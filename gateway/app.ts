/**
 * Builds a whole gateway from a loaded config: backends, pipeline, server, admin
 * endpoints, reload and graceful shutdown. No globals: tests build as many gateways
 * as they like in one process. main.ts is the only caller in production.
 */
import { randomUUID } from 'node:crypto';
import type { LoadedConfig } from './config/load.js';
import { GatewayError } from './errors.js';
import { createLogger, type Logger } from './logger.js';
import { createMetrics, type Metrics } from './metrics.js';
import type { GatewayDeps } from './pipeline/deps.js';
import type { RequestContext } from './pipeline/context.js';
import { createPipeline, runPipeline, type Pipeline } from './pipeline/pipeline.js';
import { respondError } from './pipeline/respond.js';
import { createBackendClient, createTranslator } from './providers/registry.js';
import type { Endpoint, Translator } from './providers/types.js';
import { createHttpServer } from './server/create-server.js';
import type { HttpRequest, HttpResponse, HttpServer } from './server/types.js';
import type { Stores } from './stores/types.js';
import type { BackendClient } from './upstream/types.js';
import { createStores } from './stores/create-stores.js';
import { createRouter } from './routing/router.js';
import { createPriceTable } from './routing/cost.js';
import { createCircuitBreaker, startActiveHealthCheck, type ActiveHealthCheck, type CircuitBreaker } from './upstream/circuit-breaker.js';
import { createAdmission, type AdmissionController } from './upstream/admission.js';
import { createCacheParts, type CacheParts } from './cache/parts.js';
import { createEmbedder } from './cache/embed-through-backends.js';
import { createKeyIndex, type KeyIndex } from './pipeline/stages/authenticate.js';
import { handleAdminListKeys, handleAdminResetKey, handleUsage, type ApiResponse } from './usage-api.js';

export interface GatewayOptions {
  logger?: Logger;
  metrics?: Metrics;
  stores?: Stores;
  /** Overrides server.implementation (tests run the suite against both). */
  server?: 'auto' | 'uws' | 'node';
  /** Port override (tests use 0). */
  port?: number;
}

export interface Gateway {
  readonly port: number;
  readonly url: string;
  readonly serverKind: 'uws' | 'node';
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Config currently serving new requests. */
  current(): GatewayDeps;
  /** Validated config in, atomically swapped; in-flight requests finish on the old one. */
  reload(loaded: LoadedConfig): Promise<void>;
  /** /ready false, stop accepting, wait for in-flight (≤ grace), close pools. */
  shutdown(): Promise<void>;
  /** Immediate close (tests). */
  close(): Promise<void>;
}

interface Generation {
  deps: GatewayDeps;
  pipeline: Pipeline;
  modelsBody: string;
  inflight: number;
  healthChecks: ActiveHealthCheck[];
  keyIndex: KeyIndex;
}

/** Long-lived per-backend state carried across reloads while the backend's settings are unchanged. */
interface Carried {
  breakers: Map<string, { key: string; breaker: CircuitBreaker }>;
  admissions: Map<string, { key: string; admission: AdmissionController }>;
}

const ENDPOINTS: Record<string, Endpoint> = {
  '/v1/chat/completions': 'chat',
  '/v1/completions': 'completions',
  '/v1/embeddings': 'embeddings',
};
const GET_PATHS = new Set(['/health', '/ready', '/metrics', '/v1/models']);
const REQUEST_ID_RE = /^[\w.:-]{1,128}$/;

type Shared = { logger: Logger; metrics: Metrics; stores: Stores; carried: Carried; cache: CacheParts };

/**
 * A config that fails to build (a bad regex in a filter, a backend that cannot start)
 * leaves no trace: its pools are closed, its health probes stopped, and the carried
 * breakers and admission queues (and switchyard_backend_up) are as they were.
 */
async function buildGeneration(loaded: LoadedConfig, shared: Shared): Promise<Generation> {
  const saved: Carried = { breakers: new Map(shared.carried.breakers), admissions: new Map(shared.carried.admissions) };
  const partial = { backends: new Map<string, BackendClient>(), healthChecks: [] as ActiveHealthCheck[] };
  try {
    return await assembleGeneration(loaded, shared, partial);
  } catch (err) {
    for (const h of partial.healthChecks) h.stop();
    await Promise.allSettled([...partial.backends.values()].map((b) => b.close()));
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
    const client = await createBackendClient(name, cfg, { logger: shared.logger, registry: metrics.registry });
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
    if (!a || a.key !== aKey) {
      a = { key: aKey, admission: createAdmission(name, cfg.admission, metrics) };
      carried.admissions.set(name, a);
    }
    admissions.set(name, a.admission);
    if (cfg.health.active_check_ms) {
      const breaker = b.breaker;
      healthChecks.push(
        startActiveHealthCheck(
          breaker,
          async (signal) => {
            const r = await client.request({ method: 'GET', path: '/models', headers: cfg.api_key ? { authorization: `Bearer ${cfg.api_key}` } : {} }, { signal });
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

async function closeGeneration(g: Generation): Promise<void> {
  for (const h of g.healthChecks) h.stop();
  await Promise.allSettled([...g.deps.backends.values()].map((b) => b.close()));
}

export async function createGateway(loaded: LoadedConfig, opts: GatewayOptions = {}): Promise<Gateway> {
  const logger = opts.logger ?? createLogger({ level: loaded.config.logging.level, file: loaded.config.logging.file });
  const metrics = opts.metrics ?? createMetrics();
  const stores = opts.stores ?? createStores(loaded.config.store, { logger, metrics });
  // The embedder reads the current generation's backends at call time (reload-safe).
  const embed = createEmbedder(() => gen.deps);
  const cache = createCacheParts({
    cache: loaded.config.cache,
    metrics,
    redis: stores.redis ? { client: stores.redis, keyPrefix: loaded.config.store.key_prefix, health: stores.health } : undefined,
    lockAcrossReplicas: loaded.config.cache.coalesce.across_replicas,
    embed: loaded.config.models[loaded.config.cache.semantic.embedding_model] ? embed : undefined,
  });
  const shared = { logger, metrics, stores, cache, carried: { breakers: new Map(), admissions: new Map() } as Carried };
  let gen: Generation = await buildGeneration(loaded, shared);
  let ready = false;
  let shuttingDown = false;
  let totalInflight = 0;
  let idleWaiters: Array<() => void> = [];

  const text = (res: HttpResponse, status: number, body: string, type = 'application/json') =>
    res.send(status, { 'content-type': type }, body);

  function plainError(req: HttpRequest, res: HttpResponse, err: unknown) {
    // Errors outside the pipeline (404, 405, 413) still go through the one error table.
    const ctx = newContext(req, res, Buffer.alloc(0), gen, 'chat');
    respondError(ctx, err);
  }

  function newContext(req: HttpRequest, res: HttpResponse, body: Buffer, g: Generation, endpoint: Endpoint): RequestContext {
    const incoming = req.headers['x-request-id'];
    const ac = new AbortController();
    return {
      id: incoming && REQUEST_ID_RE.test(incoming) ? incoming : randomUUID(),
      startNs: process.hrtime.bigint(),
      req,
      res,
      rawBody: body,
      config: g.deps.config,
      abort: ac,
      endpoint,
      body: undefined as unknown as Record<string, unknown>,
      bodyChanged: false,
      modelAlias: undefined as unknown as string,
      stream: false,
      clientWantsUsage: false,
      candidates: [],
      responseHeaders: {},
      status: 0,
      upstreamNs: 0n,
      onEnd: [],
      locals: {},
    };
  }

  function handle(req: HttpRequest, res: HttpResponse, body: Buffer): void {
    const endpoint = ENDPOINTS[req.path];
    if (endpoint !== undefined) {
      if (req.method !== 'POST') return plainError(req, res, new GatewayError('method_not_allowed', { headers: { allow: 'POST' } }));
      const g = gen;
      const ctx = newContext(req, res, body, g, endpoint);
      res.onAborted(() => ctx.abort.abort());
      g.inflight++;
      totalInflight++;
      metrics.inflight.inc();
      void runPipeline(g.pipeline, ctx, logger).finally(() => {
        g.inflight--;
        totalInflight--;
        metrics.inflight.dec();
        if (totalInflight === 0 && idleWaiters.length) {
          const w = idleWaiters;
          idleWaiters = [];
          for (const f of w) f();
        }
      });
      return;
    }
    if (GET_PATHS.has(req.path)) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return plainError(req, res, new GatewayError('method_not_allowed', { headers: { allow: 'GET' } }));
      switch (req.path) {
        case '/health':
          return text(res, 200, '{"status":"ok"}');
        case '/ready':
          return ready && !shuttingDown ? text(res, 200, '{"status":"ready"}') : text(res, 503, `{"status":"${shuttingDown ? 'shutting_down' : 'starting'}"}`);
        case '/v1/models':
          return text(res, 200, gen.modelsBody);
        case '/metrics':
          metrics.registry.metrics().then(
            (m) => text(res, 200, m, metrics.registry.contentType),
            (err) => plainError(req, res, new GatewayError('internal_error', { detail: err })),
          );
          return;
      }
    }
    if (req.path === '/v1/usage' || req.path.startsWith('/admin/')) return handleApi(req, res);
    if (req.path.startsWith('/v1/models/') && req.method === 'GET') {
      const id = decodeURIComponent(req.path.slice('/v1/models/'.length));
      if (gen.deps.config.models[id]) return text(res, 200, JSON.stringify({ id, object: 'model', created: 0, owned_by: 'switchyard' }));
      return plainError(req, res, new GatewayError('model_not_found', { message: `The model '${id}' does not exist.` }));
    }
    plainError(req, res, new GatewayError('not_found', { message: `Unknown path: ${req.method} ${req.path.slice(0, 200)}` }));
  }

  /** Usage and admin APIs: small JSON answers, errors through the one error table. */
  function handleApi(req: HttpRequest, res: HttpResponse): void {
    const g = gen;
    const apiDeps = { config: g.deps.config, limits: stores.limits, budgets: stores.budgets };
    const auth = req.headers.authorization;
    let p: Promise<ApiResponse>;
    const reset = /^\/admin\/keys\/([^/]+)\/reset$/.exec(req.path);
    if (req.path === '/v1/usage') {
      if (req.method !== 'GET') return plainError(req, res, new GatewayError('method_not_allowed', { headers: { allow: 'GET' } }));
      const entry = g.keyIndex.find(auth);
      if (g.keyIndex.enabled && !entry) return plainError(req, res, new GatewayError('invalid_api_key'));
      p = handleUsage(apiDeps, entry?.key);
    } else if (req.path === '/admin/keys') {
      if (req.method !== 'GET') return plainError(req, res, new GatewayError('method_not_allowed', { headers: { allow: 'GET' } }));
      p = handleAdminListKeys(apiDeps, auth);
    } else if (reset) {
      if (req.method !== 'POST') return plainError(req, res, new GatewayError('method_not_allowed', { headers: { allow: 'POST' } }));
      p = handleAdminResetKey(apiDeps, auth, decodeURIComponent(reset[1]), new URLSearchParams(req.query).get('period'));
    } else {
      return plainError(req, res, new GatewayError('not_found', { message: `Unknown path: ${req.method} ${req.path.slice(0, 200)}` }));
    }
    p.then(
      (r) => res.send(r.status, r.headers, r.body),
      (err) => plainError(req, res, err),
    );
  }

  const cfg = loaded.config.server;
  const server: HttpServer = createHttpServer(
    opts.server ?? cfg.implementation,
    { host: cfg.host, port: opts.port ?? cfg.port, maxBodyBytes: cfg.max_body_bytes, onBodyError: plainError },
    handle,
    logger,
  );
  const port = await server.listen();
  // /ready stays false until every backend that needs warming (local models) is loaded.
  // Nor while the shared store is still connecting (its limits would fall back to per-replica).
  await Promise.all([...[...gen.deps.backends.values()].map((b) => b.warmUp?.()), stores.ready?.()]);
  ready = true;
  logger.info({ port, server: server.kind, models: Object.keys(loaded.config.models).length }, 'switchyard listening');
  // Operators and supervisors wait for this line: do not leave it in the log buffer.
  try {
    logger.flush?.();
  } catch {
    /* destination not open yet: the periodic flush delivers it */
  }

  const waitIdle = (ms: number) =>
    new Promise<boolean>((resolve) => {
      if (totalInflight === 0) return resolve(true);
      const t = setTimeout(() => resolve(false), ms);
      idleWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    serverKind: server.kind,
    metrics,
    logger,
    current: () => gen.deps,
    async reload(next: LoadedConfig) {
      const old = gen;
      gen = await buildGeneration(next, shared);
      metrics.configReloads.labels('ok').inc();
      // In-flight requests keep their generation; close its pools once they are done.
      const closeOld = async () => {
        while (old.inflight > 0) await new Promise((r) => setTimeout(r, 50));
        await closeGeneration(old);
      };
      void closeOld();
    },
    async shutdown() {
      if (shuttingDown) return;
      shuttingDown = true;
      logger.info({ inflight: totalInflight }, 'shutting down: draining in-flight requests');
      server.stopAccepting();
      const drained = await waitIdle(cfg.shutdown_grace_ms);
      if (!drained) logger.warn({ inflight: totalInflight }, 'shutdown grace period over; closing with requests in flight');
      server.close();
      await closeGeneration(gen);
      await cache.close();
      await stores.close();
      logger.flush?.();
    },
    async close() {
      shuttingDown = true;
      server.close();
      await closeGeneration(gen);
      await cache.close();
      await stores.close();
    },
  };
}
