/**
 * authenticate: `Authorization: Bearer <virtual key>` → ctx.key. Keys are looked up by
 * their SHA-256 digest and confirmed with timingSafeEqual, so the comparison time
 * says nothing about the key. A key's `models` globs limit the aliases it may use.
 * With no keys configured, auth is off.
 */
import { hash, timingSafeEqual } from 'node:crypto';
import type { KeyConfig } from '../../config/schema.js';
import { GatewayError } from '../../errors.js';
import type { RequestContext, Stage } from '../context.js';
import type { GatewayDeps } from '../deps.js';
import { compileGlobs } from '../../routing/glob.js';

interface KeyEntry {
  digest: Buffer;
  key: KeyConfig;
  allows: (alias: string) => boolean;
}

/** One-shot crypto.hash: no Hash object per request (each carries a weak handle the young GC must process). */
export function digestKey(secret: string): Buffer {
  return hash('sha256', secret, 'buffer') as unknown as Buffer;
}

/** Builds the lookup once per config; also used by the usage/admin endpoints. */
export function createKeyIndex(keys: readonly KeyConfig[]) {
  const byDigest = new Map<string, KeyEntry>();
  for (const k of keys) {
    const digest = digestKey(k.key);
    byDigest.set(digest.toString('base64'), { digest, key: k, allows: compileGlobs(k.models) });
  }
  return {
    enabled: keys.length > 0,
    /** The entry for a bearer token, or undefined. */
    find(authorization: string | undefined): KeyEntry | undefined {
      if (!authorization) return undefined;
      const m = /^Bearer\s+(.+)$/i.exec(authorization);
      if (!m) return undefined;
      const digest = digestKey(m[1].trim());
      const entry = byDigest.get(digest.toString('base64'));
      return entry && timingSafeEqual(entry.digest, digest) ? entry : undefined;
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
