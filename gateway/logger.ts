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

/**
 * The message of the one line per request (pipeline/finalizers/access-log.ts): the only
 * high-volume line, and the only one that waits in the write buffer.
 */
export const ACCESS_LOG_MSG = 'request';

/**
 * Access lines are buffered up to LOG_BUFFER_BYTES before a write (one write syscall per
 * line cost ~20 µs per request) and flushed at least every LOG_FLUSH_MS; every other
 * line (start-up, warnings, errors, state changes) is written at once. Writes are
 * synchronous, pino's own default: no thread-pool round trip, and nothing is lost on exit.
 */
const LOG_BUFFER_BYTES = 4096;
const LOG_FLUSH_MS = 1000;

export function createLogger(opts: { level?: string; file?: string; destination?: DestinationStream } = {}): Logger {
  let dest = opts.destination;
  let flushNow: (() => void) | undefined;
  if (!dest) {
    const toFile = opts.file !== undefined;
    const boom = pino.destination({ dest: opts.file ?? 1, sync: true, mkdir: toFile, minLength: LOG_BUFFER_BYTES });
    flushNow = () => {
      try {
        boom.flush();
      } catch {
        /* the destination is not open yet */
      }
    };
    setInterval(flushNow, LOG_FLUSH_MS).unref();
    process.once('exit', flushNow);
    dest = boom;
  }
  return pino(
    {
      level: opts.level ?? 'info',
      base: { service: 'switchyard' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      ...(flushNow && {
        hooks: {
          logMethod(args, method) {
            method.apply(this, args);
            if (args[1] !== ACCESS_LOG_MSG) flushNow!();
          },
        },
      }),
    },
    dest,
  );
}

/**
 * Writes access lines (ACCESS_LOG_MSG) to the logger's destination in pino's own line
 * format — level label, ISO time, the logger's bindings, the fields, msg — with one
 * JSON.stringify of the fields. pino's generic per-value serialisation cost ~5 µs per
 * request; the caller builds the fields from non-secret values only (no headers, no
 * bodies, no keys), so the redaction pass is not needed for them.
 */
export function createAccessLineWriter(logger: Logger): (level: 'info' | 'error', fields: Record<string, unknown>) => void {
  const stream = (logger as unknown as Record<symbol, { write(s: string): void }>)[pino.symbols.streamSym];
  const bindings = String((logger as unknown as Record<symbol, string>)[pino.symbols.chindingsSym] ?? '');
  const tail = `,"msg":${JSON.stringify(ACCESS_LOG_MSG)}}\n`;
  return (level, fields) => {
    if (!logger.isLevelEnabled(level)) return;
    const json = JSON.stringify(fields);
    const body = json.length > 2 ? `,${json.slice(1, -1)}` : '';
    stream.write(`{"level":"${level}","time":"${new Date().toISOString()}"${bindings}${body}${tail}`);
  };
}
