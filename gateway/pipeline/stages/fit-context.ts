/**
 * fitContext: runs after resolveRoute (ctx.target known) and before rateLimit and
 * checkBudget, so those count the prompt that will really be sent. When prompt +
 * completion allowance exceeds models[alias].context_window, the route's `context`
 * policy applies: reject (default) → 400 context_length_exceeded; trim → drop the
 * oldest turns (tool calls with their results), set ctx.bodyChanged and answer with
 * `x-switchyard-context-trimmed: <messages dropped>`.
 * The allowance is max_tokens / max_completion_tokens, else default_max_tokens, else 0:
 * a request without a limit only needs its prompt to fit.
 */
import { GatewayError } from '../../errors.js';
import { completionAllowance } from '../../tokens/max-tokens.js';
import { promptTokens, requestTextCounter } from '../../tokens/request-tokens.js';
import { createTokenCounter } from '../../tokens/token-counter.js';
import { trimMessages } from '../../tokens/trim-messages.js';
import type { RequestContext, Stage } from '../context.js';
import type { GatewayDeps } from '../deps.js';

export const CONTEXT_TRIMMED_HEADER = 'x-switchyard-context-trimmed';

function hasMediaParts(raw: Buffer): boolean {
  return raw.includes('"image_url"') || raw.includes('"input_audio"');
}

export function createFitContextStage(deps: GatewayDeps): Stage {
  const counter = createTokenCounter(deps.config);

  return function fitContext(ctx: RequestContext) {
    const model = ctx.target?.model;
    const window = model?.context_window;
    if (!model || !window || ctx.endpoint === 'embeddings') return;
    const completion = completionAllowance(ctx.endpoint, ctx.body, model, 0);
    // No token is shorter than a byte and the JSON around each message outweighs its
    // token overhead, so the client's body size bounds the prompt (while no stage has
    // rewritten it): most requests fit without being tokenized at all.
    // Images and audio are the exception: a short URL can stand for hundreds of tokens.
    if (!ctx.bodyChanged && ctx.rawBody.length + 16 + completion <= window && !hasMediaParts(ctx.rawBody)) return;
    const prompt = promptTokens(ctx, counter);
    if (prompt + completion <= window) return;

    const tooLong = () =>
      new GatewayError('context_length_exceeded', {
        param: 'messages',
        message: `This model's maximum context length is ${window} tokens. However, you requested ${prompt + completion} tokens (${prompt} in the messages, ${completion} in the completion). Please reduce the length of the messages or completion.`,
      });
    if (ctx.route?.context !== 'trim' || ctx.endpoint !== 'chat' || !Array.isArray(ctx.body.messages)) throw tooLong();

    const split = counter.countChat(ctx.body, model, requestTextCounter(ctx));
    const trimmed = trimMessages(ctx.body.messages, split.perMessage, split.fixed, window - completion);
    if (!trimmed || trimmed.dropped === 0) throw tooLong();
    ctx.body.messages = trimmed.messages;
    ctx.bodyChanged = true;
    // Recount exactly: per-message sums can differ by a token from the whole (system padding with tools).
    ctx.promptTokensEstimate = undefined;
    const after = promptTokens(ctx, counter);
    if (after + completion > window) throw tooLong();
    ctx.responseHeaders[CONTEXT_TRIMMED_HEADER] = String(trimmed.dropped);
    deps.metrics.contextTrimmed.labels(ctx.target?.alias ?? ctx.modelAlias).inc();
  };
}
