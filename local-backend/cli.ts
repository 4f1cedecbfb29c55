/**
 * `npm run local-backend -- --model FILE.gguf [--gpu-layers N --context-size N --threads N
 *  --parallel N --batch-size N --flash-attention --queue-size N --port N --host H]`
 * The composition root of the standalone server: the only local-backend file that reads
 * argv, starts listening and handles signals. Without --model it serves the generated
 * tiny demo model. SIGTERM/SIGINT: stop accepting, finish in-flight requests, exit.
 */
import { createLogger } from '../gateway/logger.js';
import { parseCli, USAGE } from './cli-args.js';
import { startLocalServer } from './server.js';

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseCli(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  if (parsed === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const log = createLogger({ level: parsed.logLevel });
  const started = performance.now();
  const server = await startLocalServer({
    host: parsed.host,
    port: parsed.port,
    model: parsed.model,
    onError: (err) => log.error({ err }, 'request failed'),
  });
  const { modelPath, modelId, ...settings } = parsed.model;
  log.info({ url: server.url, model: modelId, modelPath: modelPath ?? '(demo model)', ...settings, loadMs: Math.round(performance.now() - started) }, 'local backend listening');

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    server.close().then(() => process.exit(0), (err: unknown) => { log.error({ err }, 'shutdown failed'); process.exit(1); });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

await main();
