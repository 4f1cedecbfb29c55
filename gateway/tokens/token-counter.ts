/**
 * Prompt-token counting for admission (rate limits, budgets, context fitting).
 * One TokenCounter per config generation, created by main.ts; per request, stages
 * call countPrompt once and keep the result in ctx.promptTokensEstimate.
 * A model's `tokenizer` picks the counter: o200k / cl100k are exact OpenAI encodings,
 * `estimate` is config.token_estimator, `auto` picks an encoding from the upstream
 * model name and falls back to the estimator. Actual usage reported by the upstream
 * always replaces these figures at reconciliation.
 */
import type { ModelConfig } from '../config/schema.js';
import type { Endpoint } from '../providers/types.js';
import { countChat, type ChatTokenCount } from './chat-tokens.js';
import { encodingCounter, encodingForModel, type CountText } from './encodings.js';
import { createEstimator, type EstimatorConfig } from './estimate.js';

export type { ChatTokenCount } from './chat-tokens.js';

export interface TokenCounter {
  /**
   * Prompt tokens of a request body for a model (chat, completions or embeddings).
   * `count` overrides the model's text counter (a backend's own tokenizer, see request-tokens.ts).
   */
  countPrompt(endpoint: Endpoint, body: Record<string, unknown>, model: ModelConfig, count?: CountText): number;
  /** Per-message split of a chat prompt (context trimming drops whole messages). */
  countChat(body: Record<string, unknown>, model: ModelConfig, count?: CountText): ChatTokenCount;
  /** The text counter a model uses. */
  textCounter(model: Pick<ModelConfig, 'tokenizer' | 'model'>): CountText;
}

/** Text, token-id arrays, or arrays of either (completions `prompt`, embeddings `input`). */
function countInput(input: unknown, count: CountText): number {
  if (typeof input === 'string') return count(input);
  if (!Array.isArray(input)) return 0;
  if (input.every((x) => typeof x === 'number')) return input.length;
  let n = 0;
  for (const x of input) n += countInput(x, count);
  return n;
}

export function createTokenCounter(config: { token_estimator: EstimatorConfig }): TokenCounter {
  const estimate = createEstimator(config.token_estimator);

  const textCounter = (model: Pick<ModelConfig, 'tokenizer' | 'model'>): CountText => {
    switch (model.tokenizer) {
      case 'o200k':
      case 'cl100k':
        return encodingCounter(model.tokenizer);
      case 'estimate':
        return estimate;
      default: {
        const enc = encodingForModel(model.model);
        return enc ? encodingCounter(enc) : estimate;
      }
    }
  };

  const chat = (body: Record<string, unknown>, model: ModelConfig, count?: CountText) => countChat(body, count ?? textCounter(model));

  return {
    textCounter,
    countChat: chat,
    countPrompt(endpoint, body, model, override) {
      const count = override ?? textCounter(model);
      if (endpoint === 'chat') {
        const c = countChat(body, count);
        let n = c.fixed;
        for (const m of c.perMessage) n += m;
        return n;
      }
      if (endpoint === 'completions') return countInput(body.prompt, count);
      return countInput(body.input, count);
    },
  };
}
