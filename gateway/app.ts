/**
 * Builds a whole gateway from a loaded config: backends, pipeline, server, admin
 * endpoints, reload and graceful shutdown. No globals: tests build as many gateways
 * as they like in one process. main.ts is the only caller in production.
 */
import { randomUUID } from 'node:crypto';
import type { LoadedConfig } from './config/load.js';
import { GatewayError } from './errors.js';
import { createLogger, releaseLogger, type Logger } from './logger.js';
import { createMetrics, type Metrics } from './metrics.js';
import type { RequestContext } from './pipeline/context.js';
import type { Leader } from './cache/coalesce.js';
import type { GatewayDeps } from './pipeline/deps.js';
import { runPipeline } from './pipeline/pipeline.js';
import { respondError } from './pipeline/respond.js';
import type { Endpoint } from './providers/types.js';
import { createHttpServer } from './server/create-server.js';
import type { HttpRequest, HttpResponse, HttpServer } from './server/types.js';
import type { Stores } from './stores/types.js';
import { createStores } from './stores/create-stores.js';
import { vectorGraphAvailable } from './cache/partition-index.js';
import { createCacheParts } from './cache/parts.js';
import { createEmbedder } from './cache/embed-through-backends.js';
import { buildGeneration, closeGeneration, type Carried, type Generation } from './generation.js';
import { RequestCancellation } from './upstream/cancellation.js';
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

const ENDPOINTS: Record<string, Endpoint> = {
  '/v1/chat/completions': 'chat',
  '/v1/completions': 'completions',
  '/v1/embeddings': 'embeddings',
};
const GET_PATHS = new Set(['/health', '/ready', '/metrics', '/v1/models']);
const REQUEST_ID_RE = /^[\w.:-]{1,128}$/;

export async function createGateway(loaded: LoadedConfig, opts: GatewayOptions = {}): Promise<Gateway> {
  const ownLogger = opts.logger === undefined;
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
  if (cache.semantic) {
    const graph = vectorGraphAvailable();
    if (!graph.available) {
      logger.warn({ err: String(graph.error) }, 'semantic cache: usearch could not be loaded here, so every partition is searched linearly (tens of ms per lookup beyond ~10k entries of 1,536 dimensions)');
    }
  }
  const shared = { logger, metrics, stores, cache, carried: { breakers: new Map(), admissions: new Map() } as Carried };
  let gen: Generation = await buildGeneration(loaded, shared);
  let ready = false;
  let shuttingDown = false;
  let totalInflight = 0;
  let idleWaiters: Array<() => void> = [];
  /**
   * Requests in flight, so a shutdown past its grace period can end them with an answer.
   * Slots in an array, not a Set: a Set hashes the context object, and giving it an
   * identity hash cost ~15 µs per request in the saturation harness.
   */
  const inflightContexts: Array<RequestContext | undefined> = [];
  const freeSlots: number[] = [];

  const text = (res: HttpResponse, status: number, body: string, type = 'application/json') =>
    res.send(status, { 'content-type': type }, body);

  function plainError(req: HttpRequest, res: HttpResponse, err: unknown) {
    // Errors outside the pipeline (404, 405, 413) still go through the one error table,
    // and are logged and counted like every request (an oversized-body flood shows up).
    const ctx = newContext(req, res, Buffer.alloc(0), gen, 'chat');
    respondError(ctx, err);
    for (const fin of gen.pipeline.finalizers) {
      try {
        const r = fin(ctx, err);
        if (r && typeof (r as Promise<void>).catch === 'function') (r as Promise<void>).catch(() => {});
      } catch {
        /* a finalizer failing must not take the error answer down with it */
      }
    }
  }

  function newContext(req: HttpRequest, res: HttpResponse, body: Buffer, g: Generation, endpoint: Endpoint): RequestContext {
    const incoming = req.headers['x-request-id'];
    return {
      id: incoming && REQUEST_ID_RE.test(incoming) ? incoming : randomUUID(),
      startNs: process.hrtime.bigint(),
      req,
      res,
      rawBody: body,
      config: g.deps.config,
      abort: new RequestCancellation(),
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
      waitNs: 0n,
      onEnd: [],
      locals: {},
    };
  }

  /**
   * The servers' entry: nothing a request does may throw into the server callback (that
   * would end the process for every client). The pipeline catches its own errors; this
   * guards everything around it.
   */
  function handle(req: HttpRequest, res: HttpResponse, body: Buffer): void {
    try {
      route(req, res, body);
    } catch (err) {
      logger.error({ err, path: req.path.slice(0, 200), method: req.method }, 'request handler threw');
      try {
        plainError(req, res, new GatewayError('internal_error', { detail: err }));
      } catch {
        /* the response is unusable: the server closes the connection */
      }
    }
  }

  function route(req: HttpRequest, res: HttpResponse, body: Buffer): void {
    const endpoint = ENDPOINTS[req.path];
    if (endpoint !== undefined) {
      if (req.method !== 'POST') return plainError(req, res, new GatewayError('method_not_allowed', { headers: { allow: 'POST' } }));
      const g = gen;
      const ctx = newContext(req, res, body, g, endpoint);
      res.onAborted(() => {
        // A coalescing leader with followers keeps its upstream call for them: one
        // client's abort must not become everyone's. Its own writes are no-ops from now.
        const leader = ctx.locals.coalesceLeader as Leader | undefined;
        if (leader?.hasFollowers()) {
          ctx.locals.clientLeft = true;
          // ...until the last follower leaves too: then nobody reads the answer.
          leader.onAbandoned(() => ctx.abort.abort());
          return;
        }
        ctx.abort.abort();
      });
      g.inflight++;
      totalInflight++;
      const slot = freeSlots.length > 0 ? freeSlots.pop()! : inflightContexts.length;
      inflightContexts[slot] = ctx;
      metrics.inflight.inc();
      void runPipeline(g.pipeline, ctx, logger).finally(() => {
        inflightContexts[slot] = undefined;
        freeSlots.push(slot);
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
      const id = decodePathSegment(req.path.slice('/v1/models/'.length));
      if (id === undefined) return plainError(req, res, badPathEncoding());
      if (Object.hasOwn(gen.deps.config.models, id)) return text(res, 200, JSON.stringify({ id, object: 'model', created: 0, owned_by: 'switchyard' }));
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
      const keyId = decodePathSegment(reset[1]!);
      if (keyId === undefined) return plainError(req, res, badPathEncoding());
      p = handleAdminResetKey(apiDeps, auth, keyId, new URLSearchParams(req.query).get('period'));
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
      const before = old.deps.config;
      // A file caught half-written (truncated, then filled) parses as a config without
      // `keys`: hot reload never turns authentication off; that takes a restart.
      if (before.keys.length > 0 && next.config.keys.length === 0) {
        throw new Error('the new config has no keys, which would turn authentication off; restart the gateway to do that on purpose');
      }
      const needRestart: string[] = RESTART_SECTIONS.filter((k) => JSON.stringify(before[k]) !== JSON.stringify(next.config[k]));
      // The cache's parts are built once, at start-up (createCacheParts above).
      for (const [name, read] of RESTART_CACHE_SETTINGS) if (JSON.stringify(read(before)) !== JSON.stringify(read(next.config))) needRestart.push(name);
      const built = await buildGeneration(next, shared);
      // A local model whose settings changed loads before the swap, not on the next request.
      await Promise.all([...built.deps.backends.values()].map((b) => b.warmUp?.()));
      gen = built;
      if (needRestart.length) logger.warn({ sections: needRestart }, 'config reloaded except these sections, which apply at the next restart');
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
      if (!drained) {
        logger.warn({ inflight: totalInflight }, 'shutdown grace period over; ending the requests in flight');
        // Cut their upstream calls, marked as a shutdown: a whole answer becomes a 503
        // shutting_down with Retry-After, a stream ends with a shutting_down error event
        // (never a silent cut), and the log says shutdown, not client abort. Then the
        // connections close.
        for (const ctx of inflightContexts) {
          if (!ctx) continue;
          ctx.locals.shutdown = true;
          ctx.abort.abort();
        }
        await waitIdle(SHUTDOWN_CUT_MS);
      }
      server.close();
      await closeGeneration(gen);
      await cache.close();
      await stores.close();
      logger.flush?.();
      if (ownLogger) releaseLogger(logger);
    },
    async close() {
      shuttingDown = true;
      server.close();
      await closeGeneration(gen);
      await cache.close();
      await stores.close();
      if (ownLogger) releaseLogger(logger);
    },
  };
}

/** After the grace period: how long the cut requests get to write their last answer. */
const SHUTDOWN_CUT_MS = 500;

/** Config sections read once at start-up (the server, the shared store, the logger). */
const RESTART_SECTIONS = ['server', 'store', 'logging'] as const;
/** Cache settings wired at start-up: a reload that changes them takes effect at the next restart. */
const RESTART_CACHE_SETTINGS: Array<[string, (c: LoadedConfig['config']) => unknown]> = [
  ['cache.exact.max_bytes', (c) => c.cache.exact.max_bytes],
  ['cache.semantic.max_entries', (c) => c.cache.semantic.max_entries],
  ['cache.semantic.embedding_model', (c) => c.cache.semantic.embedding_model],
  ['cache.coalesce.across_replicas', (c) => c.cache.coalesce.across_replicas],
];

/** A percent-encoded path segment, or undefined when its escapes are malformed (`%`, `%E0%A4%A`). */
function decodePathSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

const badPathEncoding = () => new GatewayError('invalid_request', { message: 'The path has a malformed percent-encoding.' });
