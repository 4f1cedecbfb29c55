/**
 * Context trimming (route policy `context: trim`): drop the oldest conversation turns
 * until the prompt fits. System and developer messages always stay. A turn is a user
 * message and everything up to the next one (the answers, tool calls and tool results),
 * and goes as a whole, oldest first, so what is kept still starts with a user message
 * (Anthropic refuses a conversation that starts with the assistant, and any model loses
 * the question its answers belong to). The last user message always stays; when the
 * older turns are not enough, the tool steps of the current turn go next, oldest first,
 * except the latest one. An assistant message with tool calls and the tool results that
 * answer it always go or stay together (a tool result without its call, or a call
 * without its results, is rejected by OpenAI and most backends).
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
  // Units of message indexes: one message, or a tool call with its results.
  const units: { idx: number[]; pinned: boolean; tokens: number; role: unknown }[] = [];
  for (let i = 0; i < messages.length; i++) {
    const role = roleOf(messages[i]);
    const prev = units[units.length - 1];
    const isResult = role === 'tool' || role === 'function';
    if (isResult && prev && !prev.pinned && startsToolUnit(messages[prev.idx[0]])) {
      prev.idx.push(i);
      prev.tokens += perMessage[i];
      continue;
    }
    units.push({ idx: [i], pinned: role === 'system' || role === 'developer', tokens: perMessage[i], role });
  }

  // Groups that go as a whole, in the order they go.
  const groups: { units: typeof units }[] = [];
  let lastUser = -1;
  for (let u = units.length - 1; u >= 0; u--) {
    if (units[u].role === 'user') {
      lastUser = u;
      break;
    }
  }
  if (lastUser < 0) {
    // No user message: every unit on its own, the last one kept.
    for (let u = 0; u < units.length - 1; u++) if (!units[u].pinned) groups.push({ units: [units[u]] });
  } else {
    // Older turns: from one user message to the next (and whatever came before the first).
    let current: typeof units = [];
    for (let u = 0; u < lastUser; u++) {
      if (units[u].pinned) continue;
      if (units[u].role === 'user' && current.length > 0) {
        groups.push({ units: current });
        current = [];
      }
      current.push(units[u]);
    }
    if (current.length > 0) groups.push({ units: current });
    // Then the current turn's steps, oldest first: never its user message, never its latest step.
    for (let u = lastUser + 1; u < units.length - 1; u++) if (!units[u].pinned) groups.push({ units: [units[u]] });
  }

  let total = fixed + units.reduce((s, u) => s + u.tokens, 0);
  const dropped = new Set<number>();
  for (const g of groups) {
    if (total <= maxTokens) break;
    for (const u of g.units) {
      for (const i of u.idx) dropped.add(i);
      total -= u.tokens;
    }
  }
  if (total > maxTokens) return undefined;
  return { messages: messages.filter((_, i) => !dropped.has(i)), dropped: dropped.size, tokens: total };
}
