/**
 * dispatch: sends the request to the chosen backend and relays the answer.
 * Tries ctx.candidates in order (fallbacks), each up to route.retries.attempts + 1
 * times on retryable failures (429, 5xx, connect errors, timeouts) — but only while
 * nothing has reached the client: once a stream's first byte is out, it is final.
 */
import { GatewayError, UpstreamHttpError } from '../../errors.js';
import type { RequestContext, Stage, Target } from '../context.js';
import type { GatewayDeps } from '../deps.js';
import type { UpstreamResponse } from '../../upstream/types.js';
import { classifyUpstreamError } from '../../upstream/classify-error.js';
import { relayStream } from './relay-stream.js';
import { responseHeaders } from '../respond.js';
import { estimateCompletionTokens, estimatePromptTokens } from '../estimate.js';

const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

async function readAll(res: UpstreamResponse): Promise<Buffer> {
  if (res.bytes) {
    const b = await res.bytes();
    if (b.byteLength > MAX_RESPONSE_BYTES) throw new GatewayError('upstream_bad_response', { message: 'The upstream response is too large.' });
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  }
  const body = res.body;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of body) {
    size += c.byteLength;
    if (size > MAX_RESPONSE_BYTES) throw new GatewayError('upstream_bad_response', { message: 'The upstream response is too large.' });
    chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  }
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
}

/** A failure before anything reached the client: the caller may retry or fall back. */
class AttemptFailure extends Error {
  constructor(
    readonly cause: unknown,
    readonly retryable: boolean,
    readonly retryAfterMs?: number,
  ) {
    super('attempt failed');
  }
}

function retryAfterMs(h: string | string[] | undefined): number | undefined {
  const v = Array.isArray(h) ? h[0] : h;
  if (!v) return undefined;
  const s = Number(v);
  if (Number.isFinite(s)) return Math.max(0, s * 1000);
  const d = Date.parse(v);
  return Number.isNaN(d) ? undefined : Math.max(0, d - Date.now());
}

export function createDispatchStage(deps: GatewayDeps): Stage {
  const { metrics } = deps;

  async function attempt(ctx: RequestContext, target: Target): Promise<void> {
    const name = target.backendName;
    const missing = deps.loaded.missingSecrets[name];
    if (missing) {
      throw new GatewayError('backend_not_configured', {
        message: `The backend '${name}' for model '${target.alias}' needs the environment variable ${missing}, which is not set.`,
      });
    }
    const client = deps.backends.get(name)!;
    const translator = deps.translators.get(name)!;
    const injectUsage = ctx.stream && !ctx.clientWantsUsage && target.backend.inject_stream_usage;
    const upReq = translator.buildRequest({
      endpoint: ctx.endpoint,
      body: ctx.body,
      rawBody: ctx.rawBody,
      bodyChanged: ctx.bodyChanged,
      upstreamModel: target.model.model,
      stream: ctx.stream,
      injectUsage,
      backend: target.backend,
      apiKey: target.backend.api_key,
    });
    upReq.headers['x-request-id'] = ctx.id;

    const t0 = process.hrtime.bigint();
    let upstream;
    try {
      upstream = await client.request(upReq, { signal: ctx.abort.signal, timeoutMs: ctx.route?.timeout_ms });
    } catch (err) {
      ctx.upstreamNs += process.hrtime.bigint() - t0;
      const c = classifyUpstreamError(err, ctx.abort.signal.aborted);
      metrics.upstreamErrors.labels(name, c.reason).inc();
      throw new AttemptFailure(c.error, c.retryable);
    }

    if (upstream.status >= 400) {
      let body: Buffer;
      try {
        body = await readAll(upstream);
      } catch (err) {
        body = Buffer.alloc(0);
        void err;
      }
      ctx.upstreamNs += process.hrtime.bigint() - t0;
      metrics.upstreamErrors.labels(name, `http_${upstream.status >= 500 ? '5xx' : upstream.status === 429 ? '429' : '4xx'}`).inc();
      const t = translator.translateError(upstream.status, body);
      const headers: Record<string, string> = {};
      const ra = upstream.headers['retry-after'];
      if (ra) headers['retry-after'] = Array.isArray(ra) ? ra[0] : ra;
      const retryable = upstream.status === 429 || upstream.status >= 500;
      throw new AttemptFailure(new UpstreamHttpError(t.status, t.body, headers), retryable, retryAfterMs(ra));
    }

    ctx.target = target;
    if (!ctx.stream) {
      let body: Buffer;
      try {
        body = await readAll(upstream);
      } catch (err) {
        ctx.upstreamNs += process.hrtime.bigint() - t0;
        const c = classifyUpstreamError(err, ctx.abort.signal.aborted);
        metrics.upstreamErrors.labels(name, c.reason).inc();
        throw new AttemptFailure(c.error, c.retryable);
      }
      ctx.upstreamNs += process.hrtime.bigint() - t0;
      const out = translator.translateResponse(ctx.endpoint, body, ctx.modelAlias);
      ctx.usage = out.usage ?? {
        prompt_tokens: estimatePromptTokens(ctx),
        completion_tokens: 0,
        total_tokens: estimatePromptTokens(ctx),
        estimated: true,
      };
      ctx.toolCalls = out.toolCalls;
      ctx.status = 200;
      ctx.locals.responseBody = out.body;
      ctx.firstByteNs = process.hrtime.bigint();
      ctx.res.send(200, responseHeaders(ctx, 'application/json'), out.body);
      return;
    }

    ctx.upstreamNs += process.hrtime.bigint() - t0;
    ctx.status = 200;
    ctx.res.writeHead(200, responseHeaders(ctx, 'text/event-stream'));
    const st = translator.createStreamTranslator(ctx.endpoint, {
      clientWantsUsage: ctx.clientWantsUsage,
      injectedUsage: injectUsage,
      clientModel: ctx.modelAlias,
      collectText: ctx.locals.collectStreamText === true,
    });
    const hooks = ctx.locals.streamHooks as Parameters<typeof relayStream>[3] | undefined;
    const result = await relayStream(ctx, upstream, st, hooks);
    ctx.streamOutcome = result.outcome;
    ctx.locals.streamState = st.state;
    ctx.toolCalls = st.state.toolCalls;
    if (result.outcome === 'interrupted') {
      const reason = result.error ? classifyUpstreamError(result.error, false).reason : 'no_done';
      metrics.streamInterruptions.labels(name, reason).inc();
      deps.logger.warn({ request_id: ctx.id, backend: name, reason }, 'upstream stream broke before its end');
    } else if (result.outcome === 'upstream_error') {
      metrics.streamInterruptions.labels(name, 'error_event').inc();
    }
    // Never bill a cut stream as zero: estimate what was generated when no usage came.
    ctx.usage = st.state.usage ?? {
      prompt_tokens: estimatePromptTokens(ctx),
      completion_tokens: estimateCompletionTokens(st.state.contentChars),
      total_tokens: estimatePromptTokens(ctx) + estimateCompletionTokens(st.state.contentChars),
      estimated: true,
    };
  }

  return async function dispatch(ctx: RequestContext) {
    const retries = ctx.route?.retries;
    let lastError: unknown;
    for (let c = 0; c < ctx.candidates.length; c++) {
      const target = ctx.candidates[c];
      if (c > 0) metrics.fallbacks.labels(ctx.candidates[c - 1].alias, target.alias).inc();
      const attempts = 1 + (retries?.attempts ?? 0);
      for (let a = 0; a < attempts; a++) {
        if (ctx.abort.signal.aborted) throw lastError ?? new GatewayError('backend_unavailable');
        try {
          await attempt(ctx, target);
          return;
        } catch (err) {
          if (!(err instanceof AttemptFailure)) throw err;
          lastError = err.cause;
          if (!err.retryable) throw err.cause;
          if (a + 1 < attempts) {
            metrics.retries.labels(target.backendName).inc();
            const base = retries?.backoff_ms ?? 100;
            const cap = retries?.max_backoff_ms ?? 5000;
            const backoff = Math.min(cap, base * 2 ** a) * Math.random();
            await sleep(Math.min(cap, Math.max(backoff, err.retryAfterMs ?? 0)), ctx.abort.signal);
          }
        }
      }
    }
    throw lastError ?? new GatewayError('backend_unavailable');
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
