/**
 * The backend key never reaches a client. Some upstreams echo the credential they were
 * given ("Incorrect API key provided: ..."), in error bodies, answers or stream events;
 * every verbatim occurrence in what the gateway relays is replaced by `[redacted]`.
 * Keys shorter than 8 characters are placeholders ("none") and are not looked for.
 */
const MASK = '[redacted]';

/** Secrets as bytes, encoded once (Buffer.includes with a string encodes it per call). */
const secretBytes = new Map<string, Buffer>();

const worthMasking = (secret: string | undefined): secret is string => secret !== undefined && secret.length >= 8;

/** Text as it goes to the client (streamed writes, translated bodies). */
export function maskSecret(text: string, secret: string | undefined): string {
  return worthMasking(secret) && text.includes(secret) ? text.split(secret).join(MASK) : text;
}

/** Bytes or text as they go to the client: unchanged (not copied) when the key is absent. */
export function maskSecretIn<T extends Uint8Array | string>(body: T, secret: string | undefined): T {
  if (!worthMasking(secret)) return body;
  if (typeof body === 'string') return maskSecret(body, secret) as T;
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  let needle = secretBytes.get(secret);
  if (!needle) {
    if (secretBytes.size > 1000) secretBytes.clear();
    secretBytes.set(secret, (needle = Buffer.from(secret)));
  }
  if (!b.includes(needle)) return body;
  return Buffer.from(b.toString('utf8').split(secret).join(MASK)) as unknown as T;
}
