/**
 * Local backend benchmark: what the OpenAI-compatible HTTP server costs compared with the
 * same generation straight through node-llama-cpp, at 1 and 4 concurrent requests.
 * Target: the server keeps ≥ 95% of the direct tokens/s. Also CPU time per 1,000 tokens
 * of the generating process either way, and of the HTTP client. Direct and server runs
 * alternate (medians of PAIRS pairs) because everything shares the machine's cores.
 * Both sides use the generated tiny model on the CPU with the server's settings (threads 1,
 * flash attention off, 4 sequences, greedy, same prompt and max_tokens, chat wrapper resolved
 * once); the server runs as its own process, as deployed. Load is sustained: each of the
 * 1 or 4 clients sends its requests back to back (ROUNDS), as users of a server do, so at
 * 4 the streams drift out of step as they would in service — node-llama-cpp then decodes
 * the sequences in alternating smaller batches (its decode loop dispatches whatever is
 * queued when a batch ends), which costs a model this small (~0.25 ms per token) a
 * visible share; see docs/local-backend.md.
 *
 *   node --import tsx loadtest/bench/local-backend.ts      standalone (--pairs N, default 7; --quick = 1)
 *   npm run bench -- --only local-backend                  as a section of the bench
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createConnection, type Socket } from 'node:net';
import { getLlama, LlamaChat, LlamaLogLevel, type ChatHistoryItem, type ChatWrapper, type LlamaContextSequence } from 'node-llama-cpp';
import { ensureTinyModel } from '../../local-backend/tiny-model.js';
import { installBatchBarrier, type BatchBarrier } from '../../local-backend/batch-barrier.js';

const MAX_TOKENS = 400;
const CONTEXT_SIZE = 1024;
const SEQUENCES = 4;
const pairsFlag = process.argv.indexOf('--pairs');
const PAIRS = process.argv.includes('--quick') ? 1 : pairsFlag > 0 ? Math.max(1, Number(process.argv[pairsFlag + 1])) : 7;
const PROMPT = 'Write a long story about a lighthouse keeper.';
/**
 * Requests each concurrent client makes back to back in one run: a single 400-token
 * request lasts ~0.1 s, short enough for one scheduling hiccup on the shared cores to
 * move a run's rate by ±8%.
 */
const ROUNDS = process.argv.includes('--quick') ? 1 : 4;
/** Warm-up runs of each path before measuring (see below); --quick: 1. */
const WARM_RUNS = process.argv.includes('--quick') ? 1 : 8;

interface RunResult {
  tokensPerSecond: number;
  ttftMs: number;
  /** CPU time of the generating process (main and decode threads), per 1,000 tokens. */
  cpuMsPer1kTokens: number;
  /** CPU time of the HTTP client (this process), per 1,000 tokens; 0 for direct runs. */
  clientCpuMsPer1kTokens: number;
}

/** utime + stime of a process in ms (Linux /proc; 0 elsewhere). */
function processCpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // USER_HZ = 100
  } catch {
    return 0;
  }
}

function selfCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function directRun(sequences: LlamaContextSequence[], chatWrapper: ChatWrapper, concurrency: number, barrier?: BatchBarrier, rounds = ROUNDS): Promise<RunResult> {
  const cpu0 = selfCpuMs();
  const started = performance.now();
  const ttfts: number[] = [];
  let tokens = 0;
  await Promise.all(sequences.slice(0, concurrency).map(async (sequence) => {
    for (let round = 0; round < rounds; round++) {
      const sent = performance.now();
      const chat = new LlamaChat({ contextSequence: sequence, chatWrapper });
      const history: ChatHistoryItem[] = [{ type: 'user', text: PROMPT }, { type: 'model', response: [] }];
      let first: number | undefined;
      let text = '';
      await chat.generateResponse(history, {
        maxTokens: MAX_TOKENS,
        temperature: 0,
        repeatPenalty: false,
        // What a streaming user of node-llama-cpp does at least: take each piece of text.
        onTextChunk: (t) => { first ??= performance.now(); text += t; },
        onToken: (t) => { tokens += t.length; },
      });
      ttfts.push(first! - sent);
      if (text.length === 0) throw new Error('direct run generated no text');
      chat.dispose({ disposeSequence: false });
      barrier?.idle(sequence); // as the engine does when a request's lease ends
    }
  }));
  const elapsed = performance.now() - started;
  return { tokensPerSecond: (tokens * 1000) / elapsed, ttftMs: median(ttfts), cpuMsPer1kTokens: ((selfCpuMs() - cpu0) * 1000) / tokens, clientCpuMsPer1kTokens: 0 };
}

/**
 * One keep-alive HTTP/1.1 connection of the benchmark client, on a raw socket. The client
 * shares the machine's two cores with the server, so it does as little as it can per
 * received chunk (~5 ms of CPU per 1,000 tokens against ~9 with undici): no HTTP library, no
 * per-event parsing; it follows the chunked framing to find the end of each response,
 * notes when the first content event arrives (TTFT) and reads the exact token count from
 * the final usage event.
 */
class BenchConnection {
  private socket: Socket | undefined;
  private onData: ((chunk: Buffer) => void) | undefined;

  constructor(private readonly port: number) {}

  private connect(): Promise<Socket> {
    if (this.socket && !this.socket.destroyed) return Promise.resolve(this.socket);
    return new Promise((resolve, reject) => {
      const socket = createConnection({ host: '127.0.0.1', port: this.port, noDelay: true }, () => resolve(socket));
      socket.on('error', reject);
      socket.on('data', (chunk: Buffer) => this.onData?.(chunk));
      this.socket = socket;
    });
  }

  /** Sends one streamed chat completion; resolves with the first-content time and the completion tokens. */
  async stream(body: string): Promise<{ first: number; tokens: number }> {
    const socket = await this.connect();
    return new Promise((resolve, reject) => {
      let head = '';
      let inBody = false;
      let chunkLeft = -1; // bytes left in the current chunk (+2 for its CRLF); -1 = expecting a size line
      let sizeLine = '';
      let first: number | undefined;
      let tail = '';
      this.onData = (buf: Buffer) => {
        let at = 0;
        if (!inBody) {
          head += buf.toString('latin1');
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          if (!head.startsWith('HTTP/1.1 200')) { reject(new Error(head.slice(0, 200))); return; }
          inBody = true;
          at = buf.length - (head.length - end - 4);
        }
        while (at < buf.length) {
          if (chunkLeft < 0) {
            const nl = buf.indexOf(10, at);
            if (nl < 0) { sizeLine += buf.toString('latin1', at); return; }
            sizeLine += buf.toString('latin1', at, nl);
            const size = parseInt(sizeLine, 16);
            sizeLine = '';
            at = nl + 1;
            if (size === 0) {
              const usage = /"usage":\{"prompt_tokens":\d+,"completion_tokens":(\d+)/.exec(tail);
              this.onData = undefined;
              resolve({ first: first!, tokens: Number(usage?.[1] ?? 0) });
              return;
            }
            chunkLeft = size + 2;
            continue;
          }
          const take = Math.min(chunkLeft, buf.length - at);
          if (first === undefined && buf.indexOf('"content":"', at) >= 0 && /"content":"[^"]/.test(buf.toString('latin1', at, at + take))) first = performance.now();
          // The usage event is in the last chunk: keep only the end of the stream.
          tail = (tail.length > 4096 ? tail.slice(-2048) : tail) + buf.toString('latin1', at, at + take);
          at += take;
          chunkLeft -= take;
          if (chunkLeft === 0) chunkLeft = -1;
        }
      };
      socket.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    });
  }

  close(): void {
    this.socket?.destroy();
  }
}

async function serverRun(connections: BenchConnection[], serverPid: number, concurrency: number, rounds = ROUNDS): Promise<RunResult> {
  const client0 = selfCpuMs();
  const server0 = processCpuMs(serverPid);
  const started = performance.now();
  const ttfts: number[] = [];
  let tokens = 0;
  const body = JSON.stringify({ model: 'local', messages: [{ role: 'user', content: PROMPT }], max_tokens: MAX_TOKENS, temperature: 0, stream: true, stream_options: { include_usage: true } });
  await Promise.all(connections.slice(0, concurrency).map(async (connection) => {
    for (let round = 0; round < rounds; round++) {
      const sent = performance.now();
      const r = await connection.stream(body);
      if (r.tokens !== MAX_TOKENS || r.first === undefined) throw new Error(`server run: ${r.tokens} tokens, first content ${String(r.first)}`);
      tokens += r.tokens;
      ttfts.push(r.first - sent);
    }
  }));
  const elapsed = performance.now() - started;
  return { tokensPerSecond: (tokens * 1000) / elapsed, ttftMs: median(ttfts), cpuMsPer1kTokens: ((processCpuMs(serverPid) - server0) * 1000) / tokens, clientCpuMsPer1kTokens: ((selfCpuMs() - client0) * 1000) / tokens };
}

function startServerProcess(): Promise<{ url: string; pid: number; stop: () => void }> {
  const cli = fileURLToPath(new URL('../../local-backend/cli.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', cli, '--cpu', '--threads', '1', '--parallel', String(SEQUENCES), '--context-size', String(CONTEXT_SIZE), '--host', '127.0.0.1', '--port', '0', '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`local backend did not start: ${out}`)), 60000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /"url":"(http:\/\/[^"]+)"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1]!, pid: child.pid!, stop: () => child.kill('SIGTERM') });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`local backend exited ${code}: ${out}`)); });
  });
}

export async function benchLocalBackend(): Promise<Record<string, number | string>> {
  const llama = await getLlama({ gpu: false, logLevel: LlamaLogLevel.warn });
  const model = await llama.loadModel({ modelPath: await ensureTinyModel() });
  const context = await model.createContext({ contextSize: CONTEXT_SIZE, sequences: SEQUENCES, threads: 1, flashAttention: false });
  const sequences = Array.from({ length: SEQUENCES }, () => context.getSequence());
  // The same generation with the server's batch barrier (local-backend/batch-barrier.ts)
  // on its context: the server's engine minus HTTP. The plain context is node-llama-cpp
  // as shipped, whose in-step loops (started in one tick, equal lengths) are its best case.
  const barrierContext = await model.createContext({ contextSize: CONTEXT_SIZE, sequences: SEQUENCES, threads: 1, flashAttention: false });
  const barrierSequences = Array.from({ length: SEQUENCES }, () => barrierContext.getSequence());
  const barrier = installBatchBarrier(barrierContext);
  if (!barrier.installed) throw new Error('the batch barrier could not be installed on this node-llama-cpp');
  // Resolved once, as the engine does (resolving from the GGUF template costs ~200 ms).
  const probe = new LlamaChat({ contextSequence: sequences[0]! });
  const chatWrapper = probe.chatWrapper;
  probe.dispose({ disposeSequence: false });
  const server = await startServerProcess();
  const connections = Array.from({ length: SEQUENCES }, () => new BenchConnection(Number(new URL(server.url).port)));
  const report: Record<string, number | string> = { model: 'switchyard-tiny-llama (F32, 64 wide, CPU, threads 1)', max_tokens: MAX_TOKENS };
  try {
    // Warm both paths to their steady state first. node-llama-cpp's per-token JavaScript
    // is still being optimised over the first ~2,000 tokens of a process: with one warm-up
    // run, direct generation measured 2,800 tok/s and ~370 µs CPU per token, after eight
    // 3,750 tok/s and ~270 µs — the runs then measured V8's warm-up, not the server.
    for (let w = 0; w < WARM_RUNS; w++) {
      await directRun(sequences, chatWrapper, 1);
      await directRun(barrierSequences, chatWrapper, 1, barrier);
      await serverRun(connections, server.pid, 1);
    }
    for (const concurrency of [1, 4]) {
      const direct: RunResult[] = [];
      const directBarrier: RunResult[] = [];
      const http: RunResult[] = [];
      // At 1 stream there is no batching to drift out of step, so the sides alternate
      // request by request (the same requests in all, in ROUNDS times as many pairs): this
      // machine's speed drifts by several percent within seconds, and the finer the
      // alternation, the less of that drift lands on one side. At 4 streams each run is
      // ROUNDS requests per client back to back (sustained load, see the top).
      const { pairs, rounds } = concurrency === 1 ? { pairs: PAIRS * ROUNDS, rounds: 1 } : { pairs: PAIRS, rounds: ROUNDS };
      for (let i = 0; i < pairs; i++) {
        // Alternate which side goes first, so drift in machine load hits both alike.
        if (i % 2 === 0) {
          direct.push(await directRun(sequences, chatWrapper, concurrency, undefined, rounds));
          directBarrier.push(await directRun(barrierSequences, chatWrapper, concurrency, barrier, rounds));
        }
        http.push(await serverRun(connections, server.pid, concurrency, rounds));
        if (i % 2 === 1) {
          directBarrier.push(await directRun(barrierSequences, chatWrapper, concurrency, barrier, rounds));
          direct.push(await directRun(sequences, chatWrapper, concurrency, undefined, rounds));
        }
      }
      const pick = (rs: RunResult[]) => ({ tps: median(rs.map((r) => r.tokensPerSecond)), ttft: median(rs.map((r) => r.ttftMs)), cpu: median(rs.map((r) => r.cpuMsPer1kTokens)), client: median(rs.map((r) => r.clientCpuMsPer1kTokens)) });
      const d = pick(direct);
      const db = pick(directBarrier);
      const s = pick(http);
      // Median of adjacent-pair ratios: load drift from other processes cancels within a pair.
      const share = median(http.map((h, i) => h.tokensPerSecond / direct[i]!.tokensPerSecond));
      const shareBarrier = median(http.map((h, i) => h.tokensPerSecond / directBarrier[i]!.tokensPerSecond));
      // The spread of the pair ratios (25th–75th percentile), and direct against direct:
      // +barrier over plain direct, two node-llama-cpp runs with nothing between them but
      // the barrier, which a lone stream never waits on — at 1 stream an A/A pair, whose
      // distance from 1.000 is what this machine's noise alone moves a share.
      const ratios = http.map((h, i) => h.tokensPerSecond / direct[i]!.tokensPerSecond).sort((x, y) => x - y);
      const quartile = (q: number) => ratios[Math.min(ratios.length - 1, Math.floor(ratios.length * q))]!;
      const aa = median(directBarrier.map((b, i) => b.tokensPerSecond / direct[i]!.tokensPerSecond));
      Object.assign(report, {
        [`c${concurrency}_direct_tokens_per_s`]: Math.round(d.tps),
        [`c${concurrency}_server_tokens_per_s`]: Math.round(s.tps),
        [`c${concurrency}_server_share`]: Number(share.toFixed(3)),
        [`c${concurrency}_server_share_p25_p75`]: `${quartile(0.25).toFixed(3)}–${quartile(0.75).toFixed(3)}`,
        [`c${concurrency}_direct_barrier_over_direct`]: Number(aa.toFixed(3)),
        [`c${concurrency}_pairs`]: http.length,
        [`c${concurrency}_direct_barrier_tokens_per_s`]: Math.round(db.tps),
        [`c${concurrency}_server_share_of_direct_barrier`]: Number(shareBarrier.toFixed(3)),
        [`c${concurrency}_direct_barrier_cpu_ms_per_1k_tokens`]: Number(db.cpu.toFixed(1)),
        [`c${concurrency}_direct_cpu_ms_per_1k_tokens`]: Number(d.cpu.toFixed(1)),
        [`c${concurrency}_server_cpu_ms_per_1k_tokens`]: Number(s.cpu.toFixed(1)),
        [`c${concurrency}_client_cpu_ms_per_1k_tokens`]: Number(s.client.toFixed(1)),
        [`c${concurrency}_direct_ttft_ms`]: Number(d.ttft.toFixed(2)),
        [`c${concurrency}_server_ttft_ms`]: Number(s.ttft.toFixed(2)),
      });
    }
  } finally {
    for (const c of connections) c.close();
    server.stop();
    await context.dispose();
    await barrierContext.dispose();
    await model.dispose();
  }
  printTable(report);
  return report;
}

function printTable(r: Record<string, number | string>): void {
  const lines = [
    '',
    'local backend: HTTP server vs node-llama-cpp direct (target: server ≥ 95% of direct tokens/s)',
    '  direct = node-llama-cpp as shipped; +barrier = the same with the server\'s batch barrier (its engine minus HTTP)',
    'concurrency | direct tok/s | +barrier | server tok/s | share  | share of +barrier | direct TTFT ms | server TTFT ms | CPU ms/1k tok: direct | +barrier | server | client',
  ];
  for (const c of [1, 4]) {
    lines.push(`${String(c).padStart(11)} | ${String(r[`c${c}_direct_tokens_per_s`]).padStart(12)} | ${String(r[`c${c}_direct_barrier_tokens_per_s`]).padStart(8)} | ${String(r[`c${c}_server_tokens_per_s`]).padStart(12)} | ${String(r[`c${c}_server_share`]).padStart(6)} | ${String(r[`c${c}_server_share_of_direct_barrier`]).padStart(17)} | ${String(r[`c${c}_direct_ttft_ms`]).padStart(14)} | ${String(r[`c${c}_server_ttft_ms`]).padStart(14)} | ${String(r[`c${c}_direct_cpu_ms_per_1k_tokens`]).padStart(21)} | ${String(r[`c${c}_direct_barrier_cpu_ms_per_1k_tokens`]).padStart(8)} | ${String(r[`c${c}_server_cpu_ms_per_1k_tokens`]).padStart(6)} | ${String(r[`c${c}_client_cpu_ms_per_1k_tokens`]).padStart(6)}`);
  }
  for (const c of [1, 4]) {
    lines.push(`  ${c} stream${c > 1 ? 's' : ''}: ${r[`c${c}_pairs`]} pairs; share p25–p75 ${r[`c${c}_server_share_p25_p75`]}; +barrier over direct ${r[`c${c}_direct_barrier_over_direct`]}${c === 1 ? ' (an A/A pair at 1 stream: the barrier never waits for a lone stream)' : ''}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** Hook for loadtest/bench/run.ts (its context is not needed: this section brings its own servers). */
export function runBench(_ctx?: unknown): Promise<Record<string, number | string>> {
  return benchLocalBackend();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  benchLocalBackend().then(
    (report) => process.stdout.write(`${JSON.stringify(report, null, 2)}\n`),
    (err: unknown) => { process.stderr.write(`${String(err)}\n`); process.exit(1); },
  );
}
