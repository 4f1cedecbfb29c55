// Streaming: SSE chat completions at a constant rate. k6's http module returns the
// body only when the stream ends, so time to first chunk is taken from the time to
// the first response byte (timings.waiting): the gateway sends headers with the first
// chunk. Chunks per stream and a missing [DONE] are counted after the fact.
//   k6 run -e BASE_URL=... -e API_KEY=... -e STREAM_RPS=10 loadtest/k6/streaming.js
import { Counter, Trend } from 'k6/metrics';
import { chatStream } from './lib/openai.js';
import { envDuration, envInt } from './lib/config.js';
import { ERROR_RATE, P99_LATENCY_MS, P99_TTFT_MS } from './lib/thresholds.js';

const timeToFirstChunk = new Trend('time_to_first_chunk', true);
const chunksPerStream = new Trend('chunks_per_stream');
const brokenStreams = new Counter('broken_streams');

export const options = {
  scenarios: {
    streaming: {
      executor: 'constant-arrival-rate',
      rate: envInt('STREAM_RPS', 10),
      timeUnit: '1s',
      duration: envDuration('DURATION', '5m'),
      preAllocatedVUs: envInt('PRE_VUS', 50),
      maxVUs: envInt('MAX_VUS', 500),
    },
  },
  thresholds: {
    http_req_failed: [ERROR_RATE],
    http_req_duration: [`p(99)<${P99_LATENCY_MS}`],
    time_to_first_chunk: [`p(99)<${P99_TTFT_MS}`, 'p(50)<1000'],
    chunks_per_stream: ['avg>1'],
    broken_streams: ['count<1'],
    checks: ['rate>0.99'],
  },
};

export default function () {
  const { res, events, done } = chatStream({ seed: __ITER, maxTokens: envInt('MAX_TOKENS', 128) });
  if (res.status !== 200) return;
  timeToFirstChunk.add(res.timings.waiting);
  chunksPerStream.add(events.length);
  if (!done || events.some((e) => e.error)) brokenStreams.add(1);
}
