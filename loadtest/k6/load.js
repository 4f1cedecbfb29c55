// Load: ramp the arrival rate to TARGET_RPS (default 50, the per-pod HPA target),
// hold it, ramp down. Open model: k6 starts requests at the given rate whatever
// the latency, like real clients do.
//   k6 run -e BASE_URL=... -e API_KEY=... -e TARGET_RPS=200 -e HOLD=10m loadtest/k6/load.js
import { chat } from './lib/openai.js';
import { envDuration, envInt } from './lib/config.js';
import { STANDARD } from './lib/thresholds.js';

const TARGET_RPS = envInt('TARGET_RPS', 50);

export const options = {
  scenarios: {
    load: {
      executor: 'ramping-arrival-rate',
      startRate: 1,
      timeUnit: '1s',
      preAllocatedVUs: envInt('PRE_VUS', 50),
      maxVUs: envInt('MAX_VUS', 500),
      stages: [
        { target: TARGET_RPS, duration: envDuration('RAMP', '2m') },
        { target: TARGET_RPS, duration: envDuration('HOLD', '5m') },
        { target: 0, duration: '1m' },
      ],
    },
  },
  thresholds: {
    ...STANDARD,
    dropped_iterations: ['count<100'],
  },
};

export default function () {
  chat({ seed: __ITER });
}
