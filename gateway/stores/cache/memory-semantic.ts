/**
 * Semantic records kept in process. With store.kind memory the index needs no backing
 * at all (pass none to createSemanticIndex); this implementation exists so the record
 * store contract has a reference to run against, and for tests. Records are copied
 * through the wire format so callers cannot alias stored vectors.
 */
import { LRUCache } from 'lru-cache';
import type { SemanticRecord, SemanticRecordStore } from './types.js';
import { decodeRecord, encodeRecord } from './semantic-records.js';

export function createMemorySemanticRecords(opts: { maxRecords: number }): SemanticRecordStore {
  const byPartition = new Map<string, Map<string, Buffer>>();
  const lru = new LRUCache<string, { partition: string; id: string; expiresAtMs: number }>({
    max: opts.maxRecords,
    dispose: (v) => {
      const p = byPartition.get(v.partition);
      p?.delete(v.id);
      if (p && p.size === 0) byPartition.delete(v.partition);
    },
  });
  return {
    async add(partition, record) {
      if (record.entry.expiresAtMs <= Date.now()) return;
      const slot = `${partition}\0${record.id}`;
      lru.delete(slot);
      let p = byPartition.get(partition);
      if (!p) byPartition.set(partition, (p = new Map()));
      p.set(record.id, encodeRecord(record));
      lru.set(slot, { partition, id: record.id, expiresAtMs: record.entry.expiresAtMs });
    },
    async loadNew(partition, known) {
      const p = byPartition.get(partition);
      if (!p) return [];
      const now = Date.now();
      const out: SemanticRecord[] = [];
      for (const [id, bytes] of [...p]) {
        if (known.has(id)) continue;
        const r = decodeRecord(bytes);
        if (!r || r.entry.expiresAtMs <= now) {
          lru.delete(`${partition}\0${id}`);
          continue;
        }
        out.push(r);
      }
      return out;
    },
    async close() {
      lru.clear();
    },
  };
}
