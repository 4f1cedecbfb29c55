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

/**
 * BPE merges one pre-token in time quadratic in its length, and a run of letters (or of
 * punctuation) with no whitespace is one pre-token: 150,000 'a's took 12 s, 640,000 took
 * minutes, with the event loop blocked throughout. So is a run of whitespace (spaces,
 * tabs, newlines: 80,000 spaces took 5.4 s). Runs of either longer than RUN_CHARS are
 * counted in RUN_CHARS slices (a slice boundary can move a count by a token; such runs are
 * rare in real text), so the work is linear.
 */
const RUN_CHARS = 256;
const LONG_RUN = new RegExp(`\\S{${RUN_CHARS + 1},}|\\s{${RUN_CHARS + 1},}`);
const LONG_RUNS = new RegExp(LONG_RUN.source, 'g');
/**
 * Beyond this many characters (~250k tokens, more than any context window) the rest is
 * extrapolated from the exact count of the first EXACT_CHARS: a 10 MiB body must not
 * cost seconds of BPE just to be refused as too long.
 */
const EXACT_CHARS = 1 << 20;

/**
 * How to count `text` in linear time with a tokenizer that is quadratic in a pre-token's
 * length: the pieces to tokenize (long runs sliced), and the factor their summed count is
 * scaled by (texts past EXACT_CHARS are extrapolated from their first EXACT_CHARS). Used
 * by the tiktoken counters here and for backends' own tokenizers (request-tokens.ts).
 */
export function countingPlan(text: string): { pieces: string[]; scale: number } {
  if (text.length > EXACT_CHARS) return { pieces: countingPlan(text.slice(0, EXACT_CHARS)).pieces, scale: text.length / EXACT_CHARS };
  if (!LONG_RUN.test(text)) return { pieces: [text], scale: 1 };
  const pieces: string[] = [];
  let last = 0;
  for (const m of text.matchAll(LONG_RUNS)) {
    if (m.index > last) pieces.push(text.slice(last, m.index));
    for (let i = 0; i < m[0].length; i += RUN_CHARS) pieces.push(m[0].slice(i, i + RUN_CHARS));
    last = m.index + m[0].length;
  }
  if (last < text.length) pieces.push(text.slice(last));
  return { pieces, scale: 1 };
}

/** Characters a request's texts are counted exactly for, all texts together (request-tokens.ts). */
export const EXACT_REQUEST_CHARS = EXACT_CHARS;

function boundedCounter(countTokens: (text: string) => number): CountText {
  return (text: string): number => {
    if (text.length === 0) return 0;
    // The common case, without a plan object.
    if (text.length <= EXACT_CHARS && !LONG_RUN.test(text)) return countTokens(text);
    const plan = countingPlan(text);
    let total = 0;
    for (const piece of plan.pieces) total += countTokens(piece);
    return Math.ceil(total * plan.scale);
  };
}

export function encodingCounter(name: EncodingName): CountText {
  let count = loaded.get(name);
  if (!count) {
    const mod = require(MODULES[name]) as EncodingModule;
    count = boundedCounter((text) => mod.countTokens(text, ORDINARY));
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
