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
  const redactor = createStreamRedactor();
  const collecting = inner.state.text !== undefined;
  let redactedText = '';
  /** The last content chunk seen, as a template for the chunk that carries the flushed rest. */
  let template: Chunk | undefined;
  let legacy = false;

  function flushChunk(): string {
    const rest = redactor.flush();
    if (rest === '' || !template) return '';
    redactedText += rest;
    const choice = legacy ? { index: 0, text: rest, logprobs: null, finish_reason: null } : { index: 0, delta: { content: rest }, logprobs: null, finish_reason: null };
    return `data: ${JSON.stringify({ ...template, choices: [choice] })}\n\n`;
  }

  function rewrite(event: string): string {
    if (!event.startsWith('data: ')) return `${event}\n\n`;
    const data = event.slice(6);
    if (data === '[DONE]') return flushChunk() + `${event}\n\n`;
    let chunk: Chunk;
    try {
      chunk = JSON.parse(data) as Chunk;
    } catch {
      return `${event}\n\n`;
    }
    const choice = chunk.choices?.[0];
    if (!choice) return flushChunk() + `${event}\n\n`; // usage chunk or error event
    const isLegacy = typeof choice.text === 'string';
    const content = isLegacy ? (choice.text as string) : choice.delta?.content;
    let prefix = '';
    if (typeof content === 'string' && content !== '') {
      legacy = isLegacy;
      template = { ...chunk, choices: undefined };
      const safe = redactor.push(content);
      redactedText += safe;
      if (isLegacy) choice.text = safe;
      else choice.delta!.content = safe;
      const hasMore = choice.finish_reason != null || (!isLegacy && Object.keys(choice.delta!).some((k) => k !== 'content'));
      if (safe === '' && !hasMore) return '';
    }
    if (choice.finish_reason != null) prefix = flushChunk();
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
      return redactor.count;
    },
  };
}
