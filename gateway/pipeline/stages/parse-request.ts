/**
 * parseRequest: the client's JSON body → ctx.body, ctx.modelAlias, ctx.stream.
 * Answers 400 invalid_json / invalid_request (naming the param) for bad input.
 */
import { GatewayError } from '../../errors.js';
import type { RequestContext, Stage } from '../context.js';

/** No model id comes near this; a longer one would only end up in headers and log lines. */
export const MAX_MODEL_NAME = 512;

const TOKEN_LIMIT_PARAMS = ['max_tokens', 'max_completion_tokens'] as const;

/**
 * JSON.parse takes any depth, but every recursive walk after it (the cache key,
 * re-serialising a changed body, translators, filters) would overflow the stack on a
 * few thousand levels; no real request (tool schemas included) comes near this.
 */
export const MAX_NESTING = 128;

/** Iterative (no recursion to overflow); ~0.1 µs for a typical chat body. */
export function nestedDeeperThan(root: object, limit: number): boolean {
  const stack: unknown[] = [root];
  const depths: number[] = [0];
  while (stack.length > 0) {
    const v = stack.pop() as Record<string, unknown> | unknown[];
    const d = depths.pop()!;
    if (d >= limit) return true;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const c = v[i];
        if (c !== null && typeof c === 'object') {
          stack.push(c);
          depths.push(d + 1);
        }
      }
    } else {
      for (const k in v) {
        const c = v[k];
        if (c !== null && typeof c === 'object') {
          stack.push(c);
          depths.push(d + 1);
        }
      }
    }
  }
  return false;
}

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
    if (b.model.length > MAX_MODEL_NAME) {
      throw new GatewayError('invalid_request', { message: `'model' is longer than ${MAX_MODEL_NAME} characters`, param: 'model' });
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
    for (const param of TOKEN_LIMIT_PARAMS) {
      const v = b[param];
      if (v !== undefined && v !== null && (!Number.isSafeInteger(v) || (v as number) < 1)) {
        throw new GatewayError('invalid_request', { message: `'${param}' must be a positive integer`, param });
      }
    }
    if (nestedDeeperThan(b, MAX_NESTING)) {
      throw new GatewayError('invalid_request', { message: `The request body is nested more than ${MAX_NESTING} levels deep.` });
    }
    ctx.body = b;
    ctx.modelAlias = b.model;
    ctx.stream = ctx.endpoint !== 'embeddings' && b.stream === true;
    const so = b.stream_options as { include_usage?: unknown } | undefined;
    ctx.clientWantsUsage = !!so && so.include_usage === true;
  };
}
