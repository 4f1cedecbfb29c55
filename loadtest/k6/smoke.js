// Smoke: one user, a handful of requests — is the deployment up and answering
// correctly? Run before every load test and after every deploy.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e API_KEY=sk-... loadtest/k6/smoke.js
// Through the public Ingress, which serves only /v1, add -e PROBES=false: /health and
// /ready stay in-cluster.
import http from 'k6/http';
import { check, sleep } from 'k6';
import { HEADERS, URLS } from './lib/config.js';
import { chat, chatStream } from './lib/openai.js';
import { STANDARD } from './lib/thresholds.js';

export const options = {
  scenarios: {
    smoke: { executor: 'per-vu-iterations', vus: 1, iterations: 5, maxDuration: '2m' },
  },
  thresholds: {
    ...STANDARD,
    checks: ['rate==1.0'],
  },
};

const PROBES = (__ENV.PROBES || 'true') !== 'false';

export default function () {
  if (PROBES) {
    check(http.get(URLS.health), { 'health: 200': (r) => r.status === 200 });
    check(http.get(URLS.ready), { 'ready: 200': (r) => r.status === 200 });
  }
  const models = http.get(URLS.models, { headers: HEADERS, tags: { name: 'models' } });
  check(models, {
    'models: 200': (r) => r.status === 200,
    'models: OpenAI list': (r) => r.json('object') === 'list',
  });
  chat({ seed: __ITER });
  chatStream({ seed: __ITER });
  sleep(1);
}
