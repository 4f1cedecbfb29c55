/** Process helpers shared by the bench sections: free ports, readiness, /proc CPU and RSS. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import autocannon from 'autocannon';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** utime + stime of a process in seconds (Linux /proc). */
export function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

export async function waitReady(url: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(url)).status === 200) return;
    } catch {
      /* not yet */
    }
    await sleep(100);
  }
  throw new Error(`not ready at ${url}`);
}

/**
 * A gateway process as the bench runs it: one alias on the mock, auth and file logging
 * on (as in production), the exact cache on or off.
 */
export async function startBenchGateway(opts: { entry: string[]; mockUrl: string; key: string; cache: boolean; dir: string }): Promise<{ child: ChildProcess; url: string }> {
  const cfgFile = join(opts.dir, `bench-${opts.cache ? 'cache' : 'proxy'}.yaml`);
  writeFileSync(
    cfgFile,
    [
      'server: { host: 127.0.0.1, port: 0 }',
      `logging: { level: info, file: "${join(opts.dir, `gateway-${opts.cache ? 'cache' : 'proxy'}.log`)}" }`,
      'keys:',
      '  - { id: bench, key: "${BENCH_KEY}", models: ["*"] }',
      'backends:',
      `  mock: { type: openai-compatible, base_url: "${opts.mockUrl}", max_connections: 128 }`,
      'models:',
      '  gpt-4o-mini: { backend: mock, model: gpt-4o-mini, price: { input: 0.15, output: 0.6 } }',
      `cache: { exact: { enabled: ${opts.cache} } }`,
    ].join('\n'),
  );
  const port = await freePort();
  const child = spawn(process.execPath, [...opts.entry, '--config', cfgFile], { stdio: 'inherit', env: { ...process.env, BENCH_KEY: opts.key, PORT: String(port) } });
  const url = `http://127.0.0.1:${port}`;
  await waitReady(`${url}/ready`);
  return { child, url };
}

/**
 * One autocannon run from this process (GET when no body), with this process's CPU per
 * request: the load generator shares the cores, so its cost is part of every figure.
 */
export async function loadgen(url: string, opts: { connections: number; duration: number; key: string; body?: string; rate?: number }) {
  const cpu0 = process.cpuUsage();
  const r = await autocannon({
    url,
    method: opts.body === undefined ? 'GET' : 'POST',
    connections: opts.connections,
    duration: opts.duration,
    overallRate: opts.rate,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${opts.key}` },
    body: opts.body,
  });
  const used = process.cpuUsage(cpu0);
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx, total: r.requests.total, loadgenUs: (used.user + used.system) / Math.max(1, r.requests.total) };
}
