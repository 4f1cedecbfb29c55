/**
 * Composition root: the only place that reads argv, the environment and config files,
 * installs signal handlers and starts timers.
 *
 *   switchyard [--config FILE]        run the gateway (default config/gateway.yaml)
 *   switchyard check FILE             validate a config file and exit (0 ok, 2 invalid)
 */
import { existsSync, readFileSync, watch } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfigFile, parseConfigText, type LoadedConfig } from './config/load.js';
import { createGateway } from './app.js';
import { createLogger } from './logger.js';

const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), existsSync(resolve(dirname(fileURLToPath(import.meta.url)), '../package.json')) ? '..' : '../..');

function fail(err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`switchyard: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`switchyard: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
}

function readConfigText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read config file: ${(err as Error).message}`], file);
  }
}

function configPath(args: string[]): string {
  const i = args.indexOf('--config');
  if (i !== -1) {
    if (!args[i + 1]) fail(new ConfigError(['--config: expected a file path']));
    return resolve(args[i + 1]);
  }
  if (process.env.SWITCHYARD_CONFIG) return resolve(process.env.SWITCHYARD_CONFIG);
  const local = resolve('config/gateway.yaml');
  return existsSync(local) ? local : resolve(PACKAGE_ROOT, 'config/gateway.yaml');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === 'check') {
    const file = args[1] ? resolve(args[1]) : configPath(args.slice(1));
    let loaded: LoadedConfig;
    try {
      loaded = loadConfigFile(file);
    } catch (err) {
      fail(err);
    }
    const missing = Object.entries(loaded.missingSecrets).map(([b, v]) => `backend ${b} needs ${v}`);
    process.stdout.write(`${file}: ok (${Object.keys(loaded.config.models).length} models, ${Object.keys(loaded.config.backends).length} backends${missing.length ? `; unset: ${missing.join(', ')}` : ''})\n`);
    return;
  }

  const file = configPath(args);
  let loaded: LoadedConfig;
  let lastText: string;
  try {
    lastText = readConfigText(file);
    loaded = parseConfigText(lastText, process.env, file);
  } catch (err) {
    fail(err);
  }
  const logger = createLogger({ level: loaded.config.logging.level, file: loaded.config.logging.file });
  for (const [backend, variable] of Object.entries(loaded.missingSecrets)) {
    logger.warn({ backend, variable }, 'backend has no API key: its models answer 503 until the variable is set');
  }
  const gateway = await createGateway(loaded, { logger });

  // Reloads run one at a time; a change that arrives during one runs right after it,
  // so the last write always wins. A file event only reloads when the text changed
  // (editors and ConfigMap updates fire several events); SIGHUP always reloads.
  let reloading = false;
  let pending: { why: string; force: boolean } | undefined;
  const reload = async (why: string, force: boolean): Promise<void> => {
    if (reloading) {
      pending = { why, force: force || pending?.force === true };
      return;
    }
    reloading = true;
    try {
      const text = readConfigText(file);
      if (!force && text === lastText) return;
      lastText = text;
      await gateway.reload(parseConfigText(text, process.env, file));
      logger.info({ file, why }, 'config reloaded');
    } catch (err) {
      gateway.metrics.configReloads.labels('error').inc();
      logger.error({ file, why, err: (err as Error).message }, 'config reload failed; still serving the previous config');
    } finally {
      reloading = false;
      const next = pending;
      pending = undefined;
      if (next) void reload(next.why, next.force);
    }
  };
  process.on('SIGHUP', () => void reload('SIGHUP', true));
  let debounce: NodeJS.Timeout | undefined;
  try {
    // Watch the directory, not the file: a file replaced by rename (editors, Kubernetes
    // ConfigMap volumes swapping their ..data symlink) would leave a file watch on the
    // old inode, deaf to every later change.
    watch(dirname(file), () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => void reload('file changed', false), 200);
    }).unref();
  } catch {
    logger.warn({ file }, 'cannot watch the config file; reload with SIGHUP');
  }

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'signal received');
    gateway.shutdown().then(
      () => setTimeout(() => process.exit(0), 50),
      (err) => {
        logger.error({ err: (err as Error).message }, 'shutdown failed');
        setTimeout(() => process.exit(1), 50);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch(fail);
