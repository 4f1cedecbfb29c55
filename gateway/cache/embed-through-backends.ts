/**
 * The semantic cache's embedder: one /v1/embeddings call to the alias named by
 * cache.semantic.embedding_model, through the gateway's own backend clients and
 * translators (so a local model, OpenAI or any compatible server can embed).
 */
import { GatewayError } from '../errors.js';
import { cancellationFromSignal } from '../upstream/cancellation.js';
import type { GatewayDeps } from '../pipeline/deps.js';
import type { EmbedFn } from './parts.js';

const EMBED_TIMEOUT_MS = 5000;

export function createEmbedder(current: () => GatewayDeps): EmbedFn {
  return async (text: string) => {
    const deps = current();
    const alias = deps.config.cache.semantic.embedding_model;
    const model = deps.config.models[alias];
    if (!model) throw new GatewayError('model_not_found', { message: `cache.semantic.embedding_model '${alias}' is not a model alias.` });
    const backend = deps.config.backends[model.backend];
    const client = deps.backends.get(model.backend)!;
    const translator = deps.translators.get(model.backend)!;
    const body = { model: model.model, input: text };
    const req = translator.buildRequest({
      endpoint: 'embeddings',
      body,
      rawBody: Buffer.from(JSON.stringify(body)),
      bodyChanged: false,
      upstreamModel: model.model,
      stream: false,
      injectUsage: false,
      backend,
      apiKey: backend.api_key,
    });
    const res = await client.request(req, { cancel: cancellationFromSignal(AbortSignal.timeout(EMBED_TIMEOUT_MS)) });
    const chunks: Uint8Array[] = [];
    for await (const c of res.body) chunks.push(c);
    const textBody = Buffer.concat(chunks).toString('utf8');
    if (res.status >= 400) throw new GatewayError('upstream_bad_response', { message: `embedding call answered ${res.status}`, detail: textBody.slice(0, 200) });
    const parsed = JSON.parse(textBody) as { data?: Array<{ embedding?: number[] }> };
    const v = parsed.data?.[0]?.embedding;
    if (!Array.isArray(v)) throw new GatewayError('upstream_bad_response', { message: 'embedding response without data[0].embedding' });
    return v;
  };
}
