/**
 * One generation on one leased context sequence: chat (through the model's chat wrapper)
 * or raw text completion. Called per request by the engine while the request holds the
 * sequence. Token counts are exact, from the model's own tokenizer; the client's
 * AbortSignal stops generation at the next token (node-llama-cpp's stopOnAbortSignal).
 */
import { randomInt } from 'node:crypto';
import { LlamaChat, LlamaCompletion, type ChatHistoryItem, type ChatModelFunctions, type ChatWrapper, type LlamaContextSequence, type LlamaGrammar, type Token } from 'node-llama-cpp';
import { GatewayError } from '../gateway/errors.js';

export interface SamplingParams {
  /** Absent → until the context window is full. */
  maxTokens?: number;
  temperature: number;
  topP?: number;
  seed?: number;
  stop: readonly string[];
  frequencyPenalty?: number;
  presencePenalty?: number;
  grammar?: LlamaGrammar;
}

export interface GenerateHooks {
  signal: AbortSignal;
  /** Each piece of generated text, in order (streaming). */
  onText?: (text: string) => void;
  /** Called once, when the first token was generated. */
  onFirstToken?: () => void;
}

export type FinishReason = 'stop' | 'length' | 'tool_calls';

export interface ToolCallResult {
  name: string;
  /** JSON text, as OpenAI sends `function.arguments`. */
  arguments: string;
}

export interface GenerationResult {
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  toolCalls: ToolCallResult[];
}

function commonOptions(params: SamplingParams, hooks: GenerateHooks, maxTokens: number, countTokens: (t: Token[]) => void) {
  const penalize = params.frequencyPenalty !== undefined || params.presencePenalty !== undefined;
  return {
    signal: hooks.signal,
    stopOnAbortSignal: true,
    maxTokens,
    temperature: params.temperature,
    topP: params.topP,
    // No seed (or a negative one, llama.cpp's "random"): a random one per request.
    // Left undefined, node-llama-cpp seeds with the current second, so every request of
    // that second (on every replica) sampled the same text.
    seed: params.seed !== undefined && params.seed >= 0 ? params.seed : randomInt(0, 2 ** 31),
    // OpenAI has no repeat penalty by default; node-llama-cpp enables one unless told not to.
    repeatPenalty: penalize ? { penalty: 1, frequencyPenalty: params.frequencyPenalty, presencePenalty: params.presencePenalty } : (false as const),
    customStopTriggers: params.stop.length ? params.stop : undefined,
    onTextChunk: hooks.onText,
    onToken: countTokens,
  };
}

function resolveMaxTokens(params: SamplingParams, promptTokens: number, contextSize: number, param: 'messages' | 'prompt' = 'messages'): number {
  if (promptTokens >= contextSize) {
    throw new GatewayError('context_length_exceeded', { message: `The prompt has ${promptTokens} tokens; the context window of this model is ${contextSize}.`, param });
  }
  // Generation stops where the window ends (finish_reason length), whatever max_tokens
  // says: node-llama-cpp's context shift cannot shrink a chat prompt, and failed with a 500.
  return Math.min(params.maxTokens ?? Infinity, contextSize - promptTokens);
}

function tokenCounter(hooks: GenerateHooks) {
  const state = { count: 0 };
  const onTokens = (tokens: Token[]) => {
    if (state.count === 0 && tokens.length > 0) hooks.onFirstToken?.();
    state.count += tokens.length;
  };
  return { state, onTokens };
}

export async function generateChat(
  sequence: LlamaContextSequence,
  chatWrapper: ChatWrapper,
  history: ChatHistoryItem[],
  functions: ChatModelFunctions | undefined,
  params: SamplingParams,
  hooks: GenerateHooks,
): Promise<GenerationResult> {
  const model = sequence.model;
  const rendered = chatWrapper.generateContextState({ chatHistory: history, availableFunctions: functions });
  const promptTokens = rendered.contextText.tokenize(model.tokenizer).length;
  const maxTokens = resolveMaxTokens(params, promptTokens, sequence.contextSize);
  const counter = tokenCounter(hooks);
  const before = sequence.tokenMeter.usedOutputTokens;
  const chat = new LlamaChat({ contextSequence: sequence, chatWrapper });
  try {
    const common = commonOptions(params, hooks, maxTokens, counter.onTokens);
    const res = functions
      ? await chat.generateResponse(history, { ...common, functions })
      : await chat.generateResponse(history, { ...common, grammar: params.grammar });
    const toolCalls = (res.functionCalls ?? []).map((c) => ({ name: c.functionName, arguments: JSON.stringify(c.params ?? {}) }));
    const stop = res.metadata.stopReason;
    return {
      text: res.response,
      finishReason: toolCalls.length ? 'tool_calls' : stop === 'maxTokens' ? 'length' : 'stop',
      promptTokens,
      // Tokens held back and dropped by a stop trigger were still generated: count from the meter.
      completionTokens: Math.max(counter.state.count, sequence.tokenMeter.usedOutputTokens - before),
      toolCalls,
    };
  } finally {
    chat.dispose({ disposeSequence: false });
  }
}

export async function generateCompletion(
  sequence: LlamaContextSequence,
  prompt: string,
  params: SamplingParams,
  hooks: GenerateHooks,
): Promise<GenerationResult> {
  const model = sequence.model;
  const bos = model.tokens.shouldPrependBosToken && model.tokens.bos !== null ? 1 : 0;
  const promptTokens = model.tokenize(prompt).length + bos;
  const maxTokens = resolveMaxTokens(params, promptTokens, sequence.contextSize, 'prompt');
  const counter = tokenCounter(hooks);
  const before = sequence.tokenMeter.usedOutputTokens;
  const completion = new LlamaCompletion({ contextSequence: sequence });
  try {
    const res = await completion.generateCompletionWithMeta(prompt, { ...commonOptions(params, hooks, maxTokens, counter.onTokens), grammar: params.grammar });
    return {
      text: res.response,
      finishReason: res.metadata.stopReason === 'maxTokens' ? 'length' : 'stop',
      promptTokens,
      completionTokens: Math.max(counter.state.count, sequence.tokenMeter.usedOutputTokens - before),
      toolCalls: [],
    };
  } finally {
    completion.dispose({ disposeSequence: false });
  }
}
