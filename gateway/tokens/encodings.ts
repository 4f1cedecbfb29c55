/**
 * The exact OpenAI encodings, loaded lazily and once per process: each encoding module
 * costs ~100 ms and tens of MB to load, and a gateway that only serves local models
 * never needs one. gpt-tokenizer's encoding-specific entry points are required
 * synchronously (its CommonJS build) so counting stays a plain function call on the
 * hot path.
 */
import { createRequire } from 'node:module';

export type EncodingName = 'o200k' | 'cl100k';

/** Counts the tokens of one string. Special-token text in user input counts as ordinary text. */
export type CountText = (text: string) => number;

interface EncodingModule {
  countTokens(text: string, opts?: { disallowedSpecial?: Set<string> }): number;
}

const require = createRequire(import.meta.url);
const MODULES: Record<EncodingName, string> = {
  o200k: 'gpt-tokenizer/cjs/encoding/o200k_base',
  cl100k: 'gpt-tokenizer/cjs/encoding/cl100k_base',
};
const loaded = new Map<EncodingName, CountText>();
// Like tiktoken's encode_ordinary: "<|endoftext|>" typed by a user is text, not a control token.
const ORDINARY = { disallowedSpecial: new Set<string>() };

export function encodingCounter(name: EncodingName): CountText {
  let count = loaded.get(name);
  if (!count) {
    const mod = require(MODULES[name]) as EncodingModule;
    count = (text: string) => (text.length === 0 ? 0 : mod.countTokens(text, ORDINARY));
    loaded.set(name, count);
  }
  return count;
}

/**
 * Which encoding an upstream model name uses (https://github.com/openai/tiktoken,
 * model_to_encoding): o200k_base for gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o-series and
 * gpt-oss; cl100k_base for gpt-4, gpt-3.5 and the text-embedding models. Anything
 * else (Claude, Llama, Qwen...) has no exact encoding here: undefined.
 */
export function encodingForModel(model: string): EncodingName | undefined {
  const m = model.toLowerCase().replace(/^(openai|azure)\//, '');
  if (/^(gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|gpt-oss|o[1-9](-|$)|codex-)/.test(m)) return 'o200k';
  if (/^(gpt-4|gpt-3\.5|gpt-35|text-embedding-(3|ada))/.test(m)) return 'cl100k';
  return undefined;
}
