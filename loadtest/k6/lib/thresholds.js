// Pass/fail bounds shared by the scenarios. They mirror deploy/prometheus/alerts.yaml:
// a run that passes would not page anyone.
//   SwitchyardHigh5xxRate            5xx > 1%   → http_req_failed rate < 1%
//   SwitchyardHighRequestLatencyP99  p99 > 10 s → http_req_duration p(99) < 10 s
//   SwitchyardLowCacheHitRate        < 30%      → cache_hits rate > 30% (cache-hit.js)

export const ERROR_RATE = 'rate<0.01';
export const P99_LATENCY_MS = 10000;
export const P99_TTFT_MS = Number(__ENV.P99_TTFT_MS || 2000);
export const CACHE_HIT_RATE = 'rate>0.30';

export const STANDARD = {
  http_req_failed: [ERROR_RATE],
  http_req_duration: [`p(99)<${P99_LATENCY_MS}`, 'p(50)<5000'],
  checks: ['rate>0.99'],
};
