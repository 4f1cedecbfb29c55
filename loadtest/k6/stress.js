// Stress: push past the expected peak in steps (1x, 2x, 4x TARGET_RPS) to find where
// latency or errors break the alert bounds, and watch the HPA scale (Grafana:
// Switchyard / Resources, replicas). Fails, on purpose, where the system gives out.
//   k6 run -e BASE_URL=... -e API_KEY=... -e TARGET_RPS=100 loadtest/k6/stress.js
import { chat } from './lib/openai.js';
import { envInt } from './lib/config.js';
import { ERROR_RATE, P99_LATENCY_MS } from './lib/thresholds.js';

const TARGET_RPS = envInt('TARGET_RPS', 50);

export const options = {
  scenarios: {
    stress: {
      executor: 'ramping-arrival-rate',
      startRate: Math.max(1, Math.floor(TARGET_RPS / 5)),
      timeUnit: '1s',
      preAllocatedVUs: envInt('PRE_VUS', 100),
      maxVUs: envInt('MAX_VUS', 2000),
      stages: [
        { target: TARGET_RPS, duration: '2m' },
        { target: TARGET_RPS, duration: '3m' },
        { target: TARGET_RPS * 2, duration: '2m' },
        { target: TARGET_RPS * 2, duration: '3m' },
        { target: TARGET_RPS * 4, duration: '2m' },
        { target: TARGET_RPS * 4, duration: '3m' },
        { target: 0, duration: '2m' },
      ],
    },
  },
  thresholds: {
    http_req_failed: [{ threshold: ERROR_RATE, abortOnFail: true, delayAbortEval: '1m' }],
    http_req_duration: [`p(99)<${P99_LATENCY_MS}`],
  },
};

export default function () {
  chat({ seed: __ITER });
}
