// Driving a resumable message reader in tests: every message from a chunked stream, or the coded error a
// stream ends in together with how much the queue had allocated by then (the "nothing past the cap" proof).

import { expect } from "bun:test";
import { ByteQueue } from "../../relay/rfb/byte-queue.ts";
import { RfbError } from "../../relay/rfb/errors.ts";
import { DEFAULT_LIMITS } from "../../relay/rfb/limits.ts";

export interface Reader<M> {
  next(q: ByteQueue): M | null;
}

/** All messages of the chunks, pushed one by one; the queue must end empty. */
export function parseAllWith<M>(reader: Reader<M>, chunks: Uint8Array[], maxPending = 1 << 20): M[] {
  const q = new ByteQueue(maxPending, 16);
  const out: M[] = [];
  for (const c of chunks) {
    q.push(c);
    for (let m = reader.next(q); m !== null; m = reader.next(q)) out.push(m);
  }
  expect(q.length).toBe(0);
  return out;
}

/** The RfbError code the bytes end in ("" if none) and the queue's capacity at that point. */
export function errorOfWith<M>(reader: Reader<M>, bytes: Uint8Array): { code: string; capacity: number } {
  const q = new ByteQueue(DEFAULT_LIMITS.maxPendingBytes, 64);
  q.push(bytes);
  try {
    while (reader.next(q) !== null) {}
  } catch (e) {
    if (e instanceof RfbError) return { code: e.code, capacity: q.capacity };
    throw e;
  }
  return { code: "", capacity: q.capacity };
}
