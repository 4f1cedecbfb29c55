/**
 * The token estimator for backends without an exact tokenizer (config.token_estimator).
 * Characters per token differ by script in BPE vocabularies: Latin text runs at roughly 4
 * characters a token, Cyrillic and Greek at 2–3 (fewer in older, smaller vocabularies),
 * Indic scripts, Thai and Arabic near one token a character or more, CJK 1–2, and an emoji
 * 1–3. The defaults follow the larger figures: the estimate feeds reservations and
 * context checks, which must not under-count. Always rounds up.
 */
import type { CountText } from './encodings.js';

export interface EstimatorConfig {
  cjk_per_char: number;
  alphabet_per_char?: number;
  script_per_char?: number;
  astral_per_char?: number;
  other_per_char: number;
}

// Han, Hiragana, Katakana, Hangul, CJK symbols and full-width forms.
const CJK = /[\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]/g;
// Greek, Cyrillic, Armenian, Georgian.
const ALPHABET = /[\u0370-\u058f\u10a0-\u10ff\u1c80-\u1c8f\u1f00-\u1fff\u2de0-\u2dff\ua640-\ua69f]/g;
// Hebrew, Arabic, Syriac, Thaana, N'Ko; Indic scripts; Thai, Lao, Tibetan, Myanmar; Khmer.
const SCRIPT = /[\u0590-\u08ff\u0900-\u0dff\u0e00-\u0fff\u1000-\u109f\u1780-\u17ff\ufb1d-\ufdff\ufe70-\ufeff]/g;
// A surrogate pair: one character outside the Basic Multilingual Plane (two UTF-16 units).
const ASTRAL = /[\ud800-\udbff][\udc00-\udfff]/g;

export function createEstimator(cfg: EstimatorConfig): CountText {
  const alphabet = cfg.alphabet_per_char ?? 0.6;
  const script = cfg.script_per_char ?? 1;
  const astral = cfg.astral_per_char ?? 2;
  return (text: string) => {
    if (text.length === 0) return 0;
    const cjk = text.match(CJK)?.length ?? 0;
    const alpha = text.match(ALPHABET)?.length ?? 0;
    const scr = text.match(SCRIPT)?.length ?? 0;
    const ast = text.match(ASTRAL)?.length ?? 0;
    const other = text.length - cjk - alpha - scr - 2 * ast;
    return Math.ceil(cjk * cfg.cjk_per_char + alpha * alphabet + scr * script + ast * astral + other * cfg.other_per_char);
  };
}
