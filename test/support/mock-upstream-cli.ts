/** `npm run mock-upstream -- [--port 9000] [--chunks 5] [--chunk-delay-ms 0] [--latency-ms 0]` */
import { startMockUpstream } from './mock-upstream.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? def : Number(process.argv[i + 1]);
};
const mock = await startMockUpstream({
  port: arg('port', 9000),
  record: false,
  defaults: { chunks: arg('chunks', 5), chunkDelayMs: arg('chunk-delay-ms', 0), latencyMs: arg('latency-ms', 0) },
});
process.stdout.write(`mock upstream on ${mock.url}\n`);
const stop = () => void mock.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
