/**
 * pino, with redaction of every place a secret can appear. main.ts creates the one
 * logger; the access-log finalizer writes one line per request.
 */
import { writeSync } from 'node:fs';
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
 * Access lines are buffered here up to LOG_BUFFER_BYTES and written in one synchronous
 * write (one write syscall per line cost ~20 µs per request), at least every
 * LOG_FLUSH_MS and before any other line, so the file keeps its order; every other line
 * (start-up, warnings, errors, state changes) is written at once. The buffer is ours, not
 * sonic-boom's minLength: sonic-boom measures the byte length of its whole pending string
 * on every write, which flattened and copied the buffer once per line. Lines are copied
 * into one preallocated Buffer at once, so no line string outlives its request (strings
 * held until a flush survived young-generation GCs and made them slower); a file
 * destination gets that Buffer written as it is.
 * Writes are synchronous, pino's own default: no thread-pool round trip, and nothing is
 * lost on exit.
 */
const LOG_BUFFER_BYTES = 64 * 1024;
const LOG_FLUSH_MS = 1000;

class AccessBuffer {
  private readonly buf = Buffer.allocUnsafeSlow(LOG_BUFFER_BYTES);
  private len = 0;
  /** `fileFd`: the destination's descriptor when it is a regular file (written directly); else the stream takes strings. */
  constructor(
    private readonly stream: { write(s: string): unknown },
    private readonly fileFd: () => number | undefined,
  ) {}
  /** Set by releaseLogger: lines are written at once from then on, nothing waits for a flush. */
  writeThrough = false;
  /** The periodic and exit flushes of this buffer (undone by releaseLogger). */
  stop: () => void = () => {};
  push(line: string): void {
    if (this.writeThrough) return this.emit(line);
    // A UTF-16 code unit is at most 3 UTF-8 bytes.
    if (this.len + line.length * 3 > this.buf.length) {
      this.flush();
      if (line.length * 3 > this.buf.length) return this.emit(line);
    }
    this.len += this.buf.write(line, this.len, 'utf8');
  }
  flush(): void {
    if (this.len === 0) return;
    const n = this.len;
    this.len = 0;
    const fd = this.fileFd();
    try {
      if (fd !== undefined && fd >= 0) {
        for (let off = 0; off < n; ) off += writeSync(fd, this.buf, off, n - off);
      } else {
        this.stream.write(this.buf.toString('utf8', 0, n));
      }
    } catch {
      /* the destination is not open yet or gone: logging never takes the gateway down */
    }
  }
  private emit(line: string): void {
    try {
      this.stream.write(line);
    } catch {
      /* as above */
    }
  }
}

/** The access-line buffer of a destination made by createLogger (none for a caller's own destination). */
const accessBuffers = new WeakMap<object, AccessBuffer>();

export function createLogger(opts: { level?: string; file?: string; destination?: DestinationStream } = {}): Logger {
  let dest = opts.destination;
  let access: AccessBuffer | undefined;
  if (!dest) {
    const toFile = opts.file !== undefined;
    const boom = pino.destination({ dest: opts.file ?? 1, sync: true, mkdir: toFile });
    const buffer = (access = new AccessBuffer(boom, () => (toFile ? (boom as unknown as { fd: number }).fd : undefined)));
    accessBuffers.set(boom, buffer);
    const flush = () => buffer.flush();
    const timer = setInterval(flush, LOG_FLUSH_MS).unref();
    process.once('exit', flush);
    buffer.stop = () => {
      clearInterval(timer);
      process.off('exit', flush);
    };
    dest = boom;
  }
  return pino(
    {
      level: opts.level ?? 'info',
      base: { service: 'switchyard' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      ...(access && {
        hooks: {
          logMethod(args, method) {
            // Buffered access lines first: the file stays in time order.
            access!.flush();
            method.apply(this, args);
          },
        },
      }),
    },
    dest,
  );
}

/**
 * For the owner of a logger made by createLogger that is done with it (a gateway that
 * closes): writes the buffered access lines, stops the periodic and exit flushes (so
 * closed gateways leave no timer or `exit` listener behind), and writes any later line
 * at once. Nothing for a logger with a caller's own destination.
 */
export function releaseLogger(logger: Logger): void {
  const stream = (logger as unknown as Record<symbol, object>)[pino.symbols.streamSym];
  const buffer = stream ? accessBuffers.get(stream) : undefined;
  if (!buffer) return;
  buffer.flush();
  buffer.writeThrough = true;
  buffer.stop();
}

/**
 * Writes access lines (ACCESS_LOG_MSG) in pino's own line format — level label, ISO
 * time, the logger's bindings, the fields, msg — into the destination's access buffer (or
 * straight to a caller's own destination). `fields` is an object (one JSON.stringify) or
 * its members already serialised (`"a":1,"b":"x"`, no braces; the access-log finalizer
 * builds them by hand).
 * pino's generic per-value serialisation cost ~5 µs per request; the caller builds the
 * fields from non-secret values only (no headers, no bodies, no keys), so the
 * redaction pass is not needed for them.
 */
export function createAccessLineWriter(logger: Logger): (level: 'info' | 'error', fields: Record<string, unknown> | string) => void {
  const stream = (logger as unknown as Record<symbol, { write(s: string): void }>)[pino.symbols.streamSym];
  const buffer = accessBuffers.get(stream);
  const bindings = String((logger as unknown as Record<symbol, string>)[pino.symbols.chindingsSym] ?? '');
  const tail = `,"msg":${JSON.stringify(ACCESS_LOG_MSG)}}\n`;
  // Many lines share a millisecond under load: format the time once per millisecond.
  let lastMs = 0;
  let lastIso = '';
  return (level, fields) => {
    if (!logger.isLevelEnabled(level)) return;
    let members: string;
    if (typeof fields === 'string') members = fields;
    else {
      const json = JSON.stringify(fields);
      members = json.length > 2 ? json.slice(1, -1) : '';
    }
    const ms = Date.now();
    if (ms !== lastMs) {
      lastMs = ms;
      lastIso = new Date(ms).toISOString();
    }
    const line = `{"level":"${level}","time":"${lastIso}"${bindings}${members ? `,${members}` : ''}${tail}`;
    if (buffer) buffer.push(line);
    else stream.write(line);
  };
}
