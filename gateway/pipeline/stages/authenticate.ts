/**
 * authenticate: `Authorization: Bearer <virtual key>` → ctx.key. Keys are looked up by
 * their SHA-256 digest only: the one comparison that runs (the map's, on equal hashes)
 * is between digests, which a caller cannot steer byte by byte, so its time says
 * nothing about any key (the same argument as comparing HMACs). A key's `models` globs
 * limit the aliases it may use. With no keys configured, auth is off.
 */
import { hash } from 'node:crypto';
import type { KeyConfig } from '../../config/schema.js';
import { GatewayError } from '../../errors.js';
import type { RequestContext, Stage } from '../context.js';
import type { GatewayDeps } from '../deps.js';
import { compileGlobs } from '../../routing/glob.js';

interface KeyEntry {
  key: KeyConfig;
  allows: (alias: string) => boolean;
}

/**
 * One-shot crypto.hash straight to a base64 string: no Hash object and no Buffer per
 * request (each is an object the young-generation GC must process: a weak handle, an
 * ArrayBuffer to sweep).
 */
export function digestKey(secret: string): string {
  return hash('sha256', secret, 'base64');
}

const BEARER = /^Bearer\s+/i;

/** Builds the lookup once per config; also used by the usage/admin endpoints. */
export function createKeyIndex(keys: readonly KeyConfig[]) {
  const byDigest = new Map<string, KeyEntry>();
  for (const k of keys) byDigest.set(digestKey(k.key), { key: k, allows: compileGlobs(k.models) });
  return {
    enabled: keys.length > 0,
    /** The entry for a bearer token, or undefined. */
    find(authorization: string | undefined): KeyEntry | undefined {
      if (!authorization) return undefined;
      const m = BEARER.exec(authorization);
      if (!m) return undefined;
      const token = authorization.slice(m[0].length).trim();
      return token ? byDigest.get(digestKey(token)) : undefined;
    },
  };
}

export type KeyIndex = ReturnType<typeof createKeyIndex>;

export function createAuthenticateStage(deps: GatewayDeps, index: KeyIndex = createKeyIndex(deps.config.keys)): Stage {
  if (!index.enabled) return function authenticate() {};
  return function authenticate(ctx: RequestContext) {
    const entry = index.find(ctx.req.headers.authorization);
    if (!entry) {
      throw new GatewayError('invalid_api_key', {
        message: ctx.req.headers.authorization ? 'Incorrect API key provided.' : 'You did not provide an API key. Send it as "Authorization: Bearer <key>".',
      });
    }
    ctx.key = entry.key;
    if (!entry.allows(ctx.modelAlias)) {
      throw new GatewayError('model_not_allowed', { message: `This API key may not use the model '${ctx.modelAlias}'.`, param: 'model' });
    }
  };
}
