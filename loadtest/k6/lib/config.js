// Settings shared by every k6 scenario. Everything comes from the environment:
//   k6 run -e BASE_URL=https://llm.example.com -e API_KEY=sk-... -e MODEL=gpt-4o-mini smoke.js
// BASE_URL is the gateway root (no /v1).

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const API_KEY = __ENV.API_KEY || 'sk-switchyard-dev';
export const MODEL = __ENV.MODEL || 'local';
export const MAX_TOKENS = Number(__ENV.MAX_TOKENS || 64);

export const URLS = {
  chat: `${BASE_URL}/v1/chat/completions`,
  models: `${BASE_URL}/v1/models`,
  health: `${BASE_URL}/health`,
  ready: `${BASE_URL}/ready`,
};

export const HEADERS = {
  'Content-Type': 'application/json',
  Authorization: `Bearer ${API_KEY}`,
};

/** Positive integer from the environment, or the default. */
export function envInt(name, fallback) {
  const v = Number(__ENV[name]);
  return Number.isFinite(v) && v > 0 ? Math.floor(v) : fallback;
}

/** Duration string (k6 syntax: 30s, 5m, 2h) from the environment, or the default. */
export function envDuration(name, fallback) {
  const v = __ENV[name];
  return v && /^\d+(ms|s|m|h)$/.test(v) ? v : fallback;
}
