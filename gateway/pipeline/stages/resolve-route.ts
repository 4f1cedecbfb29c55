/**
 * resolveRoute: the model alias → the target (alias, model config, backend) and the
 * ordered candidates the dispatcher may try. Unknown alias → 404 model_not_found.
 */
import { GatewayError } from '../../errors.js';
import type { Config } from '../../config/schema.js';
import type { RequestContext, Stage, Target } from '../context.js';
import type { GatewayDeps } from '../deps.js';

export function targetFor(config: Config, alias: string): Target | undefined {
  const model = config.models[alias];
  if (!model) return undefined;
  return { alias, model, backendName: model.backend, backend: config.backends[model.backend] };
}

export function createResolveRouteStage(deps: GatewayDeps): Stage {
  // One Target object per alias, built at start-up.
  const targets = new Map<string, Target>();
  for (const alias of Object.keys(deps.config.models)) targets.set(alias, targetFor(deps.config, alias)!);
  return function resolveRoute(ctx: RequestContext) {
    const target = targets.get(ctx.modelAlias);
    if (!target) {
      throw new GatewayError('model_not_found', { message: `The model '${ctx.modelAlias}' does not exist.`, param: 'model' });
    }
    ctx.target = target;
    ctx.candidates = [target];
  };
}
