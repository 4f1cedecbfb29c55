/**
 * Relays an upstream SSE stream to the client as it arrives: each upstream chunk is
 * parsed with a real SSE parser (eventsource-parser), passed event by event through
 * the provider's stream translator, and whatever it yields is written at once — no
 * whole-response buffering, backpressure honoured. A stream that ends without its
 * proper end gets an explicit SSE error event, never a clean-looking end.
 */
import { createParser } from 'eventsource-parser';
import { streamErrorEvent } from '../../errors.js';
import type { StreamTranslator } from '../../providers/types.js';
import type { UpstreamResponse } from '../../upstream/types.js';
import type { RequestContext } from '../context.js';

export interface RelayResult {
  outcome: 'complete' | 'interrupted' | 'client_aborted' | 'upstream_error';
  /** The error that broke the upstream body, if any. */
  error?: unknown;
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
): Promise<RelayResult> {
  let out = '';
  const parser = createParser({
    onEvent(ev) {
      out += translator.push({ event: ev.event, data: ev.data });
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
        const text = out;
        out = '';
        if (ctx.firstByteNs === undefined) ctx.firstByteNs = process.hrtime.bigint();
        hooks.onText?.(text);
        const drained = ctx.res.write(text);
        if (drained) {
          const t = process.hrtime.bigint();
          await drained;
          // Waiting for a slow client is not gateway overhead.
          ctx.upstreamNs += process.hrtime.bigint() - t;
        }
      }
      if (ctx.res.aborted) break;
    }
  } catch (err) {
    error = err;
    // Whatever broke (the upstream, or a translator on bad input), stop reading: the
    // connection is freed now rather than at the body timeout. A no-op when the upstream
    // itself failed.
    await it.return?.().catch(() => undefined);
  }
  if (ctx.res.aborted) {
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
    const ev = streamErrorEvent('upstream_stream_interrupted');
    hooks.onText?.(ev);
    ctx.res.end(ev);
    return { outcome: 'interrupted', error };
  }
  ctx.res.end();
  return { outcome: 'complete' };
}
