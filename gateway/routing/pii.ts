/**
 * PII redaction for the content filter (routes[].filters.pii): e-mail addresses, phone
 * numbers, payment card numbers (only when the Luhn check passes, so order numbers and
 * timestamps survive) and API-key-shaped secrets (OpenAI/Anthropic sk-..., AWS AKIA...,
 * GitHub ghp_..., Slack xox..., Google AIza..., Stripe sk_live_..., JWTs).
 * The RegExps are module constants compiled once; `redactText` is called per message
 * text, `createStreamRedactor` once per streamed completion.
 */

export type PiiKind = 'secret' | 'email' | 'card' | 'phone';

export interface Redaction {
  text: string;
  /** How many matches were replaced. */
  count: number;
}

const SECRET =
  /(?<![\w-])(?:sk-[A-Za-z0-9_-]{20,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|(?:AKIA|ASIA)[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})/g;
/**
 * Bounded as RFC 5321 bounds addresses (local part ≤ 64, labels ≤ 63), and anchored by the
 * lookbehind to the start of a local part: the unbounded form was retried from every
 * position of a long run, quadratic ("a" × 40,000 + "@" took 3 s of event loop).
 */
const EMAIL = /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,63}/g;
/** 13–19 digits, optionally grouped by spaces or dashes. */
const CARD = /(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])/g;
/**
 * International (+CC ...), North American ((555) 123-4567, 555-123-4567, 555.123.4567,
 * 555 123 4567) and Chinese mobile (13812345678, 138 1234 5678) forms. Bare digit runs
 * of other lengths are left alone: they are far more often ids than phone numbers.
 */
const PHONE =
  /(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}|\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}|\d{3}([.-])\d{3}\1\d{4}|\d{3} \d{3} \d{4}|1[3-9]\d(?:[ -]?\d{4}){2})(?!\w)/g;

export const PII_PLACEHOLDERS: Readonly<Record<PiiKind, string>> = {
  secret: '[REDACTED_SECRET]',
  email: '[REDACTED_EMAIL]',
  card: '[REDACTED_CARD]',
  phone: '[REDACTED_PHONE]',
};

/** The Luhn checksum (ISO/IEC 7812) over the digits of s. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) continue;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/** Secrets first (they contain digit runs), then e-mails, cards, phones. */
export function redactText(text: string): Redaction {
  let count = 0;
  let out = text.replace(SECRET, () => (count++, PII_PLACEHOLDERS.secret));
  if (out.includes('@')) out = out.replace(EMAIL, () => (count++, PII_PLACEHOLDERS.email));
  if (!/\d/.test(out)) return { text: out, count };
  out = out.replace(CARD, (m) => {
    const digits = m.replace(/\D/g, '');
    if (!luhnValid(digits)) return m;
    count++;
    return PII_PLACEHOLDERS.card;
  });
  out = out.replace(PHONE, (m) => {
    const n = m.replace(/\D/g, '').length;
    if (n < 8 || n > 15) return m;
    count++;
    return PII_PLACEHOLDERS.phone;
  });
  return { text: out, count };
}

export interface StreamRedactor {
  /** Text in, redacted text safe to send now out ('' when everything is held back). */
  push(text: string): string;
  /** End of stream: the held-back rest, redacted. */
  flush(): string;
  /** Matches replaced so far. */
  readonly count: number;
}

/**
 * Holds back only the tail that could still grow into a match: the last
 * whitespace-free word plus any digit/separator run after it (a phone or card number
 * written with spaces). Every pattern above is either whitespace-free or made of
 * digits and separators, so a match never straddles the emitted/held boundary.
 * The tail never exceeds maxHoldChars (default 256, longer than any pattern's
 * realistic match); past that the oldest part is released.
 */
const HOLD_TAIL = /\S*(?:[ ().+-]+[\d ().+-]*)?$/;

export function createStreamRedactor(opts: { maxHoldChars?: number } = {}): StreamRedactor {
  const maxHold = opts.maxHoldChars ?? 256;
  let pending = '';
  let count = 0;
  const redact = (s: string): string => {
    if (s === '') return s;
    const r = redactText(s);
    count += r.count;
    return r.text;
  };
  return {
    push(text) {
      pending += text;
      let cut = HOLD_TAIL.exec(pending)!.index;
      if (pending.length - cut > maxHold) cut = pending.length - maxHold;
      const ready = pending.slice(0, cut);
      pending = pending.slice(cut);
      return redact(ready);
    },
    flush() {
      const rest = pending;
      pending = '';
      return redact(rest);
    },
    get count() {
      return count;
    },
  };
}
