/**
 * The rule-based complexity classifier behind complexity routing (`auto`). Built once
 * per config from the `complexity:` section; called per request on routes that have a
 * `complexity:` block. Cheap by design: a few regex tests over the last user message
 * and numbers the pipeline already has.
 *
 * Every rule proposes a minimum class; the request gets the highest proposed class,
 * and `rule` names the first rule (in the order below) that proposed it:
 *   keyword:<kw>          a reasoning keyword in the last user message   → reasoning
 *   prompt_tokens>=N      thresholds.complex_min_tokens                   → complex
 *   keyword:<kw>          a complex keyword in the last user message      → complex
 *   turns>=N              thresholds.long_conversation_turns (user+assistant messages) → complex
 *   tools                 the request offers tools                        → tools_min_class
 *   code                  a fenced code block in the last user message    → code_min_class
 *   prompt_tokens<=N      thresholds.simple_max_tokens                    → simple
 *   default                                                               → medium
 */
import type { z } from 'zod';
import type { ComplexitySchema } from '../config/schema.js';
import { compileKeywords } from './keywords.js';

export type ComplexityConfig = z.infer<typeof ComplexitySchema>;
export type ComplexityClass = 'simple' | 'medium' | 'complex' | 'reasoning';

export const COMPLEXITY_CLASSES: readonly ComplexityClass[] = ['simple', 'medium', 'complex', 'reasoning'];

export interface Classification {
  class: ComplexityClass;
  rule: string;
}

export interface ClassifierInput {
  /** The text the keyword and code rules look at (the last user message). */
  text: string;
  /** User and assistant messages in the conversation. */
  turns: number;
  promptTokens: number;
  hasTools: boolean;
}

export type Classifier = (input: ClassifierInput) => Classification;

const rank = (c: ComplexityClass): number => COMPLEXITY_CLASSES.indexOf(c);
/**
 * A fenced code block (``` or ~~~), the signal that the user is working on code. The
 * indentation is horizontal whitespace only: `\s*` also took newlines, so every newline
 * rescanned the rest of the text (40,000 newlines took 3.9 s).
 */
const CODE_FENCE = /(?:^|\n)[^\S\n]*(?:```|~~~)/;

export function createClassifier(cfg: ComplexityConfig): Classifier {
  const reasoning = compileKeywords(cfg.keywords.reasoning);
  const complex = compileKeywords(cfg.keywords.complex);
  const t = cfg.thresholds;
  return (input) => {
    let best: Classification = input.promptTokens <= t.simple_max_tokens
      ? { class: 'simple', rule: `prompt_tokens<=${t.simple_max_tokens}` }
      : { class: 'medium', rule: 'default' };
    // Evaluated from the weakest proposal to the strongest; >= lets an earlier-listed rule win ties.
    const propose = (cls: ComplexityClass, rule: string) => {
      if (rank(cls) >= rank(best.class)) best = { class: cls, rule };
    };
    if (CODE_FENCE.test(input.text)) propose(cfg.code_min_class, 'code');
    if (input.hasTools) propose(cfg.tools_min_class, 'tools');
    if (input.turns >= t.long_conversation_turns) propose('complex', `turns>=${t.long_conversation_turns}`);
    const c = complex?.exec(input.text);
    if (c) propose('complex', `keyword:${c[0].toLowerCase()}`);
    if (input.promptTokens >= t.complex_min_tokens) propose('complex', `prompt_tokens>=${t.complex_min_tokens}`);
    const r = reasoning?.exec(input.text);
    if (r) propose('reasoning', `keyword:${r[0].toLowerCase()}`);
    return best;
  };
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let s = '';
  for (const p of content) {
    if (p && typeof p === 'object' && (p as { type?: unknown }).type === 'text') {
      const text = (p as { text?: unknown }).text;
      if (typeof text === 'string') s += (s ? '\n' : '') + text;
    }
  }
  return s;
}

/** Extracts the classifier's text and turn count from an OpenAI chat or completions body. */
export function classifierText(body: Record<string, unknown>): { text: string; turns: number } {
  const messages = body.messages;
  if (Array.isArray(messages)) {
    let turns = 0;
    let text = '';
    for (const m of messages) {
      const role = (m as { role?: unknown })?.role;
      if (role === 'user' || role === 'assistant') turns++;
      if (role === 'user') text = textOf((m as { content?: unknown }).content);
    }
    return { text, turns };
  }
  const prompt = body.prompt;
  if (typeof prompt === 'string') return { text: prompt, turns: 1 };
  if (Array.isArray(prompt)) return { text: prompt.filter((p) => typeof p === 'string').join('\n'), turns: 1 };
  return { text: '', turns: 0 };
}
