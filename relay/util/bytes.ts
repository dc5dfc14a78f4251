// Byte-array helpers shared by the wire writers (RFB messages, DER).

/** Concatenates parts into one new buffer (one transport write per update, one DER element). */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}
