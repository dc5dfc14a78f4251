// Byte helpers for tests: hex literals, concatenation, and feeding a stream to a parser split at every
// point (and again from copied slices with a non-zero byteOffset), the resumability proof of STYLE.md.

export function hex(s: string): Uint8Array {
  const clean = s.replace(/#[^\n]*/g, "").replace(/\s+/g, "");
  if (clean.length % 2 !== 0) throw new Error(`odd hex length: ${clean}`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function cat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const arrs = parts.map((p) => (p instanceof Uint8Array ? p : new Uint8Array(p)));
  const out = new Uint8Array(arrs.reduce((n, a) => n + a.length, 0));
  let o = 0;
  for (const a of arrs) {
    out.set(a, o);
    o += a.length;
  }
  return out;
}

/** A copy of b that lives at a non-zero byteOffset inside a larger buffer. */
export function offsetCopy(b: Uint8Array, pad = 7): Uint8Array {
  const big = new Uint8Array(b.length + pad * 2).fill(0xee);
  big.set(b, pad);
  return big.subarray(pad, pad + b.length);
}

/** The chunkings every parser is run through: whole, byte by byte, every two-way split. */
export function* splits(b: Uint8Array): Generator<{ name: string; chunks: Uint8Array[] }> {
  yield { name: "whole", chunks: [b] };
  yield { name: "bytewise", chunks: Array.from(b, (_, i) => b.subarray(i, i + 1)) };
  for (let i = 1; i < b.length; i++) {
    yield { name: `split@${i}`, chunks: [b.subarray(0, i), b.subarray(i)] };
    yield { name: `split@${i} (copies)`, chunks: [offsetCopy(b.slice(0, i)), offsetCopy(b.slice(i))] };
  }
}

/** Deterministic pseudo-random bytes (xorshift32). */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** Deterministic noise (xorshift32), X bytes included, so a compare that forgets the mask shows up. */
export function noiseFrame(width: number, height: number, seed = 1): Uint8Array {
  const out = new Uint8Array(width * height * 4);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = s >>> 24;
  }
  return out;
}
