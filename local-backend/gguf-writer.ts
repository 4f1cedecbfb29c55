/**
 * A minimal GGUF (version 3) serializer: metadata key/values plus F32 tensors.
 * Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
 *
 * Used by tiny-model.ts to generate the offline demo/test model. Metadata values are
 * typed explicitly (llama.cpp rejects e.g. a token id stored as int32 where it expects
 * uint32), and every tensor's offset is padded to `general.alignment`, in order.
 * Pure function of its input: no I/O here.
 */

/** GGUF metadata value types (gguf.md, "gguf_metadata_value_type"). */
const T = { uint32: 4, int32: 5, float32: 6, bool: 7, string: 8, array: 9 } as const;
/** ggml tensor type F32. */
const GGML_TYPE_F32 = 0;
const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
const GGUF_VERSION = 3;

export type GgufValue =
  | { type: 'uint32'; value: number }
  | { type: 'int32'; value: number }
  | { type: 'float32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: 'string'; value: readonly string[] }
  | { type: 'array'; itemType: 'float32' | 'int32'; value: ArrayLike<number> };

export interface GgufTensor {
  name: string;
  /** ggml order: dims[0] is the innermost (contiguous) dimension. */
  dims: readonly number[];
  data: Float32Array;
}

export interface GgufFile {
  /** Written in this order; `general.alignment` (uint32) is honoured when present, else 32. */
  metadata: ReadonlyArray<readonly [string, GgufValue]>;
  tensors: readonly GgufTensor[];
}

/** Growable little-endian byte sink. */
class ByteSink {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u32(v: number): void { this.reserve(4); this.view.setUint32(this.length, v, true); this.length += 4; }
  i32(v: number): void { this.reserve(4); this.view.setInt32(this.length, v, true); this.length += 4; }
  f32(v: number): void { this.reserve(4); this.view.setFloat32(this.length, v, true); this.length += 4; }
  u64(v: number): void { this.reserve(8); this.view.setBigUint64(this.length, BigInt(v), true); this.length += 8; }
  u8(v: number): void { this.reserve(1); this.buf[this.length++] = v; }
  bytes(b: Uint8Array): void { this.reserve(b.length); this.buf.set(b, this.length); this.length += b.length; }
  str(s: string): void { const b = new TextEncoder().encode(s); this.u64(b.length); this.bytes(b); }
  padTo(alignment: number): void { while (this.length % alignment !== 0) this.u8(0); }
  result(): Uint8Array { return this.buf.slice(0, this.length); }
}

function writeValue(out: ByteSink, v: GgufValue): void {
  switch (v.type) {
    case 'uint32': out.u32(T.uint32); out.u32(v.value); return;
    case 'int32': out.u32(T.int32); out.i32(v.value); return;
    case 'float32': out.u32(T.float32); out.f32(v.value); return;
    case 'bool': out.u32(T.bool); out.u8(v.value ? 1 : 0); return;
    case 'string': out.u32(T.string); out.str(v.value); return;
    case 'array':
      out.u32(T.array);
      if (v.itemType === 'string') {
        out.u32(T.string); out.u64(v.value.length);
        for (const s of v.value) out.str(s);
      } else {
        out.u32(T[v.itemType]); out.u64(v.value.length);
        const put = v.itemType === 'float32' ? out.f32.bind(out) : out.i32.bind(out);
        for (let i = 0; i < v.value.length; i++) put(v.value[i]!);
      }
      return;
  }
}

export function serializeGguf(file: GgufFile): Uint8Array {
  const alignEntry = file.metadata.find(([k]) => k === 'general.alignment');
  const alignment = alignEntry && alignEntry[1].type === 'uint32' ? alignEntry[1].value : 32;
  const out = new ByteSink();
  out.u32(GGUF_MAGIC);
  out.u32(GGUF_VERSION);
  out.u64(file.tensors.length);
  out.u64(file.metadata.length);
  for (const [key, value] of file.metadata) {
    out.str(key);
    writeValue(out, value);
  }
  // Tensor infos: offsets are relative to the start of the (aligned) data section.
  let offset = 0;
  for (const t of file.tensors) {
    const elements = t.dims.reduce((a, b) => a * b, 1);
    if (elements !== t.data.length) throw new Error(`tensor ${t.name}: dims ${t.dims.join('x')} != ${t.data.length} values`);
    out.str(t.name);
    out.u32(t.dims.length);
    for (const d of t.dims) out.u64(d);
    out.u32(GGML_TYPE_F32);
    out.u64(offset);
    offset += Math.ceil((elements * 4) / alignment) * alignment;
  }
  out.padTo(alignment);
  for (const t of file.tensors) {
    out.bytes(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    out.padTo(alignment);
  }
  return out.result();
}
