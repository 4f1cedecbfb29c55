/**
 * Relays an upstream SSE stream to the client as it arrives: each upstream chunk is
 * parsed with a real SSE parser (eventsource-parser), passed event by event through
 * the provider's stream translator, and whatever it yields is written at once — no
 * whole-response buffering, backpressure honoured. A stream that ends without its
 * proper end gets an explicit SSE error event, never a clean-looking end.
 *
 * Also: the upstream's SSE comments (keep-alives such as `: ping` while a model thinks)
 * are relayed, so idle timeouts between here and the client do not cut a stream the
 * upstream keeps alive; the client's stream ends at the upstream's [DONE] even when the
 * upstream holds its connection open after it (the rest is discarded in the background);
 * an event the upstream leaves unterminated at its end is still delivered; and the
 * backend's key, should the upstream echo it, is masked in everything written.
 */
import { createParser } from 'eventsource-parser';
import { GatewayError, streamErrorEvent } from '../../errors.js';
import type { StreamTranslator } from '../../providers/types.js';
import type { UpstreamResponse } from '../../upstream/types.js';
import type { RequestContext } from '../context.js';
import { maskSecret } from '../mask-secret.js';

/**
 * The most an upstream may send as one SSE event (or one unterminated line): a whole
 * answer is capped at MAX_RESPONSE_BYTES, and a stream's events are as bounded, or an
 * upstream sending `data: ` and no newline grew the heap by its whole output.
 */
export const MAX_EVENT_CHARS = 16 * 1024 * 1024;

export interface RelayResult {
  outcome: 'complete' | 'interrupted' | 'client_aborted' | 'upstream_error' | 'shutdown';
  /** The error that broke the upstream body, if any. */
  error?: unknown;
  /**
   * With `holdIfEmpty`: the stream broke before anything was written to the client, and
   * the response was left open (no error event): the caller may retract the head and
   * retry, or end it with finishInterrupted().
   */
  held?: boolean;
}

export interface RelayHooks {
  /** Every piece of SSE text sent to the client (cache recording, coalescing followers). */
  onText?: (text: string) => void;
}

export async function relayStream(
  ctx: RequestContext,
  upstream: UpstreamResponse,
  translator: StreamTranslator,
  hooks: RelayHooks = {},
  secret?: string,
  holdIfEmpty = false,
): Promise<RelayResult> {
  let out = '';
  /** Anything written to the client (a retry is possible only before that). */
  let wrote = false;
  /** `out` holds more than comments: the first such write is the first byte (TTFT). */
  let outHasEvents = false;
  const parser = createParser({
    maxBufferSize: MAX_EVENT_CHARS,
    onError(err) {
      // Thrown out of feed() into the catch below: the stream ends with an error event.
      if (err.type === 'max-buffer-size-exceeded') throw new GatewayError('upstream_bad_response', { message: `An event of the upstream stream exceeded ${MAX_EVENT_CHARS} characters.` });
    },
    onEvent(ev) {
      const text = translator.push({ event: ev.event, data: ev.data });
      if (text === '') return;
      out += text;
      outHasEvents = true;
    },
    onComment(comment) {
      out += `: ${comment}\n\n`;
    },
  });
  const decoder = new TextDecoder();
  const it = upstream.body[Symbol.asyncIterator]();
  let error: unknown;
  try {
    for (;;) {
      const waitStart = process.hrtime.bigint();
      const next = await it.next();
      ctx.upstreamNs += process.hrtime.bigint() - waitStart;
      if (next.done) break;
      parser.feed(decoder.decode(next.value, { stream: true }));
      // Whatever else has already arrived goes out in the same client write.
      for (let more = upstream.readBuffered?.(); more !== undefined; more = upstream.readBuffered?.()) parser.feed(decoder.decode(more, { stream: true }));
      if (out !== '') {
        const text = maskSecret(out, secret);
        out = '';
        if (outHasEvents && ctx.firstByteNs === undefined) ctx.firstByteNs = process.hrtime.bigint();
        outHasEvents = false;
        hooks.onText?.(text);
        wrote = true;
        const drained = ctx.res.write(text);
        if (drained) {
          const t = process.hrtime.bigint();
          await drained;
          // Waiting for a slow client is not gateway overhead.
          ctx.upstreamNs += process.hrtime.bigint() - t;
        }
      }
      // A coalescing leader whose client left reads on for its followers (app.ts).
      if (ctx.res.aborted && ctx.locals.clientLeft !== true) break;
      if (translator.state.done) {
        // [DONE]: the answer is complete, whether or not the upstream closes now.
        if (upstream.finished !== true) void upstream.dump().catch(() => undefined);
        break;
      }
      if (translator.state.error) {
        // An error event ends the answer; an upstream that keeps the stream open after
        // it (pings) is not waited for.
        await it.return?.().catch(() => undefined);
        break;
      }
    }
    if (!translator.state.done && (!ctx.res.aborted || ctx.locals.clientLeft === true)) {
      // An event the upstream left unterminated at its end (e.g. a last line without its
      // blank line, or bare-CR line endings) is still an event.
      parser.feed(`${decoder.decode()}\n\n`);
      if (out !== '') {
        const text = maskSecret(out, secret);
        out = '';
        hooks.onText?.(text);
        wrote = true;
        ctx.res.write(text);
      }
    }
  } catch (err) {
    error = err;
    // Whatever broke (the upstream, or a translator on bad input), stop reading: the
    // connection is freed now rather than at the body timeout. A no-op when the upstream
    // itself failed.
    await it.return?.().catch(() => undefined);
  }
  if (ctx.res.aborted && (ctx.locals.clientLeft !== true || !translator.state.done)) {
    // Stop the upstream at once: nobody pays for tokens nobody reads.
    ctx.abort.abort();
    await it.return?.().catch(() => undefined);
    return { outcome: 'client_aborted', error };
  }
  if (translator.state.error) {
    ctx.res.end();
    return { outcome: 'upstream_error', error };
  }
  if (!translator.state.done) {
    if (holdIfEmpty && !wrote && ctx.locals.shutdown !== true) return { outcome: 'interrupted', error, held: true };
    return finishInterrupted(ctx, hooks, error);
  }
  ctx.res.end();
  return { outcome: 'complete' };
}

/** Ends a stream that broke before its end with an explicit error event (never a clean-looking end). */
export function finishInterrupted(ctx: RequestContext, hooks: RelayHooks, error: unknown): RelayResult {
  const ev = ctx.locals.shutdown === true ? streamErrorEvent('shutting_down', 'The gateway is shutting down; retry the request.') : streamErrorEvent('upstream_stream_interrupted');
  hooks.onText?.(ev);
  ctx.res.end(ev);
  return { outcome: ctx.locals.shutdown === true ? 'shutdown' : 'interrupted', error };
}
