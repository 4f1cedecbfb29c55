/**
 * The token estimator for backends without an exact tokenizer (config.token_estimator).
 * CJK scripts tokenize at roughly 1–2 tokens per character in BPE vocabularies, Latin
 * text at roughly 4 characters per token; the defaults (1.5 and 0.25) follow that.
 * Always rounds up: the estimate feeds reservations, which must not under-reserve.
 */
import type { CountText } from './encodings.js';

export interface EstimatorConfig {
  cjk_per_char: number;
  other_per_char: number;
}

// Han, Hiragana, Katakana, Hangul, CJK symbols and full-width forms.
const CJK = /[\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]/g;

export function createEstimator(cfg: EstimatorConfig): CountText {
  return (text: string) => {
    if (text.length === 0) return 0;
    const cjk = text.match(CJK)?.length ?? 0;
    // length counts UTF-16 units; astral characters (emoji) count twice, which errs high.
    const other = text.length - cjk;
    return Math.ceil(cjk * cfg.cjk_per_char + other * cfg.other_per_char);
  };
}
