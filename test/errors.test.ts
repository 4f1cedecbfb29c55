/** docs/errors.md lists exactly the error table, and every error has OpenAI's shape. */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { ERROR_TABLE, GatewayError, toOpenAIError, UpstreamHttpError } from '../gateway/errors.js';

describe('the error table', () => {
  it('is documented row for row in docs/errors.md', () => {
    const doc = readFileSync('docs/errors.md', 'utf8');
    const rows = [...doc.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \| `([a-z_]+)` \| (.+?) \|$/gm)].map((m) => [m[1], Number(m[2]), m[3], m[4]]);
    const table = Object.entries(ERROR_TABLE).map(([code, s]) => [code, s.status, s.type, s.message]);
    expect(rows).toEqual(table);
  });

  it('turns every error into an OpenAI error body, unknown ones into a generic 500', () => {
    const known = toOpenAIError(new GatewayError('model_not_found', { param: 'model' }));
    expect(known.status).toBe(404);
    expect(JSON.parse(String(known.body))).toEqual({ error: { message: ERROR_TABLE.model_not_found.message, type: 'invalid_request_error', param: 'model', code: 'model_not_found' } });
    const unknown = toOpenAIError(new Error('secret internals at /srv/app.js:12'));
    expect(unknown.status).toBe(500);
    expect(String(unknown.body)).not.toContain('secret internals');
    const passthrough = toOpenAIError(new UpstreamHttpError(422, '{"error":{"message":"x"}}'));
    expect(passthrough).toMatchObject({ status: 422, body: '{"error":{"message":"x"}}' });
  });
});
