/**
 * A gateway as operators run it: `node bin/switchyard.js --config FILE` in a child
 * process, with its own environment (secrets are "${VAR}" in the config). The config
 * object is written as JSON (valid YAML) to a temp file. The port is read from the
 * "switchyard listening" log line. stop() sends SIGKILL; tests call it in afterAll.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface GatewayProcess {
  url: string;
  port: number;
  /** Everything the process wrote to stdout (JSON log lines) and stderr so far. */
  output(): string;
  /** Parsed JSON log lines so far. */
  logs(): Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

export async function startGatewayProcess(config: Record<string, unknown>, env: Record<string, string>, timeoutMs = 20_000): Promise<GatewayProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-proc-'));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, JSON.stringify(config, null, 2));
  const child: ChildProcess = spawn(process.execPath, ['bin/switchyard.js', '--config', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '', ...env },
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };

  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`gateway did not start in ${timeoutMs} ms:\n${out}`)), timeoutMs);
      const check = () => {
        const m = /"port":(\d+)[^\n]*switchyard listening/.exec(out);
        if (m) {
          clearTimeout(t);
          resolve(Number(m[1]));
        }
      };
      child.stdout!.on('data', check);
      child.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`gateway exited with ${code} at start:\n${out}`));
      });
    });
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    output: () => out,
    logs: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => {
          try {
            return JSON.parse(l) as Record<string, unknown>;
          } catch {
            return {};
          }
        }),
    stop,
  };
}
