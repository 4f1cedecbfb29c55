/**
 * One loaded local model, shared by all requests of a backend (gateway) or of the
 * standalone server: the model, one context with `parallel` sequences that decode
 * together (node-llama-cpp batches them: continuous batching), a bounded queue in front
 * of them, and an embedding context created on first use. Loads lazily on the first
 * request, or eagerly through load(). Nothing happens on import or construction.
 */
import { getLlama, LlamaChat, LlamaLogLevel, type ChatWrapper, type Llama, type LlamaContext, type LlamaContextSequence, type LlamaEmbeddingContext, type LlamaGrammar, type LlamaModel } from 'node-llama-cpp';
import { GatewayError } from '../gateway/errors.js';
import type { LocalMetrics } from './metrics.js';
import type { LocalBackendOptions } from './options.js';
import { createSlotPool, type Lease, type SlotPool } from './slot-pool.js';
import { installBatchBarrier, type BatchBarrier } from './batch-barrier.js';
import { ensureTinyModel } from './tiny-model.js';

export interface EngineStats {
  loaded: boolean;
  model: string;
  parallel: number;
  busy: number;
  queued: number;
}

export interface EmbeddingResult {
  vectors: Float32Array[];
  promptTokens: number;
}

export interface LoadedModel {
  readonly llama: Llama;
  readonly model: LlamaModel;
  readonly chatWrapper: ChatWrapper;
  /** The JSON grammar (response_format json_object), compiled once. */
  jsonGrammar(): Promise<LlamaGrammar>;
}

export interface LocalEngine {
  readonly options: LocalBackendOptions;
  /** Loads model and context (idempotent); the first request calls it too. */
  load(): Promise<LoadedModel>;
  /** Waits for a free sequence; rejects with QueueFullError when the queue is full, or the abort reason. */
  acquireSequence(signal: AbortSignal): Promise<Lease<LlamaContextSequence>>;
  embed(inputs: readonly string[], signal: AbortSignal): Promise<EmbeddingResult>;
  stats(): EngineStats;
  /** Records a finished generation in the metrics. */
  recordGeneration(completionTokens: number, firstTokenMs: number | undefined, endMs: number): void;
  observeFirstToken(seconds: number): void;
  close(): Promise<void>;
}

/** One Llama (native binding + compute backend) per process and GPU choice. */
const llamas = new Map<string, Promise<Llama>>();
function sharedLlama(gpu: 'auto' | false): Promise<Llama> {
  const key = String(gpu);
  let p = llamas.get(key);
  if (!p) {
    p = getLlama({ gpu, logLevel: LlamaLogLevel.warn });
    llamas.set(key, p);
    p.catch(() => llamas.delete(key));
  }
  return p;
}

interface Loaded extends LoadedModel {
  context: LlamaContext;
  pool: SlotPool<LlamaContextSequence>;
  barrier: BatchBarrier;
}

export function createLocalEngine(options: LocalBackendOptions, metrics?: { metrics: LocalMetrics; label: string }): LocalEngine {
  let loading: Promise<Loaded> | undefined;
  let loaded: Loaded | undefined;
  let embedding: Promise<{ ctx: LlamaEmbeddingContext; pool: SlotPool<LlamaEmbeddingContext> }> | undefined;
  let closed = false;

  const updateGauges = () => {
    if (!metrics || !loaded) return;
    metrics.metrics.busySequences.set({ backend: metrics.label }, loaded.pool.busy);
    metrics.metrics.queueDepth.set({ backend: metrics.label }, loaded.pool.queued);
  };

  async function doLoad(): Promise<Loaded> {
    const llama = await sharedLlama(options.gpu);
    const modelPath = options.modelPath ?? (await ensureTinyModel());
    const model = await llama.loadModel({ modelPath, gpuLayers: options.gpuLayers, defaultContextFlashAttention: options.flashAttention });
    const context = await model.createContext({
      contextSize: options.contextSize,
      sequences: options.parallel,
      threads: options.threads,
      batchSize: options.batchSize,
      flashAttention: options.flashAttention,
    });
    const sequences = Array.from({ length: options.parallel }, () => context.getSequence());
    const barrier = installBatchBarrier(context, options.batchWaitMs);
    // Resolve the chat wrapper once (from the GGUF's chat template), not per request.
    const probe = new LlamaChat({ contextSequence: sequences[0]! });
    const chatWrapper = probe.chatWrapper;
    probe.dispose({ disposeSequence: false });
    let grammar: Promise<LlamaGrammar> | undefined;
    const result: Loaded = {
      llama, model, chatWrapper, context,
      pool: createSlotPool(sequences, options.queueSize, updateGauges),
      barrier,
      jsonGrammar: () => (grammar ??= llama.getGrammarFor('json')),
    };
    if (closed) {
      await context.dispose();
      await model.dispose();
      throw new GatewayError('shutting_down');
    }
    loaded = result;
    updateGauges();
    return result;
  }

  /** A model that cannot load (missing file, not enough VRAM) answers 503; the cause goes to the log. */
  function load(): Promise<Loaded> {
    if (closed) return Promise.reject(new GatewayError('shutting_down'));
    loading ??= doLoad().catch((err: unknown) => {
      loading = undefined;
      if (err instanceof GatewayError) throw err;
      throw new GatewayError('backend_unavailable', { message: `The local model ${options.modelId} could not be loaded.`, detail: err });
    });
    return loading;
  }

  function embedder() {
    if (!options.embedding) {
      return Promise.reject(new GatewayError('invalid_request', { message: 'Embeddings are disabled for this model (embedding: false).', param: 'model' }));
    }
    embedding ??= load().then(async ({ model }) => {
      const ctx = await model.createEmbeddingContext({ contextSize: options.contextSize, threads: options.threads, batchSize: options.batchSize });
      return { ctx, pool: createSlotPool([ctx], options.queueSize) };
    });
    embedding.catch(() => { embedding = undefined; });
    return embedding;
  }

  return {
    options,
    load,
    async acquireSequence(signal) {
      const { pool, barrier } = await load();
      const lease = await pool.acquire(signal);
      // The generation on this sequence is over once its lease goes: the batch barrier
      // stops waiting for it.
      let released = false;
      return {
        item: lease.item,
        release() {
          if (released) return;
          released = true;
          barrier.idle(lease.item);
          lease.release();
        },
      };
    },
    async embed(inputs, signal) {
      const { ctx, pool } = await embedder();
      const lease = await pool.acquire(signal);
      try {
        const vectors: Float32Array[] = [];
        let promptTokens = 0;
        for (const input of inputs) {
          if (signal.aborted) throw signal.reason;
          if (input.length === 0) throw new GatewayError('invalid_request', { message: 'An input is an empty string; embeddings need some text.', param: 'input' });
          const length = ctx.calculateInputLength(input);
          // The whole context is not usable for one input (node-llama-cpp keeps a token back).
          if (length >= options.contextSize) {
            throw new GatewayError('context_length_exceeded', { message: `An input has ${length} tokens; the context window of this model is ${options.contextSize}.`, param: 'input' });
          }
          promptTokens += length;
          vectors.push(Float32Array.from((await ctx.getEmbeddingFor(input)).vector));
        }
        return { vectors, promptTokens };
      } finally {
        lease.release();
      }
    },
    stats() {
      return {
        loaded: loaded !== undefined,
        model: options.modelId,
        parallel: options.parallel,
        busy: loaded?.pool.busy ?? 0,
        queued: loaded?.pool.queued ?? 0,
      };
    },
    recordGeneration(completionTokens, firstTokenMs, endMs) {
      if (!metrics) return;
      const labels = { backend: metrics.label };
      metrics.metrics.tokensGenerated.inc(labels, completionTokens);
      if (firstTokenMs !== undefined && completionTokens > 1 && endMs > firstTokenMs) {
        metrics.metrics.tokensPerSecond.set(labels, ((completionTokens - 1) * 1000) / (endMs - firstTokenMs));
      }
    },
    observeFirstToken(seconds) {
      metrics?.metrics.timeToFirstToken.observe({ backend: metrics.label }, seconds);
    },
    async close() {
      closed = true;
      const l = await loading?.catch(() => undefined);
      const e = await embedding?.catch(() => undefined);
      await e?.ctx.dispose();
      if (l) {
        await l.context.dispose();
        await l.model.dispose();
      }
      loaded = undefined;
    },
  };
}
