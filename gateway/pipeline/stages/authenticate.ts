/**
 * authenticate: `Authorization: Bearer <virtual key>` → ctx.key; authorizeModel: the
 * key may use the alias it asked for. Keys are looked up by
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
  const byKey = new Map<KeyConfig, KeyEntry>();
  for (const k of keys) {
    const entry = { key: k, allows: compileGlobs(k.models) };
    byDigest.set(digestKey(k.key), entry);
    byKey.set(k, entry);
  }
  return {
    enabled: keys.length > 0,
    /** The key's `models` globs admit the alias (a key this index does not hold admits nothing). */
    allows(key: KeyConfig, alias: string): boolean {
      return byKey.get(key)?.allows(alias) ?? false;
    },
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

/**
 * The first stage: the key comes from a header, so a request without a valid one is
 * refused before its body is parsed (parsing a crafted 10 MiB body cost 1.4 s of event
 * loop, and needs no key at all when authentication waits for the parse).
 */
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
  };
}

/** After parseRequest (the alias is in the body): a key's `models` globs limit the aliases it may use. */
export function createAuthorizeModelStage(deps: GatewayDeps, index: KeyIndex = createKeyIndex(deps.config.keys)): Stage {
  if (!index.enabled) return function authorizeModel() {};
  return function authorizeModel(ctx: RequestContext) {
    if (ctx.key && !index.allows(ctx.key, ctx.modelAlias)) {
      throw new GatewayError('model_not_allowed', { message: `This API key may not use the model '${ctx.modelAlias}'.`, param: 'model' });
    }
  };
}
