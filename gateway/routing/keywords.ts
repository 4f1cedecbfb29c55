/**
 * Keyword lists (any language) → one case-insensitive RegExp, compiled at start-up.
 * Shared by the complexity classifier and the content filter's deny keywords.
 *
 * A keyword starting with a letter or digit of a space-separated script gets a
 * leading word boundary, so "prove" matches "prove", "proves", "proven" but not
 * "approve". Scripts written without spaces (Chinese, Japanese, Thai...) match as
 * substrings: 分析 must match inside 请分析一下.
 */

const SPACED_WORD_START = /^[\p{Script=Latin}\p{Script=Cyrillic}\p{Script=Greek}\p{N}_]/u;

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function source(keyword: string): string {
  const k = keyword.trim();
  // \b is ASCII-only in JS; this lookbehind is the Unicode-aware equivalent.
  return SPACED_WORD_START.test(k) ? `(?<![\\p{L}\\p{N}_])${escape(k)}` : escape(k);
}

/** Undefined for an empty list, so callers skip the test entirely. */
export function compileKeywords(keywords: readonly string[]): RegExp | undefined {
  const list = keywords.map((k) => k.trim()).filter((k) => k !== '');
  if (list.length === 0) return undefined;
  // Longest first, so at one position the most specific keyword is reported ("step by step" over "step").
  list.sort((a, b) => b.length - a.length);
  return new RegExp(list.map(source).join('|'), 'iu');
}
