/**
 * The pipeline is data: STAGES run in written order, each `(ctx) => continue | STOP |
 * throw GatewayError`; FINALIZERS always run afterwards (usage → metrics → access log).
 * docs/architecture.md draws the chain and which stage answers which status.
 */
import { STOP, type Finalizer, type RequestContext, type Stage } from './context.js';
import type { GatewayDeps } from './deps.js';
import { createParseRequestStage } from './stages/parse-request.js';
import { createAuthenticateStage, createAuthorizeModelStage, createKeyIndex } from './stages/authenticate.js';
import { createResolveRouteStage } from './stages/resolve-route.js';
import { createDispatchStage } from './stages/dispatch.js';
import { createFilterContentStage } from './stages/filter-content.js';
import { createFitContextStage } from './stages/fit-context.js';
import { createCountPromptStage } from './stages/count-prompt.js';
import { createRateLimitStage } from './stages/rate-limit.js';
import { createCheckBudgetStage } from './stages/check-budget.js';
import { createCheckCacheStage } from './stages/check-cache.js';
import { createRecordUsageFinalizer } from './finalizers/record-usage.js';
import { createRecordMetricsFinalizer } from './finalizers/record-metrics.js';
import { createAccessLogFinalizer } from './finalizers/access-log.js';
import { respondError } from './respond.js';

export interface Pipeline {
  readonly stages: readonly Stage[];
  readonly finalizers: readonly Finalizer[];
}

export function createPipeline(deps: GatewayDeps): Pipeline {
  const keys = createKeyIndex(deps.config.keys);
  const stages: Stage[] = [
    createAuthenticateStage(deps, keys),
    createParseRequestStage(),
    createAuthorizeModelStage(deps, keys),
    createResolveRouteStage(deps),
    createFilterContentStage(deps),
    createCountPromptStage(deps),
    createFitContextStage(deps),
    createRateLimitStage(deps, deps.stores.limits),
    createCheckBudgetStage(deps, deps.stores.budgets),
    createCheckCacheStage(deps, deps.cache),
    createDispatchStage(deps),
  ];
  const finalizers: Finalizer[] = [createRecordUsageFinalizer(deps), createRecordMetricsFinalizer(deps), createAccessLogFinalizer(deps)];
  return { stages, finalizers };
}

function isPromise(v: unknown): v is Promise<unknown> {
  return !!v && typeof (v as { then?: unknown }).then === 'function';
}

/** Runs one request through the pipeline. Never throws. */
export async function runPipeline(p: Pipeline, ctx: RequestContext, log: GatewayDeps['logger']): Promise<void> {
  let error: unknown;
  try {
    for (const stage of p.stages) {
      let r = stage(ctx);
      if (isPromise(r)) r = await r;
      if (r === STOP) break;
    }
  } catch (err) {
    error = err;
    if (!ctx.res.aborted) respondError(ctx, err);
    else ctx.status = 499;
  }
  if (ctx.res.aborted && ctx.status === 0) ctx.status = 499;
  // End hooks settle what stages reserved (budgets, limits, slots), on every ending.
  for (const hook of ctx.onEnd) {
    try {
      const r = hook(ctx);
      if (isPromise(r)) await r;
    } catch (err) {
      log.error({ request_id: ctx.id, err: (err as Error).message }, 'end hook failed');
    }
  }
  for (const fin of p.finalizers) {
    try {
      const r = fin(ctx, error);
      if (isPromise(r)) await r;
    } catch (err) {
      log.error({ request_id: ctx.id, err: (err as Error).message }, 'finalizer failed');
    }
  }
}
