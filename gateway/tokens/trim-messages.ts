/**
 * Context trimming (route policy `context: trim`): drop the oldest conversation turns
 * until the prompt fits. System and developer messages always stay; an assistant
 * message with tool calls and the tool results that answer it form one unit that goes
 * or stays together (a tool result without its call, or a call without its results,
 * is rejected by OpenAI and most backends); the last unit (the current turn) stays.
 * Pure: messages and their token counts in, kept messages out.
 */

export interface TrimResult {
  messages: unknown[];
  /** Messages removed. */
  dropped: number;
  /** Prompt tokens after trimming (sum of kept messages plus fixed). */
  tokens: number;
}

const roleOf = (m: unknown): unknown => (typeof m === 'object' && m !== null ? (m as Record<string, unknown>).role : undefined);

function startsToolUnit(m: unknown): boolean {
  if (roleOf(m) !== 'assistant') return false;
  const msg = m as Record<string, unknown>;
  return (Array.isArray(msg.tool_calls) && msg.tool_calls.length > 0) || msg.function_call !== undefined;
}

/**
 * Returns undefined when even the pinned messages and the last turn exceed maxTokens.
 * `perMessage[i]` is the token count of `messages[i]`; `fixed` the rest of the prompt.
 */
export function trimMessages(messages: readonly unknown[], perMessage: readonly number[], fixed: number, maxTokens: number): TrimResult | undefined {
  // Units of message indexes; pinned ones never drop.
  const units: { idx: number[]; pinned: boolean; tokens: number }[] = [];
  for (let i = 0; i < messages.length; i++) {
    const role = roleOf(messages[i]);
    const prev = units[units.length - 1];
    const isResult = role === 'tool' || role === 'function';
    if (isResult && prev && !prev.pinned && startsToolUnit(messages[prev.idx[0]])) {
      prev.idx.push(i);
      prev.tokens += perMessage[i];
      continue;
    }
    units.push({ idx: [i], pinned: role === 'system' || role === 'developer', tokens: perMessage[i] });
  }
  for (let u = units.length - 1; u >= 0; u--) {
    if (units[u].pinned) continue;
    units[u].pinned = true;
    break;
  }

  let total = fixed + units.reduce((s, u) => s + u.tokens, 0);
  const dropped = new Set<number>();
  for (const u of units) {
    if (total <= maxTokens) break;
    if (u.pinned) continue;
    for (const i of u.idx) dropped.add(i);
    total -= u.tokens;
  }
  if (total > maxTokens) return undefined;
  return { messages: messages.filter((_, i) => !dropped.has(i)), dropped: dropped.size, tokens: total };
}
