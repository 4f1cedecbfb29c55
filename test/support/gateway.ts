/**
 * Builds a real gateway on port 0 from a config object (as YAML would give it),
 * with a silent or capturing logger. Used by the feature tests.
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import { buildConfig } from '../../gateway/config/load.js';
import { createGateway, type Gateway, type GatewayOptions } from '../../gateway/app.js';
import { REDACT_PATHS } from '../../gateway/logger.js';

export interface TestGateway extends Gateway {
  /** Log lines written so far (parsed JSON). */
  logs: Array<Record<string, unknown>>;
  rawLogs: string[];
}

export async function startTestGateway(
  config: Record<string, unknown>,
  opts: GatewayOptions & { env?: Record<string, string | undefined> } = {},
): Promise<TestGateway> {
  const loaded = buildConfig(config, opts.env ?? {});
  const rawLogs: string[] = [];
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        rawLogs.push(line);
        try {
          logs.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          /* not JSON */
        }
      }
      cb();
    },
  });
  const logger = opts.logger ?? pino({ level: 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink);
  const gw = await createGateway(loaded, { port: 0, ...opts, logger });
  return Object.assign(gw, { logs, rawLogs });
}

/** A minimal config pointing one alias at a mock upstream. */
export function mockConfig(mockUrl: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    server: { host: '127.0.0.1', port: 0 },
    backends: { mock: { type: 'openai-compatible', base_url: mockUrl, api_key: '${MOCK_KEY:-sk-upstream-secret}', max_connections: 16, timeout_ms: 5000 } },
    models: { 'gpt-4o-mini': { backend: 'mock', model: 'gpt-4o-mini', price: { input: 0.15, output: 0.6 } } },
    ...extra,
  };
}
