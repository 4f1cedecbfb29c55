// Soak: a steady, moderate rate for hours — catches memory growth, leaked sockets and
// slow drifts that short tests miss (compare process_resident_memory_bytes at the
// start and end in Grafana: Switchyard / Resources). Mixes JSON and streamed requests.
//   k6 run -e BASE_URL=... -e API_KEY=... -e SOAK_RPS=20 -e DURATION=4h loadtest/k6/soak.js
import { chat, chatStream } from './lib/openai.js';
import { envDuration, envInt } from './lib/config.js';
import { STANDARD } from './lib/thresholds.js';

export const options = {
  scenarios: {
    soak: {
      executor: 'constant-arrival-rate',
      rate: envInt('SOAK_RPS', 20),
      timeUnit: '1s',
      duration: envDuration('DURATION', '2h'),
      preAllocatedVUs: envInt('PRE_VUS', 40),
      maxVUs: envInt('MAX_VUS', 400),
    },
  },
  thresholds: {
    ...STANDARD,
    'http_req_duration{name:chat}': [`p(99)<10000`],
    'http_req_duration{name:chat_stream}': [`p(99)<10000`],
  },
};

export default function () {
  if (__ITER % 2 === 0) chat({ seed: __ITER });
  else chatStream({ seed: __ITER });
}
