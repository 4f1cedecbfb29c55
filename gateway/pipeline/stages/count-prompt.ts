/**
 * countPrompt: after resolveRoute, before fitContext. When the target's backend has its
 * own tokenizer (BackendClient.countTokens: local models) and something will count the
 * prompt (a context window, tpm limits, budgets), tokenizes the prompt's texts with it,
 * so admission counts what the model will really see. A no-op for every other backend.
 */
import { prepareBackendCount } from '../../tokens/request-tokens.js';
import { createTokenCounter } from '../../tokens/token-counter.js';
import type { RequestContext, Stage } from '../context.js';
import type { GatewayDeps } from '../deps.js';

export function createCountPromptStage(deps: GatewayDeps): Stage {
  const { config } = deps;
  const counter = createTokenCounter(config);
  const hasTpm = (l?: { tpm?: number }) => l?.tpm !== undefined;
  const admissionCounts =
    config.keys.some((k) => k.budget || hasTpm(k.limits)) ||
    Object.values(config.teams).some((t) => t.budget || hasTpm(t.limits)) ||
    Object.values(config.models).some((m) => hasTpm(m.limits)) ||
    hasTpm(config.limits.global);

  return function countPrompt(ctx: RequestContext) {
    const target = ctx.target;
    if (!target) return;
    const backend = deps.backends.get(target.backendName);
    if (!backend?.countTokens) return;
    if (!admissionCounts && !target.model.context_window) return;
    return prepareBackendCount(ctx, counter, backend);
  };
}
