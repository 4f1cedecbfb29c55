/**
 * Calibration targets for section (a) of `npm run bench`: other proxies in front of the
 * same mock, measured in the same alternating pairs as the direct path and Switchyard,
 * so the harness shows what a proxy hop costs on this machine at all.
 *   - bare-relay: uWebSockets.js + undici and nothing else (bare-relay.ts): the ceiling of
 *     a Node gateway on the chosen dependencies.
 *   - nginx (when on PATH): C, one worker per core, upstream keep-alive, access log
 *     buffered to a file as Switchyard's is.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitReady } from './process.js';

export interface CalibrationTarget {
  name: string;
  /** The chat completions URL through this proxy. */
  url: string;
  /** Processes whose CPU counts as the proxy's. */
  pids: number[];
  stop(): Promise<void>;
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

async function startBareRelay(mockUrl: string): Promise<CalibrationTarget> {
  const port = await freePort();
  const entry = fileURLToPath(new URL('./bare-relay.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', entry, '--port', String(port), '--upstream', mockUrl], { stdio: ['ignore', 'ignore', 'inherit'] });
  const base = `http://127.0.0.1:${port}`;
  // The relay answers any POST; readiness = it forwards one to the mock.
  for (let i = 0; ; i++) {
    try {
      const r = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}' });
      await r.text();
      if (r.status === 200) break;
    } catch {
      if (i > 100) throw new Error('bare relay did not start');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { name: 'bare uWS+undici relay', url: `${base}/v1/chat/completions`, pids: [child.pid!], stop: () => stopChild(child) };
}

function nginxBinary(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v nginx || ls /usr/sbin/nginx'], { encoding: 'utf8' });
  const path = r.stdout.trim().split('\n')[0];
  return r.status === 0 && path ? path : undefined;
}

async function startNginx(mockUrl: string): Promise<CalibrationTarget | undefined> {
  const bin = nginxBinary();
  if (!bin) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-bench-nginx-'));
  const port = await freePort();
  const upstream = new URL(mockUrl);
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes auto;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 4096; }
http {
  access_log ${dir}/access.log combined buffer=64k flush=1s;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream mock { server ${upstream.host}; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    location /v1/ { proxy_pass http://mock${upstream.pathname.replace(/\/$/, '')}/; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
  }
}
`,
  );
  const child = spawn(bin, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitReady(`${base}/v1/models`);
  } catch {
    await stopChild(child);
    return undefined;
  }
  // The master forks one worker per core; their CPU is nginx's.
  const workers = spawnSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
  return { name: 'nginx', url: `${base}/v1/chat/completions`, pids: [child.pid!, ...workers], stop: () => stopChild(child) };
}

/** The calibration proxies that run here (nginx only when installed). */
export async function startCalibrationTargets(mockUrl: string): Promise<CalibrationTarget[]> {
  const targets = [await startBareRelay(mockUrl)];
  const nginx = await startNginx(mockUrl);
  if (nginx) targets.push(nginx);
  else console.log('(a) calibration: nginx not found (apt-get install nginx), measured without it');
  return targets;
}
