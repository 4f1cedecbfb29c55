/**
 * pino, with redaction of every place a secret can appear. main.ts creates the one
 * logger; the access-log finalizer writes one line per request.
 */
import pino, { type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** Paths whose values never reach a log line. */
export const REDACT_PATHS = [
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'headers["x-api-key"]',
  'req.headers["x-api-key"]',
  'api_key',
  'apiKey',
  'key',
  '*.api_key',
  '*.apiKey',
  '*.key',
  'config.backends.*.api_key',
  'config.keys[*].key',
  'config.admin.key',
];

export function createLogger(opts: { level?: string; file?: string; destination?: DestinationStream } = {}): Logger {
  const dest = opts.destination ?? (opts.file ? pino.destination({ dest: opts.file, sync: false, mkdir: true }) : pino.destination({ dest: 1, sync: false }));
  return pino(
    {
      level: opts.level ?? 'info',
      base: { service: 'switchyard' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  );
}
