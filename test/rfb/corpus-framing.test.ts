// The protocol core against every recorded session of shared/corpus/ (TigerVNC Xvnc 1.12): the handshake
// through the client role, then every update of every session framed through the codec interface exactly
// where the index says each rect lies, and decoded (SessionDecoder over the TS twin) to the expected
// framebuffer at every checkpoint. test/codec/corpus.test.ts decodes the same sessions on all three kernel
// implementations through the replay path.

import { describe, expect, test } from "bun:test";
import { SessionDecoder } from "../../relay/codec/decoder.ts";
import { defaultRegistry } from "../../relay/codec/registry.ts";
import { TsKernels } from "../../relay/codec/ts-kernels.ts";
import { ByteQueue } from "../../relay/rfb/byte-queue.ts";
import { RfbClient } from "../../relay/rfb/client.ts";
import { RfbError } from "../../relay/rfb/errors.ts";
import { DEFAULT_LIMITS } from "../../relay/rfb/limits.ts";
import { type ServerMessage, ServerMessageReader } from "../../relay/rfb/server-messages.ts";
import {
  type CorpusSession,
  compareRgb,
  corpusPixelFormat,
  loadCorpus,
  loadExpectedFinal,
} from "../helpers/corpus.ts";

interface Framed {
  rects: { offset: number; length: number; x: number; y: number; w: number; h: number; enc: number }[];
  updates: number;
  mismatches: Map<number, number>;
  error?: { code: string; at: number };
}

/** Frames (and with `decode`, applies) a session from its first message after ServerInit. */
function frame(name: CorpusSession, decode: boolean, chunk = 1 << 16): Framed {
  const { s2c, index } = loadCorpus(name);
  const pf = corpusPixelFormat(index.pixelFormat);
  const encodings = new Set(index.setEncodings.filter((e) => defaultRegistry.has(e) || e < 0));
  const reader = new ServerMessageReader({
    limits: DEFAULT_LIMITS,
    pf,
    width: index.width,
    height: index.height,
    encodings,
  });
  const q = new ByteQueue(DEFAULT_LIMITS.maxPendingBytes);
  const decoder = new SessionDecoder(new TsKernels(), index.width, index.height, pf);
  const checkpoints = new Set(index.checkpoints.map((c) => c.afterUpdate));
  const out: Framed = { rects: [], updates: 0, mismatches: new Map() };
  let start = index.handshakeBytes;
  try {
    for (let o = index.handshakeBytes; o < s2c.length; o += chunk) {
      q.push(s2c.subarray(o, Math.min(o + chunk, s2c.length)));
      for (let m: ServerMessage | null = reader.next(q); m !== null; m = reader.next(q)) {
        const end = index.handshakeBytes + q.consumed;
        if (m.type === "Rect") {
          out.rects.push({ offset: start, length: end - start, ...m.rect, enc: m.rect.encoding });
          if (decode && m.rect.encoding >= 0) decoder.decode(m.rect, m.body);
        } else if (m.type === "FramebufferUpdateEnd") {
          if (decode && checkpoints.has(out.updates)) {
            out.mismatches.set(out.updates, compareRgb(decoder.pixels(), loadExpectedFinal()));
          }
          out.updates++;
        }
        start = end;
      }
    }
  } catch (e) {
    if (!(e instanceof RfbError)) throw e;
    out.error = { code: e.code, at: start };
  }
  return out;
}

const indexRects = (name: CorpusSession) => loadCorpus(name).index.updates.flatMap((u) => u.rects);

describe("corpus: handshake through the client role", () => {
  for (const name of ["raw", "copyrect", "rre", "hextile", "zrle", "tight"] as const) {
    test(`${name}: ServerInit parsed at the recorded offset`, () => {
      const { s2c, index } = loadCorpus(name);
      const c = new RfbClient({ send: () => {}, decode: false });
      c.feed(s2c.subarray(0, index.handshakeBytes));
      expect(c.ready).toBe(true);
      expect(c.info).toMatchObject({ width: index.width, height: index.height, name: index.desktopName });
    });
  }
});

describe("corpus: framing and decoding", () => {
  for (const name of ["raw", "copyrect", "rre", "hextile", "zrle", "tight"] as const) {
    test(`${name}: every rect framed where the index says, decoded pixel-exact at every checkpoint`, () => {
      const got = frame(name, true);
      expect(got.error).toBeUndefined();
      expect(got.rects.map((r) => [r.offset, r.length, r.enc])).toEqual(
        indexRects(name).map((r) => [r.offset, r.length, r.enc]),
      );
      expect(got.updates).toBe(loadCorpus(name).index.updates.length);
      expect([...got.mismatches.keys()]).toEqual(
        loadCorpus(name).index.checkpoints.map((c) => c.afterUpdate),
      );
      for (const [, bad] of got.mismatches) expect(bad).toBe(0);
    });
  }

  for (const name of ["zrle", "tight"] as const) {
    test(`${name}: the same rects when the stream arrives in odd-sized chunks`, () => {
      const a = frame(name, false, 1 << 16);
      const b = frame(name, false, 4093);
      expect(b.error).toBeUndefined();
      expect(b.rects).toEqual(a.rects);
    });
  }

  test("hextile: the same result when the stream arrives in odd-sized chunks", () => {
    const a = frame("hextile", false, 1 << 16);
    const b = frame("hextile", false, 4093);
    expect(b.rects).toEqual(a.rects);
  });

  test("one flipped bit in a Raw rect makes the checkpoint fail (the check itself is sound)", () => {
    const { s2c, index } = loadCorpus("raw");
    const first = index.checkpoints[0]!.afterUpdate;
    // The last rect applied before the first checkpoint: nothing overwrites its pixels before the check.
    const update = index.updates.filter((u, i) => i <= first && u.rects.length > 0).at(-1)!;
    const rect = update.rects.at(-1)!;
    const at = rect.offset + 12; // first pixel's R byte
    const saved = s2c[at]!;
    (s2c as Uint8Array)[at] = saved ^ 0x10;
    try {
      expect(frame("raw", true).mismatches.get(first)).toBe(1);
    } finally {
      (s2c as Uint8Array)[at] = saved;
    }
  });
});
