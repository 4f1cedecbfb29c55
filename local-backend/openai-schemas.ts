/**
 * The OpenAI request bodies the local backend understands, validated once per request.
 * Objects are loose: unknown fields (user, logprobs, metadata...) are accepted and
 * ignored, as OpenAI-compatible servers do; fields we cannot honour (n > 1, image parts)
 * are refused with a 400 naming the field.
 */
import { z } from 'zod';

const nullishNumber = (min: number, max: number) => z.number().min(min).max(max).nullish();
const positiveInt = z.number().int().positive().nullish();

const TextPart = z.looseObject({ type: z.literal('text'), text: z.string() });
const Content = z.union([z.string(), z.array(TextPart), z.null()]).optional();

const ToolCall = z.looseObject({
  id: z.string(),
  type: z.literal('function').optional(),
  function: z.looseObject({ name: z.string(), arguments: z.string() }),
});

export const MessageSchema = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: Content,
  tool_calls: z.array(ToolCall).nullish(),
  tool_call_id: z.string().optional(),
});

const JsonObject = z.record(z.string(), z.unknown());

const ToolSchema = z.looseObject({
  type: z.literal('function'),
  function: z.looseObject({
    name: z.string().min(1),
    description: z.string().optional(),
    parameters: JsonObject.optional(),
  }),
});

const Sampling = {
  model: z.string().optional(),
  stream: z.boolean().nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().nullish() }).nullish(),
  max_tokens: positiveInt,
  temperature: nullishNumber(0, 2),
  top_p: nullishNumber(0, 1),
  seed: z.number().int().nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).nullish(),
  n: z.literal(1).nullish(),
  // No log probabilities from this backend: asking for them is refused, not ignored.
  top_logprobs: z.literal(0).nullish(),
  frequency_penalty: nullishNumber(-2, 2),
  presence_penalty: nullishNumber(-2, 2),
};

export const ChatRequestSchema = z.looseObject({
  ...Sampling,
  messages: z.array(MessageSchema).min(1),
  logprobs: z.literal(false).nullish(),
  max_completion_tokens: positiveInt,
  response_format: z
    .looseObject({
      type: z.enum(['text', 'json_object', 'json_schema']),
      json_schema: z.looseObject({ schema: JsonObject.optional() }).optional(),
    })
    .nullish(),
  tools: z.array(ToolSchema).nullish(),
  tool_choice: z.union([z.enum(['none', 'auto', 'required']), z.looseObject({ type: z.literal('function') })]).nullish(),
});

export const CompletionRequestSchema = z.looseObject({
  ...Sampling,
  prompt: z.union([z.string(), z.array(z.string()).length(1)], { error: 'prompt must be a string (or an array of one string); token ids are not supported by this backend.' }),
  // What this backend cannot do is refused, never ignored: logprobs (0 asks for the
  // sampled tokens' own), a suffix (insertion), several candidates (best_of).
  logprobs: z.null().optional(),
  suffix: z.union([z.null(), z.literal('')]).optional(),
  best_of: z.literal(1).nullish(),
  echo: z.boolean().nullish(),
});

export const EmbeddingRequestSchema = z.looseObject({
  model: z.string().optional(),
  input: z.union([z.string(), z.array(z.string()).min(1)], { error: 'input must be a string or an array of strings; token ids are not supported by this backend.' }),
  encoding_format: z.enum(['float', 'base64']).nullish(),
  /** Only the model's own size: its vectors cannot be shortened (checked against the model). */
  dimensions: z.number().int().positive().nullish(),
});

export type ChatRequest = z.infer<typeof ChatRequestSchema>;
export type ChatMessage = z.infer<typeof MessageSchema>;
export type CompletionRequest = z.infer<typeof CompletionRequestSchema>;
export type EmbeddingRequest = z.infer<typeof EmbeddingRequestSchema>;
