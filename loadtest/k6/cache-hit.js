// Cache: repeat a small set of identical deterministic requests (temperature 0) so the
// exact cache answers most of them; the hit rate must stay above the alert's 30%.
// A hit is read from the response header CACHE_HEADER (default x-switchyard-cache: hit).
//   k6 run -e BASE_URL=... -e API_KEY=... loadtest/k6/cache-hit.js
import http from 'k6/http';
import { check } from 'k6';
import { Rate, Trend } from 'k6/metrics';
import { HEADERS, URLS, envDuration, envInt } from './lib/config.js';
import { chatBody } from './lib/openai.js';
import { CACHE_HIT_RATE, ERROR_RATE, P99_LATENCY_MS } from './lib/thresholds.js';

const CACHE_HEADER = (__ENV.CACHE_HEADER || 'x-switchyard-cache').toLowerCase();
const DISTINCT = envInt('DISTINCT_PROMPTS', 5);

const cacheHits = new Rate('cache_hits');
const hitDuration = new Trend('cache_hit_duration', true);
const missDuration = new Trend('cache_miss_duration', true);

export const options = {
  scenarios: {
    cache: {
      executor: 'constant-arrival-rate',
      rate: envInt('CACHE_RPS', 20),
      timeUnit: '1s',
      duration: envDuration('DURATION', '2m'),
      preAllocatedVUs: 20,
      maxVUs: 200,
    },
  },
  thresholds: {
    http_req_failed: [ERROR_RATE],
    http_req_duration: [`p(99)<${P99_LATENCY_MS}`],
    cache_hits: [CACHE_HIT_RATE],
    cache_hit_duration: ['p(95)<100'],
    checks: ['rate>0.99'],
  },
};

function header(res, name) {
  for (const key of Object.keys(res.headers || {})) if (key.toLowerCase() === name) return String(res.headers[key]);
  return '';
}

export default function () {
  // Same DISTINCT prompts over and over: after the first round each is a hit.
  const body = chatBody({ seed: __ITER % DISTINCT });
  const res = http.post(URLS.chat, body, { headers: HEADERS, tags: { name: 'chat_cached' } });
  check(res, { 'cache: status 200': (r) => r.status === 200 });
  if (res.status !== 200) return;
  const hit = header(res, CACHE_HEADER).toLowerCase().startsWith('hit');
  cacheHits.add(hit);
  (hit ? hitDuration : missDuration).add(res.timings.duration);
}
