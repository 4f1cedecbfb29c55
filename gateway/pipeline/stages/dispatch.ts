/**
 * dispatch: sends the request to a backend and relays the answer.
 *
 * Tries ctx.candidates in order (picked target, other targets, fallbacks). On each:
 * circuit breaker (skip when open), admission (slot or bounded queue), then up to
 * route.retries.attempts retries on retryable failures (429, 5xx, connect errors,
 * timeouts) with full-jitter backoff or the upstream's Retry-After — a Retry-After
 * beyond max_backoff_ms moves on to the next candidate instead of waiting.
 * All of this only while nothing has reached the client: once a stream's first byte
 * is out, the answer is final.
 */
import { GatewayError, UpstreamHttpError } from '../../errors.js';
import type { RequestContext, Stage, Target } from '../context.js';
import type { GatewayDeps } from '../deps.js';
import { MAX_RESPONSE_BYTES, responseTooLarge, type UpstreamResponse } from '../../upstream/types.js';
import type { Usage } from '../../providers/types.js';
import { classifyUpstreamError } from '../../upstream/classify-error.js';
import { isBackendFailure, NORMAL_PERMIT } from '../../upstream/circuit-breaker.js';
import { isRetryableStatus, parseRetryAfter, relayableRetryAfter, retryAfterSeconds, retryDelayMs, sleep } from '../../upstream/retry.js';
import { redactCompletionBody, redactStreamTranslator } from '../../routing/redact-completions.js';
import { finishInterrupted, relayStream, type RelayHooks } from './relay-stream.js';
import { maskSecretIn } from '../mask-secret.js';
import { responseHeaders } from '../respond.js';
import { completionCharsOf, estimateCompletionTokens, estimatePromptTokens } from '../estimate.js';
import { completionAllowance } from '../../tokens/max-tokens.js';

async function readAll(res: UpstreamResponse): Promise<Buffer> {
  if (res.bytes) {
    const b = await res.bytes();
    if (b.byteLength > MAX_RESPONSE_BYTES) throw responseTooLarge();
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of res.body) {
    size += c.byteLength;
    if (size > MAX_RESPONSE_BYTES) throw responseTooLarge();
    chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  }
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
}

/**
 * A failure before anything reached the client. `retry`: the same target may be tried
 * again; `next`: move on to the next candidate; `fatal`: answer the client now.
 */
class AttemptFailure extends Error {
  constructor(
    readonly cause: unknown,
    readonly action: 'retry' | 'next' | 'fatal',
    readonly retryAfterMs?: number,
  ) {
    super('attempt failed');
  }
}

/**
 * Prompt tokens for the token-queue signal (the HPA's llm_token_queue_depth): the exact
 * count when a stage already made one, else bytes / 4 — tokenizing every prompt just
 * for a gauge would cost milliseconds on long prompts.
 */
function queueTokens(ctx: RequestContext): number {
  return ctx.promptTokensEstimate ?? Math.ceil(ctx.rawBody.length / 4);
}

/**
 * What a non-stream answer must look like to be relayed as one: a JSON object. Empty
 * bodies, HTML error pages, SSE for a non-stream request and compressed bytes are
 * not answers; they fail the attempt as upstream_bad_response (retryable: another
 * try or a fallback may answer properly).
 */
function notAnAnswer(upstream: UpstreamResponse, body: Uint8Array): string | undefined {
  let i = 0;
  while (i < body.length && (body[i] === 0x20 || body[i] === 0x0a || body[i] === 0x0d || body[i] === 0x09)) i++;
  // The hot path reads one byte: headers are only parsed to explain a refusal (compressed
  // bytes never start with '{').
  if (i < body.length && body[i] === 0x7b /* { */) return undefined;
  const enc = upstream.headers['content-encoding'];
  if (enc && enc !== 'identity') return `a body encoded as ${String(enc).slice(0, 40)}`;
  if (i === body.length) return 'an empty body';
  const type = String(upstream.headers['content-type'] ?? 'no content type').slice(0, 60);
  return `a body that is not a JSON object (${type})`;
}

/** A request cut because the gateway's shutdown grace period ran out. */
const shuttingDown = () => new GatewayError('shutting_down', { message: 'The gateway is shutting down; retry the request.', headers: { 'retry-after': '1' } });

const badResponse = (what: string) => new GatewayError('upstream_bad_response', { message: `The upstream backend sent ${what}.` });

/** Usage when the backend reported none (counted only then: tokenizing costs). */
function estimatedUsage(ctx: RequestContext, contentChars: number, uncountedEvents = 0): Usage {
  const prompt = estimatePromptTokens(ctx);
  const completion = estimateCompletionTokens(contentChars) + uncountedEvents;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, estimated: true };
}

/** Whether the request's prompt and completion allowance fit `target`'s context window (no window: yes). */
function fitsWindow(ctx: RequestContext, target: Target): boolean {
  const window = target.model.context_window;
  if (!window || ctx.endpoint === 'embeddings') return true;
  return estimatePromptTokens(ctx) + completionAllowance(ctx.endpoint, ctx.body, target.model, 0) <= window;
}

/** max_tokens the request may produce, for admission's token accounting. */
function maxTokens(ctx: RequestContext, target: Target): number {
  const b = ctx.body;
  const m = (b.max_completion_tokens ?? b.max_tokens) as number | undefined;
  return typeof m === 'number' ? m : (target.model.default_max_tokens ?? 0);
}

export function createDispatchStage(deps: GatewayDeps): Stage {
  const { metrics } = deps;

  async function attempt(ctx: RequestContext, target: Target): Promise<void> {
    const name = target.backendName;
    const missing = deps.loaded.missingSecrets[name];
    if (missing) {
      throw new AttemptFailure(
        new GatewayError('backend_not_configured', {
          message: `The backend '${name}' for model '${target.alias}' needs the environment variable ${missing}, which is not set.`,
        }),
        'next',
      );
    }
    const breaker = deps.breakers.get(name);
    const permit = breaker ? breaker.tryAcquire() : NORMAL_PERMIT;
    if (permit === false) {
      throw new AttemptFailure(new GatewayError('backend_unavailable', { message: `The backend '${name}' is unavailable (circuit open).`, headers: { 'retry-after': retryAfterSeconds(breaker!.retryInMs()) } }), 'next');
    }
    const outcome: { verdict: 'success' | 'failure' | 'none' } = { verdict: 'none' };
    const admission = deps.admissions.get(name);
    let ticket;
    try {
      if (admission) {
        try {
          ticket = await admission.acquire({ tokens: queueTokens(ctx) + maxTokens(ctx, target), cancel: ctx.abort });
        } catch (err) {
          throw new AttemptFailure(err, 'next');
        }
      }
      await send(ctx, target, (v) => (outcome.verdict = v));
    } finally {
      ticket?.release();
      if (breaker) {
        if (outcome.verdict === 'success') breaker.onSuccess(permit);
        else if (outcome.verdict === 'failure') breaker.onFailure(permit);
        else breaker.release(permit);
      }
    }
  }

  async function send(ctx: RequestContext, target: Target, setVerdict: (v: 'success' | 'failure') => void): Promise<void> {
    const name = target.backendName;
    const client = deps.backends.get(name)!;
    const translator = deps.translators.get(name)!;
    const injectUsage = ctx.stream && !ctx.clientWantsUsage && target.backend.inject_stream_usage;
    const upReq = translator.buildRequest({
      endpoint: ctx.endpoint,
      body: ctx.body,
      addedMaxTokens: ctx.locals.addedMaxTokens === true,
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
    /** A connect/reset/timeout before the answer was complete: counted, judged, maybe retried. */
    const networkFailure = (err: unknown): AttemptFailure => {
      ctx.upstreamNs += process.hrtime.bigint() - t0;
      if (ctx.locals.shutdown === true) return new AttemptFailure(shuttingDown(), 'fatal');
      if (err instanceof GatewayError && err.code === 'upstream_bad_response') {
        // Read whole but unusable (too large): the backend is up, and asking again brings the same.
        metrics.upstreamErrors.labels(name, 'bad_response').inc();
        setVerdict('success');
        return new AttemptFailure(err, 'next');
      }
      const c = classifyUpstreamError(err, ctx.abort.aborted);
      metrics.upstreamErrors.labels(name, c.reason).inc();
      if (c.reason !== 'aborted') setVerdict('failure');
      return new AttemptFailure(c.error, c.retryable ? 'retry' : 'fatal');
    };
    let upstream: UpstreamResponse;
    try {
      upstream = await client.request(upReq, { cancel: ctx.abort, timeoutMs: ctx.route?.timeout_ms, stream: ctx.stream });
    } catch (err) {
      throw networkFailure(err);
    }

    if (upstream.status < 200 || (upstream.status >= 300 && upstream.status < 400) || upstream.status > 599) {
      // A redirect (the gateway follows none: the base_url is wrong) or no HTTP status at all.
      void upstream.dump().catch(() => undefined);
      ctx.upstreamNs += process.hrtime.bigint() - t0;
      setVerdict(upstream.status > 599 ? 'failure' : 'success');
      metrics.upstreamErrors.labels(name, 'bad_response').inc();
      const location = upstream.headers.location;
      throw new AttemptFailure(
        badResponse(`HTTP status ${upstream.status}${location ? ' (a redirect: check the backend base_url)' : ''}`),
        upstream.status > 599 ? 'retry' : 'next',
      );
    }

    if (upstream.status >= 400) {
      let body: Buffer;
      try {
        body = await readAll(upstream);
      } catch {
        body = Buffer.alloc(0);
      }
      ctx.upstreamNs += process.hrtime.bigint() - t0;
      setVerdict(isBackendFailure(upstream.status) ? 'failure' : 'success');
      metrics.upstreamErrors.labels(name, upstream.status >= 500 ? 'http_5xx' : upstream.status === 429 ? 'http_429' : 'http_4xx').inc();
      const secret = target.backend.api_key;
      const t = translator.translateError(upstream.status, maskSecretIn(body, secret));
      const headers: Record<string, string> = {};
      const ra = relayableRetryAfter(upstream.headers);
      if (ra) headers['retry-after'] = ra;
      // Scrubbed again after translation: re-serialising can decode an escaped key.
      throw new AttemptFailure(new UpstreamHttpError(t.status, maskSecretIn(t.body, secret), headers), isRetryableStatus(upstream.status) ? 'retry' : 'fatal', parseRetryAfter(upstream.headers));
    }

    ctx.target = target;
    const redact = ctx.route?.filters?.pii?.completions === true;
    if (!ctx.stream) {
      let body: Buffer;
      try {
        body = await readAll(upstream);
      } catch (err) {
        throw networkFailure(err);
      }
      ctx.upstreamNs += process.hrtime.bigint() - t0;
      const bad = notAnAnswer(upstream, body);
      if (bad) {
        setVerdict('failure');
        metrics.upstreamErrors.labels(name, 'bad_response').inc();
        throw new AttemptFailure(badResponse(bad), 'retry');
      }
      setVerdict('success');
      const out = translator.translateResponse(ctx.endpoint, body, ctx.modelAlias);
      // Masked in what the client gets: translating can decode a key the upstream escaped.
      out.body = maskSecretIn(out.body, target.backend.api_key);
      if (redact) {
        const r = redactCompletionBody(out.body);
        if (r.count) metrics.contentFiltered.labels(ctx.route!.name, 'redact').inc();
        out.body = r.body;
      }
      // No usage reported: estimate from what was generated, never bill the answer as 0.
      ctx.usage = out.usage ?? estimatedUsage(ctx, completionCharsOf(out.body));
      ctx.toolCalls = out.toolCalls;
      ctx.status = 200;
      ctx.locals.responseBody = out.body;
      (ctx.locals.onResponseBody as ((b: string | Uint8Array) => void) | undefined)?.(out.body);
      ctx.firstByteNs = process.hrtime.bigint();
      ctx.res.send(200, responseHeaders(ctx, 'application/json'), out.body);
      return;
    }

    ctx.upstreamNs += process.hrtime.bigint() - t0;
    const header = (name: string) => (upstream.header ? upstream.header(name) : (upstream.headers[name] as string | undefined));
    const type = header('content-type') ?? '';
    const enc = header('content-encoding');
    if ((enc && enc !== 'identity') || (type !== '' && !type.startsWith('text/event-stream'))) {
      // Not a stream (a server that ignored stream: true, or compressed bytes), found out
      // before anything reached the client: another attempt or a fallback may do better.
      void upstream.dump().catch(() => undefined);
      setVerdict('failure');
      metrics.upstreamErrors.labels(name, 'bad_response').inc();
      throw new AttemptFailure(badResponse(enc && enc !== 'identity' ? `a stream encoded as ${String(enc).slice(0, 40)}` : `${type.slice(0, 60)} instead of an event stream`), 'retry');
    }
    setVerdict('success');
    ctx.status = 200;
    ctx.res.writeHead(200, responseHeaders(ctx, 'text/event-stream'));
    let st = translator.createStreamTranslator(ctx.endpoint, {
      clientWantsUsage: ctx.clientWantsUsage,
      injectedUsage: injectUsage,
      clientModel: ctx.modelAlias,
      collectText: ctx.locals.collectStreamText === true,
    });
    if (redact) st = redactStreamTranslator(st);
    const hooks = ctx.locals.streamHooks as RelayHooks | undefined;
    let result = await relayStream(ctx, upstream, st, hooks, target.backend.api_key, true);
    if (result.held) {
      // The stream broke before its first event and nothing reached the client: take the
      // head back and fail the attempt, so a retry or a fallback can still answer (or the
      // client gets a plain 502 instead of a 200 that carries only an error).
      if (ctx.res.retractHead()) {
        metrics.streamInterruptions.labels(name, result.error ? classifyUpstreamError(result.error, false).reason : 'no_done').inc();
        setVerdict('failure');
        ctx.status = 0;
        throw new AttemptFailure(new GatewayError('upstream_stream_interrupted', { message: 'The upstream stream broke before its first event.' }), 'retry');
      }
      result = finishInterrupted(ctx, hooks ?? {}, result.error);
    }
    ctx.streamOutcome = result.outcome;
    ctx.locals.streamState = st.state;
    ctx.toolCalls = st.state.toolCalls;
    // A stream the backend broke (reset, timeout, no end, an error event) is a failure of
    // the backend for its circuit breaker, even though its head said 200: a backend whose
    // streams always die must be taken out of rotation.
    if (result.outcome === 'interrupted' || result.outcome === 'upstream_error') setVerdict('failure');
    if (result.outcome === 'interrupted') {
      const reason = result.error ? classifyUpstreamError(result.error, false).reason : 'no_done';
      metrics.streamInterruptions.labels(name, reason).inc();
      deps.logger.warn({ request_id: ctx.id, backend: name, reason }, 'upstream stream broke before its end');
    } else if (result.outcome === 'upstream_error') {
      metrics.streamInterruptions.labels(name, 'error_event').inc();
    }
    // Never bill a cut stream as zero: estimate what was generated when no usage came.
    // A stream that did not end properly may carry only a provisional count (Anthropic's
    // message_start says output_tokens: 1): then bill the larger of it and the estimate.
    const reported = st.state.usage;
    if (!reported) ctx.usage = estimatedUsage(ctx, st.state.contentChars, st.state.uncountedEvents);
    else if (result.outcome === 'complete') ctx.usage = reported;
    else {
      const completion = Math.max(reported.completion_tokens, estimateCompletionTokens(st.state.contentChars) + (st.state.uncountedEvents ?? 0));
      ctx.usage = completion === reported.completion_tokens ? reported : { ...reported, completion_tokens: completion, total_tokens: reported.prompt_tokens + completion, estimated: true };
    }
  }

  return async function dispatch(ctx: RequestContext) {
    const policy = ctx.route?.retries;
    let lastError: unknown;
    for (let c = 0; c < ctx.candidates.length; c++) {
      const target = ctx.candidates[c];
      // A fallback with a smaller context window than the request needs would only answer
      // 400 (the request was fitted to the first target): skip it.
      if (c > 0 && !fitsWindow(ctx, target)) {
        lastError ??= new GatewayError('context_length_exceeded', { param: 'messages', message: `The request does not fit the context window of '${target.alias}' (${target.model.context_window} tokens).` });
        continue;
      }
      if (c > 0) {
        metrics.fallbacks.labels(ctx.candidates[c - 1].alias, target.alias).inc();
        ctx.responseHeaders['x-switchyard-fallback'] = target.alias;
      }
      const attempts = 1 + (policy?.attempts ?? 0);
      for (let a = 0; a < attempts; a++) {
        if (ctx.abort.aborted) {
          // Cut by the shutdown (a coalesced follower that fell through, say): a 503 to retry elsewhere.
          if (ctx.locals.shutdown === true) throw shuttingDown();
          throw lastError ?? new GatewayError('upstream_unreachable', { message: 'The client went away.' });
        }
        try {
          await attempt(ctx, target);
          return;
        } catch (err) {
          if (!(err instanceof AttemptFailure)) throw err;
          lastError = err.cause;
          if (err.action === 'fatal') throw err.cause;
          if (err.action === 'next' || a + 1 >= attempts || !policy) break;
          const delay = retryDelayMs(a, policy, err.retryAfterMs);
          if (delay === undefined) break; // the upstream asked for longer than we may wait: next candidate
          // Waiting to retry is not time spent in the gateway (nor on the upstream).
          const waitStart = process.hrtime.bigint();
          try {
            await sleep(delay, ctx.abort.signal);
          } catch {
            throw lastError;
          } finally {
            ctx.waitNs += process.hrtime.bigint() - waitStart;
          }
          // Counted once it happens: a client that left during the wait got no retry.
          metrics.retries.labels(target.backendName).inc();
        }
      }
    }
    throw lastError ?? new GatewayError('backend_unavailable');
  };
}
