/**
 * Keeps the sequences of one context decoding in step, so continuous batching stays
 * batched under sustained load.
 *
 * node-llama-cpp's batch loop (LlamaContext.dispatchPendingBatch) decodes whatever is
 * queued the moment a batch ends. The sequences of that batch are still sampling then
 * (one after the other on the main thread) and running their per-token JS, so the last of
 * them misses the next batch. Once requests have started at different moments, as they do
 * in service, the sequences split into groups that alternate for the rest of their
 * generations: measured at 4 streams, 48% of the batches held one token and 27% held three
 * (docs/local-backend.md). Each batch costs its set-up and native call whatever its size,
 * so on the demo model a quarter of the throughput went.
 *
 * The barrier sits in front of the context's decode queue. A sequence whose decode it let
 * through is "outstanding" until it asks for its next decode or its generation ends
 * (`idle`). A decode request waits while any sequence is outstanding, then every waiting
 * request enters node-llama-cpp's queue in one synchronous pass and is decoded as one
 * batch. A sequence that does not come back within `maxWaitMs` (busy in other work) stops
 * holding the others. One stream alone never waits: it is the only outstanding sequence.
 *
 * It wraps `LlamaContext._decodeTokens`, an internal method of node-llama-cpp (the version
 * is pinned in package.json). Without that method the barrier is not installed and the
 * context batches as before; test/local-backend-batching.test.ts fails so an upgrade
 * notices.
 */
import type { LlamaContext, LlamaContextSequence } from 'node-llama-cpp';

type DecodeTokens = (request: { sequenceId: number }, logitDataMapper: unknown) => Promise<unknown>;

interface Held {
  request: { sequenceId: number };
  logitDataMapper: unknown;
  resolve(value: unknown): void;
  reject(err: unknown): void;
  /** Its generation ended while it waited (idle): let it through without waiting for it again. */
  idle?: boolean;
}

export interface BatchBarrier {
  /** False when this node-llama-cpp has no `_decodeTokens` to wrap: nothing is held then. */
  readonly installed: boolean;
  /** The generation on `sequence` ended (or paused): do not wait for it. */
  idle(sequence: LlamaContextSequence): void;
}

/** How long the others wait for an outstanding sequence before going without it. */
export const DEFAULT_MAX_WAIT_MS = 1;

export function installBatchBarrier(context: LlamaContext, maxWaitMs = DEFAULT_MAX_WAIT_MS): BatchBarrier {
  const target = context as unknown as { _decodeTokens?: DecodeTokens };
  const original = target._decodeTokens;
  if (typeof original !== 'function') return { installed: false, idle() {} };

  /** Sequence ids let through and not yet back (a small set of ints: at most `parallel`). */
  const outstanding = new Set<number>();
  let held: Held[] = [];
  let timer: NodeJS.Timeout | undefined;

  const release = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const now = held;
    held = [];
    for (const h of now) {
      if (!h.idle) outstanding.add(h.request.sequenceId);
      original.call(context, h.request, h.logitDataMapper).then(h.resolve, h.reject);
    }
  };
  const giveUp = (): void => {
    timer = undefined;
    outstanding.clear();
    release();
  };

  target._decodeTokens = (request, logitDataMapper) => {
    outstanding.delete(request.sequenceId);
    if (outstanding.size === 0) {
      // The last one back (or a lone stream): it goes now, with everyone waiting, and
      // without a Promise of ours around it.
      if (held.length > 0) release();
      outstanding.add(request.sequenceId);
      return original.call(context, request, logitDataMapper);
    }
    return new Promise((resolve, reject) => {
      held.push({ request, logitDataMapper, resolve, reject });
      timer ??= setTimeout(giveUp, maxWaitMs);
    });
  };

  return {
    installed: true,
    idle(sequence) {
      const id = (sequence as unknown as { _sequenceId?: number })._sequenceId;
      if (id === undefined) return;
      // A decode of the ended generation may still be waiting here (aborted mid-wait).
      for (const h of held) if (h.request.sequenceId === id) h.idle = true;
      if (!outstanding.delete(id)) return;
      if (outstanding.size === 0 && held.length > 0) release();
    },
  };
}
