/**
 * parseRequest: the client's JSON body → ctx.body, ctx.modelAlias, ctx.stream.
 * Answers 400 invalid_json / invalid_request (naming the param) for bad input.
 */
import { GatewayError } from '../../errors.js';
import type { RequestContext, Stage } from '../context.js';

export function createParseRequestStage(): Stage {
  return function parseRequest(ctx: RequestContext) {
    let body: unknown;
    try {
      body = JSON.parse(ctx.rawBody.toString('utf8'));
    } catch {
      throw new GatewayError('invalid_json', { message: 'The request body is not valid JSON.' });
    }
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      throw new GatewayError('invalid_request', { message: 'The request body must be a JSON object.' });
    }
    const b = body as Record<string, unknown>;
    if (typeof b.model !== 'string' || b.model === '') {
      throw new GatewayError('invalid_request', { message: 'you must provide a model parameter', param: 'model' });
    }
    if (ctx.endpoint === 'chat' && (!Array.isArray(b.messages) || b.messages.length === 0)) {
      throw new GatewayError('invalid_request', { message: "'messages' must be a non-empty array", param: 'messages' });
    }
    if (ctx.endpoint === 'completions' && b.prompt === undefined) {
      throw new GatewayError('invalid_request', { message: "'prompt' is required", param: 'prompt' });
    }
    if (ctx.endpoint === 'embeddings' && b.input === undefined) {
      throw new GatewayError('invalid_request', { message: "'input' is required", param: 'input' });
    }
    if (b.max_tokens !== undefined && b.max_tokens !== null && (!Number.isInteger(b.max_tokens) || (b.max_tokens as number) < 1)) {
      throw new GatewayError('invalid_request', { message: "'max_tokens' must be a positive integer", param: 'max_tokens' });
    }
    ctx.body = b;
    ctx.modelAlias = b.model;
    ctx.stream = ctx.endpoint !== 'embeddings' && b.stream === true;
    const so = b.stream_options as { include_usage?: unknown } | undefined;
    ctx.clientWantsUsage = !!so && so.include_usage === true;
  };
}
