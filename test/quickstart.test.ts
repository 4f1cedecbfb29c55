/**
 * The README's quickstart: `npm start` on the shipped config/gateway.yaml, with no
 * environment and no network, serves the in-process demo model under `local` and
 * `local-embed`, and names the missing variable for cloud aliases.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import OpenAI from 'openai';

let child: ChildProcess;
let client: OpenAI;
let out = '';

beforeAll(async () => {
  // PORT=0: any free port; the start-up line says which.
  child = spawn(process.execPath, ['bin/switchyard.js'], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', PORT: '0' } });
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`gateway did not start: ${out}`)), 30000);
    child.stdout!.on('data', () => {
      const m = /"port":(\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
  });
  client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'anything', maxRetries: 0 });
}, 40000);

afterAll(() => {
  child?.kill('SIGTERM');
});

describe('the quickstart', () => {
  it('starts on the shipped config with no environment and serves the demo model', async () => {
    const r = await client.chat.completions.create({ model: 'local', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 });
    expect(r.choices[0].message.content!.length).toBeGreaterThan(0);
    expect(r.usage?.completion_tokens).toBe(8);
    const e = await client.embeddings.create({ model: 'local-embed', input: 'hello' });
    expect(e.data[0].embedding.length).toBeGreaterThan(0);
    const models = (await client.models.list()).data.map((m) => m.id);
    expect(models).toEqual(expect.arrayContaining(['local', 'local-embed', 'gpt-4o-mini', 'claude-sonnet']));
  });

  it('answers 503 naming the variable for a cloud alias without its key', async () => {
    const err = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((err as Error).message).toContain('OPENAI_API_KEY');
    expect(out).not.toMatch(/"level":"(error|fatal)".*"msg":"(?!request)/);
  });
});
