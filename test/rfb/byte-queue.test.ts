// ByteQueue's memory: it grows to fit what a peer may legitimately send (a whole Raw rect), refuses more
// than maxPending before copying anything, and gives the memory back once the large message is consumed,
// so an idle session holds its initial capacity, not the largest frame it ever received.

import { expect, test } from "bun:test";
import { ByteQueue } from "../../relay/rfb/byte-queue.ts";
import { codeOf } from "../helpers/errors.ts";

test("grows for a large message, shrinks back to the initial capacity once it is consumed", () => {
  const q = new ByteQueue(8 * 1024 * 1024, 1024);
  expect(q.capacity).toBe(1024);
  const big = new Uint8Array(1024 * 1024).fill(7);
  q.push(big);
  expect(q.capacity).toBeGreaterThanOrEqual(1024 * 1024);
  expect(q.take(big.length)).toEqual(big);
  // Still large until the next chunk arrives (views from peek stay valid until a push).
  expect(q.capacity).toBeGreaterThanOrEqual(1024 * 1024);
  q.push(Uint8Array.of(1, 2, 3));
  expect(q.capacity).toBe(1024);
  expect([q.u8(0), q.u8(1), q.u8(2), q.length]).toEqual([1, 2, 3, 3]);
});

test("does not shrink while bytes are pending, and refuses more than maxPending before copying", () => {
  const q = new ByteQueue(4096, 256);
  q.push(new Uint8Array(3000));
  q.skip(2999);
  q.push(Uint8Array.of(9));
  expect(q.capacity).toBeGreaterThan(256); // one byte was still pending: kept
  expect([q.length, q.u8(1)]).toEqual([2, 9]);
  const before = q.capacity;
  expect(codeOf(() => q.push(new Uint8Array(5000)))).toBe("LIMIT_EXCEEDED");
  expect(q.capacity).toBe(before);
});
