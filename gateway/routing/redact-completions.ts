/**
 * Completion-side PII redaction (routes[].filters.pii.completions: true), for the
 * dispatcher to apply to what the backend generated before it reaches the client:
 *
 *   non-stream: body = redactCompletionBody(out.body)
 *   stream:     st = redactStreamTranslator(st)   (wraps any provider's StreamTranslator)
 *
 * The stream wrapper reads the OpenAI-shaped SSE text the inner translator produced,
 * runs content deltas through a StreamRedactor (which holds back only the tail that may
 * still grow into a match) and releases the held-back rest just before the chunk that
 * carries finish_reason, the usage chunk, [DONE] or an error event. Chunks whose
 * content is entirely held back are not sent. state.text, when collected, is the
 * redacted text (so a cache never stores what the client was not shown).
 */
import type { SseEvent, StreamTranslator } from '../providers/types.js';
import { createStreamRedactor, redactText } from './pii.js';

interface Choice {
  index?: number;
  text?: unknown;
  delta?: Record<string, unknown>;
  message?: { content?: unknown };
  finish_reason?: unknown;
}

interface Chunk {
  choices?: Choice[];
  [k: string]: unknown;
}

/** Redacts message content (chat) and text (legacy completions) of a complete response body. */
export function redactCompletionBody(body: string | Uint8Array): { body: string | Uint8Array; count: number } {
  const text = typeof body === 'string' ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  let parsed: Chunk;
  try {
    parsed = JSON.parse(text) as Chunk;
  } catch {
    return { body, count: 0 };
  }
  let count = 0;
  for (const c of parsed.choices ?? []) {
    if (c.message && typeof c.message.content === 'string') {
      const r = redactText(c.message.content);
      count += r.count;
      c.message.content = r.text;
    }
    if (typeof c.text === 'string') {
      const r = redactText(c.text);
      count += r.count;
      c.text = r.text;
    }
  }
  return count ? { body: JSON.stringify(parsed), count } : { body, count: 0 };
}

export function redactStreamTranslator(inner: StreamTranslator): StreamTranslator & { readonly redactions: number } {
  /** One redactor per choice index: with n > 1 the choices' deltas interleave. */
  const perChoice = new Map<number, { redactor: ReturnType<typeof createStreamRedactor>; template: Chunk; legacy: boolean }>();
  const collecting = inner.state.text !== undefined;
  let redactedText = '';
  let redactions = 0;

  /** A chunk carrying the held-back rest of one choice, or '' when nothing is held. */
  function flushChoice(index: number): string {
    const c = perChoice.get(index);
    if (!c) return '';
    const rest = c.redactor.flush();
    redactions += c.redactor.count;
    perChoice.delete(index);
    if (rest === '') return '';
    redactedText += rest;
    const choice = c.legacy ? { index, text: rest, logprobs: null, finish_reason: null } : { index, delta: { content: rest }, logprobs: null, finish_reason: null };
    return `data: ${JSON.stringify({ ...c.template, choices: [choice] })}\n\n`;
  }

  function flushAll(): string {
    let out = '';
    for (const index of [...perChoice.keys()].sort((a, b) => a - b)) out += flushChoice(index);
    return out;
  }

  function rewrite(event: string): string {
    if (!event.startsWith('data: ')) return `${event}\n\n`;
    const data = event.slice(6);
    if (data === '[DONE]') return flushAll() + `${event}\n\n`;
    let chunk: Chunk;
    try {
      chunk = JSON.parse(data) as Chunk;
    } catch {
      return `${event}\n\n`;
    }
    if (!chunk.choices?.length) return flushAll() + `${event}\n\n`; // usage chunk or error event
    let prefix = '';
    const kept: Choice[] = [];
    for (const choice of chunk.choices) {
      const index = typeof choice.index === 'number' ? choice.index : 0;
      const isLegacy = typeof choice.text === 'string';
      const content = isLegacy ? (choice.text as string) : choice.delta?.content;
      if (typeof content === 'string' && content !== '') {
        let c = perChoice.get(index);
        if (!c) perChoice.set(index, (c = { redactor: createStreamRedactor(), template: { ...chunk, choices: undefined }, legacy: isLegacy }));
        const safe = c.redactor.push(content);
        redactedText += safe;
        if (isLegacy) choice.text = safe;
        else choice.delta!.content = safe;
        const hasMore = choice.finish_reason != null || (!isLegacy && Object.keys(choice.delta!).some((k) => k !== 'content'));
        if (safe === '' && !hasMore) continue; // entirely held back: this choice is not sent now
      }
      // Its end: the held-back rest goes first, in a chunk of its own.
      if (choice.finish_reason != null) prefix += flushChoice(index);
      kept.push(choice);
    }
    if (kept.length === 0) return prefix;
    chunk.choices = kept;
    return `${prefix}data: ${JSON.stringify(chunk)}\n\n`;
  }

  return {
    push(event: SseEvent): string {
      const out = inner.push(event);
      if (out === '') return out;
      let result = '';
      for (const ev of out.split('\n\n')) if (ev !== '') result += rewrite(ev);
      if (collecting) inner.state.text = redactedText;
      return result;
    },
    get state() {
      return inner.state;
    },
    get redactions() {
      let live = 0;
      for (const c of perChoice.values()) live += c.redactor.count;
      return redactions + live;
    },
  };
}
