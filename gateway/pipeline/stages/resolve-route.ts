/**
 * resolveRoute: the model alias → the route (first match of routes:, or none), the
 * ordered candidate targets the dispatcher may try (picked target, other targets,
 * fallbacks — open circuits skipped), and the x-switchyard-route explanation.
 * Unknown alias → 404 model_not_found; every candidate's circuit open → 503.
 */
import { GatewayError } from '../../errors.js';
import type { Config } from '../../config/schema.js';
import { requestFeatures } from '../../routing/router.js';
import type { RequestContext, Stage, Target } from '../context.js';
import type { GatewayDeps } from '../deps.js';
import { estimatePromptTokens } from '../estimate.js';
import { retryAfterSeconds } from '../../upstream/retry.js';

export function targetFor(config: Config, alias: string): Target | undefined {
  const model = config.models[alias];
  if (!model) return undefined;
  return { alias, model, backendName: model.backend, backend: config.backends[model.backend] };
}

export function createResolveRouteStage(deps: GatewayDeps): Stage {
  // One Target object per alias, built at start-up.
  const targets = new Map<string, Target>();
  for (const alias of Object.keys(deps.config.models)) targets.set(alias, targetFor(deps.config, alias)!);
  const routed = deps.config.routes.length > 0;
  const available = (alias: string) => {
    const t = targets.get(alias);
    return !t || (deps.breakers.get(t.backendName)?.available() ?? true);
  };
  const inflight = (alias: string) => {
    const t = targets.get(alias);
    return (t && deps.admissions.get(t.backendName)?.inflight) ?? 0;
  };

  return function resolveRoute(ctx: RequestContext) {
    if (!routed) {
      // No routes: the alias of the same name (the hot path of simple deployments).
      const target = targets.get(ctx.modelAlias);
      if (!target) throw new GatewayError('model_not_found', { message: `The model '${ctx.modelAlias}' does not exist.`, param: 'model' });
      ctx.target = target;
      ctx.candidates = [target];
      return;
    }
    const d = deps.router.decide(
      {
        model: ctx.modelAlias,
        keyId: ctx.key?.id,
        headers: ctx.req.headers,
        ...requestFeatures(ctx.body),
        stream: ctx.stream,
        promptTokens: () => estimatePromptTokens(ctx),
        body: ctx.body,
      },
      { available, inflight },
    );
    ctx.route = d.route;
    ctx.routeInfo = d.info;
    ctx.responseHeaders['x-switchyard-route'] = d.info;
    if (d.aliases.length === 0) {
      if (!targets.has(ctx.modelAlias) && !d.route) {
        throw new GatewayError('model_not_found', { message: `The model '${ctx.modelAlias}' does not exist.`, param: 'model' });
      }
      // Retry-After: the soonest a circuit of this request's own candidates lets a probe
      // through (an unrelated backend's short cooldown would promise too early a retry).
      const r = d.route;
      const primary = r?.targets?.map((t) => t.model) ?? (r?.complexity ? [r.complexity.simple, r.complexity.medium, r.complexity.complex, r.complexity.reasoning] : [ctx.modelAlias]);
      const aliases = [...primary, ...(r?.fallbacks ?? [])];
      const backends = new Set(aliases.map((a) => targets.get(a)?.backendName).filter((b): b is string => b !== undefined));
      const waits = [...backends].map((b) => deps.breakers.get(b)?.retryInMs() ?? 0).filter((ms) => ms > 0);
      throw new GatewayError('backend_unavailable', { message: `Every backend for '${ctx.modelAlias}' is unavailable (circuit open).`, headers: { 'retry-after': retryAfterSeconds(waits.length ? Math.min(...waits) : 1000) } });
    }
    const first = targets.get(d.aliases[0]);
    if (!first) throw new GatewayError('model_not_found', { message: `The model '${d.aliases[0]}' does not exist.`, param: 'model' });
    ctx.target = first;
    ctx.candidates = d.aliases.map((a) => targets.get(a)).filter((t): t is Target => t !== undefined);
    if (d.complexity) {
      ctx.locals.complexity = { route: d.route!.name, class: d.complexity.class, rule: d.complexity.rule, reference: d.complexity.reference };
      deps.metrics.routingDecisions.labels(d.route!.name, d.complexity.class, first.alias).inc();
    } else if (d.route) {
      deps.metrics.routingDecisions.labels(d.route.name, 'none', first.alias).inc();
    }
  };
}
