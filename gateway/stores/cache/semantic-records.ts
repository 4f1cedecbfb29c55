/**
 * Wire format of a semantic record (shared by the memory and Redis record stores):
 * JSON with the vector as base64 of its little-endian float32 bytes, so it is exact
 * and a quarter of the size of a number array.
 */
import { decodeEntry, type CacheEntry } from '../../cache/entry.js';
import type { SemanticRecord } from './types.js';

export function encodeRecord(r: SemanticRecord): Buffer {
  const vec = Buffer.from(r.vector.buffer, r.vector.byteOffset, r.vector.byteLength).toString('base64');
  return Buffer.from(JSON.stringify({ id: r.id, vec, entry: r.entry }), 'utf8');
}

export function decodeRecord(bytes: Uint8Array): SemanticRecord | undefined {
  try {
    const raw = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as { id?: unknown; vec?: unknown; entry?: unknown };
    if (typeof raw.id !== 'string' || typeof raw.vec !== 'string') return undefined;
    const entry: CacheEntry | undefined = decodeEntry(JSON.stringify(raw.entry));
    if (!entry) return undefined;
    const buf = Buffer.from(raw.vec, 'base64');
    // Copy into a fresh, aligned buffer: Float32Array needs a 4-byte aligned offset.
    const vector = new Float32Array(buf.byteLength / 4);
    new Uint8Array(vector.buffer).set(buf);
    return { id: raw.id, vector, entry };
  } catch {
    return undefined;
  }
}
