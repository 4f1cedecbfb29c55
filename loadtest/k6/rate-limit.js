// Rate limits: send faster than the key's limit (e.g. a test key with rpm: 60) and
// check that the excess is refused the OpenAI way — 429 with an OpenAI error body and
// x-ratelimit-* headers — and that nothing else fails. 429s are expected here, so
// they do not count in http_req_failed.
//   k6 run -e BASE_URL=... -e API_KEY=<key with a low rpm> -e OVER_RPS=5 loadtest/k6/rate-limit.js
import http from 'k6/http';
import { check } from 'k6';
import { Rate } from 'k6/metrics';
import { HEADERS, URLS, envDuration, envInt } from './lib/config.js';
import { chatBody } from './lib/openai.js';
import { ERROR_RATE, P99_LATENCY_MS } from './lib/thresholds.js';

const rateLimited = new Rate('rate_limited');

// Init context: applies to every VU. A 429 is an expected answer in this scenario.
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 299 }, 429));

export const options = {
  scenarios: {
    over_limit: {
      executor: 'constant-arrival-rate',
      rate: envInt('OVER_RPS', 5),
      timeUnit: '1s',
      duration: envDuration('DURATION', '1m'),
      preAllocatedVUs: 10,
      maxVUs: 100,
    },
  },
  thresholds: {
    http_req_failed: [ERROR_RATE],
    http_req_duration: [`p(99)<${P99_LATENCY_MS}`],
    rate_limited: ['rate>0.05'],
    checks: ['rate>0.99'],
  },
};

function header(res, name) {
  for (const key of Object.keys(res.headers || {})) if (key.toLowerCase() === name) return String(res.headers[key]);
  return '';
}

export default function () {
  const res = http.post(URLS.chat, chatBody({ seed: __ITER, maxTokens: 8 }), { headers: HEADERS, tags: { name: 'chat_limited' } });
  rateLimited.add(res.status === 429);
  check(res, { 'status is 200 or 429': (r) => r.status === 200 || r.status === 429 });
  if (res.status === 429) {
    check(res, {
      '429: OpenAI error body': (r) => typeof r.json('error.message') === 'string' && r.json('error.type') !== undefined,
      '429: x-ratelimit-limit-requests header': (r) => header(r, 'x-ratelimit-limit-requests') !== '' || header(r, 'x-ratelimit-limit-tokens') !== '',
      '429: retry-after header': (r) => header(r, 'retry-after') !== '',
    });
  }
}
