/**
 * Calibration for `npm run bench` (calibration.ts): the least a Node relay on the chosen
 * dependencies does — uWebSockets.js in front, one undici Pool behind, the body bytes
 * forwarded, the upstream answer's status and body sent back. No auth, routing, metrics,
 * logs, usage counting or error mapping. What it reaches in the harness is the ceiling of
 * any gateway built on these two libraries; Switchyard's share of it is what its
 * features cost.
 *
 *   node --import tsx loadtest/bench/bare-relay.ts --port 9303 --upstream http://127.0.0.1:9301
 */
import { Pool } from 'undici';
import { loadUws } from '../../gateway/server/uws-server.js';

const arg = (name: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  if (i === -1 || !process.argv[i + 1]) throw new Error(`bare-relay: --${name} is required`);
  return process.argv[i + 1]!;
};
const upstream = new URL(arg('upstream'));
const pool = new Pool(upstream.origin, { connections: 128 });
const basePath = upstream.pathname.replace(/\/$/, '');

const app = loadUws().App();
app.post('/*', (res, req) => {
  const path = basePath + req.getUrl().replace(/^\/v1/, '');
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  const chunks: Buffer[] = [];
  res.onData((ab, last) => {
    chunks.push(Buffer.from(ab.slice(0)));
    if (!last) return;
    const parts: Buffer[] = [];
    let status = 502;
    const handler = {
      onConnect() {},
      onUpgrade() {},
      onBodySent() {},
      onHeaders(code: number) {
        status = code;
        return true;
      },
      onData(chunk: Buffer) {
        parts.push(chunk);
        return true;
      },
      onComplete() {
        if (!aborted) res.cork(() => res.writeStatus(String(status)).writeHeader('content-type', 'application/json').end(Buffer.concat(parts)));
      },
      onError() {
        if (!aborted) res.cork(() => res.writeStatus('502').end());
      },
    };
    pool.dispatch({ path, method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.concat(chunks) }, handler);
  });
});
app.listen('127.0.0.1', Number(arg('port')), (token) => {
  if (!token) throw new Error('bare-relay: cannot listen');
  process.stdout.write('bare relay listening\n');
});
process.on('SIGTERM', () => process.exit(0));
