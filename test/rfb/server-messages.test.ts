// Server→client message parsing (the relay as a device's client): every message and pseudo-rect the core
// frames, split at every point and from copied slices, and each framing row of bad-inputs.md table B.

import { describe, expect, test } from "bun:test";
import { ByteQueue } from "../../relay/rfb/byte-queue.ts";
import { Encoding, PseudoEncoding } from "../../relay/rfb/constants.ts";
import { DEFAULT_LIMITS, limitsWith, type RfbLimits } from "../../relay/rfb/limits.ts";
import { CANONICAL_FORMAT, type PixelFormat } from "../../relay/rfb/pixel-format.ts";
import { type ServerMessage, ServerMessageReader } from "../../relay/rfb/server-messages.ts";
import {
  bellMsg,
  desktopNameBody,
  endOfContinuousUpdatesMsg,
  framebufferUpdateHeader,
  rectHeader,
  serverCutTextMsg,
  serverFenceMsg,
} from "../../relay/rfb/writer.ts";
import { cat, hex, splits } from "../helpers/bytes.ts";
import { codeOf } from "../helpers/errors.ts";
import { errorOfWith, parseAllWith } from "../helpers/parse.ts";

const ALL = new Set<number>([
  Encoding.Raw,
  Encoding.CopyRect,
  PseudoEncoding.DesktopSize,
  PseudoEncoding.ExtendedDesktopSize,
  PseudoEncoding.LastRect,
  PseudoEncoding.Cursor,
  PseudoEncoding.DesktopName,
]);

function reader(
  o: { w?: number; h?: number; pf?: PixelFormat; encodings?: Set<number>; limits?: Partial<RfbLimits> } = {},
) {
  return new ServerMessageReader({
    limits: limitsWith(o.limits),
    pf: o.pf ?? CANONICAL_FORMAT,
    width: o.w ?? 64,
    height: o.h ?? 48,
    encodings: o.encodings ?? ALL,
  });
}

const parseAll = (chunks: Uint8Array[]): ServerMessage[] => parseAllWith(reader(), chunks);

const errorOf = (bytes: Uint8Array, o: Parameters<typeof reader>[0] = {}) => errorOfWith(reader(o), bytes);

const rawPixels = (w: number, h: number) => Uint8Array.from({ length: w * h * 4 }, (_, i) => (i * 7) & 255);

const stream = cat(
  framebufferUpdateHeader(4),
  rectHeader(1, 2, 3, 2, Encoding.Raw), // 3×2 raw: 24 bytes
  rawPixels(3, 2),
  rectHeader(10, 10, 3, 2, Encoding.CopyRect),
  hex("0001 0002"), // from 1,2
  rectHeader(2, 1, 4, 3, PseudoEncoding.Cursor), // 4×3 cursor, hotspot 2,1: 48 pixel bytes + mask 1×3
  new Uint8Array(48).fill(9),
  hex("f0 f0 f0"),
  rectHeader(0, 0, 0, 0, PseudoEncoding.DesktopName),
  desktopNameBody("büro"),
  bellMsg(),
  framebufferUpdateHeader(0xffff), // streamed: ended by LastRect
  rectHeader(0, 0, 1, 1, Encoding.Raw),
  hex("01020300"),
  rectHeader(0, 0, 0, 0, PseudoEncoding.LastRect),
  serverCutTextMsg("clip"),
  endOfContinuousUpdatesMsg(),
  serverFenceMsg(0x80000000, hex("aa")),
  framebufferUpdateHeader(0), // empty update
  hex("01 00 0000 0000"), // SetColourMapEntries, 0 entries would still be wrong in true colour: see below
);

describe("server messages", () => {
  test("every message and pseudo-rect, split at every point and from copied slices, parses the same", () => {
    const body = stream.subarray(0, stream.length - 6);
    let reference: ServerMessage[] | null = null;
    for (const { name, chunks } of splits(body)) {
      const got = parseAll(chunks);
      reference ??= got;
      expect({ name, got }).toEqual({ name, got: reference });
    }
    expect(reference!.map((m) => m.type)).toEqual([
      "FramebufferUpdateStart",
      "Rect",
      "Rect",
      "Cursor",
      "DesktopName",
      "FramebufferUpdateEnd",
      "Bell",
      "FramebufferUpdateStart",
      "Rect",
      "FramebufferUpdateEnd",
      "ServerCutText",
      "EndOfContinuousUpdates",
      "ServerFence",
      "FramebufferUpdateStart",
      "FramebufferUpdateEnd",
    ]);
    expect(reference![3]).toMatchObject({ type: "Cursor", hotX: 2, hotY: 1, width: 4, height: 3 });
    expect(reference![4]).toEqual({ type: "DesktopName", name: "büro" });
  });

  test("DesktopSize and ExtendedDesktopSize change the bounds later rects are checked against", () => {
    const s = cat(
      framebufferUpdateHeader(3),
      rectHeader(0, 0, 200, 100, PseudoEncoding.DesktopSize),
      rectHeader(0, 0, 300, 200, PseudoEncoding.ExtendedDesktopSize),
      hex("01 000000 00000001 0000 0000 012c 00c8 00000000"),
      rectHeader(250, 150, 50, 50, Encoding.CopyRect),
      hex("0000 0000"),
    );
    const got = parseAll([s]);
    expect(got[1]).toEqual({ type: "DesktopSize", width: 200, height: 100 });
    expect(got[2]).toMatchObject({ type: "ExtendedDesktopSize", width: 300, height: 200 });
    expect(got[3]).toMatchObject({ type: "Rect" });
  });
});

describe("table B: malicious server messages", () => {
  const fbu = (...parts: Uint8Array[]) => cat(framebufferUpdateHeader(1), ...parts);

  test("unknown message types close the session", () => {
    for (const t of [4, 5, 127, 249, 251, 255])
      expect(errorOf(new Uint8Array([t, 0, 0, 0])).code).toBe("UNKNOWN_MESSAGE");
    expect(errorOf(hex("fa 00 01 01")).code).toBe("UNKNOWN_MESSAGE"); // xvp was never negotiated
  });

  test("ServerCutText of 0xFFFFFFFF is refused from its header; over the cap is skipped, never stored", () => {
    const r = errorOf(hex("03 000000 ffffffff"));
    expect(r.code).toBe("BAD_MESSAGE");
    expect(r.capacity).toBeLessThanOrEqual(64);
    const len = DEFAULT_LIMITS.maxCutText + 10;
    const q = new ByteQueue(1 << 16, 64);
    const rd = reader();
    q.push(hex(`03 000000 ${len.toString(16).padStart(8, "0")}`));
    expect(rd.next(q)).toEqual({ type: "ServerCutText", text: null, length: len });
    for (let o = 0; o < len; o += 8192) {
      q.push(new Uint8Array(Math.min(8192, len - o)));
      expect(rd.next(q)).toBeNull();
    }
    q.push(bellMsg());
    expect(rd.next(q)).toEqual({ type: "Bell" });
  });

  test("SetColourMapEntries in true colour, or first + n past 2^depth, is refused", () => {
    expect(errorOf(hex("01 00 0000 0001 ffff ffff ffff")).code).toBe("BAD_COLOUR_MAP");
    const cmap: PixelFormat = { ...CANONICAL_FORMAT, bitsPerPixel: 8, depth: 8, trueColour: false };
    expect(errorOf(hex("01 00 00ff 0002"), { pf: cmap }).code).toBe("BAD_COLOUR_MAP");
    expect(errorOf(hex("01 00 0000 ffff"), { pf: cmap }).code).toBe("BAD_COLOUR_MAP");
  });

  test("a rect outside the framebuffer, in any dimension, is refused before its body (LibVNC CheckRect)", () => {
    for (const [x, y, w, h] of [
      [0, 0, 65, 1],
      [64, 0, 1, 1],
      [0, 48, 1, 1],
      [0, 0, 1, 49],
      [65535, 65535, 65535, 65535],
      [1, 0, 64, 48],
    ] as const) {
      const r = errorOf(fbu(rectHeader(x, y, w, h, Encoding.Raw)));
      expect(r.code).toBe("RECT_OUT_OF_BOUNDS");
      expect(r.capacity).toBeLessThanOrEqual(64);
    }
  });

  test("an encoding that was not negotiated (or has no codec) is refused", () => {
    expect(errorOf(fbu(rectHeader(0, 0, 1, 1, Encoding.Hextile))).code).toBe("UNKNOWN_ENCODING");
    expect(errorOf(fbu(rectHeader(0, 0, 1, 1, 9))).code).toBe("UNKNOWN_ENCODING"); // Ultra: never negotiated
    expect(errorOf(fbu(rectHeader(0, 0, 1, 1, -999))).code).toBe("UNKNOWN_ENCODING");
    const noCursor = new Set([Encoding.Raw]);
    expect(errorOf(fbu(rectHeader(0, 0, 4, 4, PseudoEncoding.Cursor)), { encodings: noCursor }).code).toBe(
      "UNKNOWN_ENCODING",
    );
  });

  test("cursor 0x7FFF×0x7FFF is refused from its header (CVE-2019-15690, needed ≥ 256 MB to fuzz)", () => {
    const r = errorOf(fbu(rectHeader(0, 0, 0x7fff, 0x7fff, PseudoEncoding.Cursor)));
    expect(r.code).toBe("BAD_CURSOR");
    expect(r.capacity).toBeLessThanOrEqual(64);
    expect(errorOf(fbu(rectHeader(0, 0, 257, 1, PseudoEncoding.Cursor))).code).toBe("BAD_CURSOR");
    expect(errorOf(fbu(rectHeader(4, 0, 4, 4, PseudoEncoding.Cursor))).code).toBe("BAD_CURSOR"); // hotspot outside
    expect(errorOf(fbu(rectHeader(0, 0, 256, 256, PseudoEncoding.Cursor))).code).toBe(""); // at the cap: waits for data
  });

  test("DesktopName over 1 KiB is refused from its length", () => {
    const r = errorOf(fbu(rectHeader(0, 0, 0, 0, PseudoEncoding.DesktopName), hex("ffffffff")));
    expect(r.code).toBe("LIMIT_EXCEEDED");
    expect(errorOf(fbu(rectHeader(0, 0, 0, 0, PseudoEncoding.DesktopName), hex("00000401"))).code).toBe(
      "LIMIT_EXCEEDED",
    );
  });

  test("DesktopSize over the caps is refused, 0×0 is ignored (UltraVNC sends it)", () => {
    expect(errorOf(fbu(rectHeader(0, 0, 65535, 65535, PseudoEncoding.DesktopSize))).code).toBe(
      "BAD_FRAMEBUFFER_SIZE",
    );
    expect(errorOf(fbu(rectHeader(0, 0, 16384, 16384, PseudoEncoding.DesktopSize))).code).toBe(
      "LIMIT_EXCEEDED",
    );
    const got = parseAll([fbu(rectHeader(0, 0, 0, 0, PseudoEncoding.DesktopSize))]);
    expect(got[1]).toEqual({ type: "DesktopSize", width: 64, height: 48 });
  });

  test("ExtendedDesktopSize: 255 screens, screens outside or empty, size over the caps", () => {
    const eds = (w: number, h: number, body: string) =>
      fbu(rectHeader(0, 0, w, h, PseudoEncoding.ExtendedDesktopSize), hex(body));
    expect(errorOf(eds(100, 100, "ff 000000")).code).toBe("LIMIT_EXCEEDED");
    expect(errorOf(eds(100, 100, "01 000000 00000000 0000 0000 0065 0064 00000000")).code).toBe(
      "BAD_SCREEN_LAYOUT",
    );
    expect(errorOf(eds(100, 100, "01 000000 00000000 0000 0000 0000 0064 00000000")).code).toBe(
      "BAD_SCREEN_LAYOUT",
    );
    expect(errorOf(eds(20000, 100, "01 000000 00000000 0000 0000 0001 0001 00000000")).code).toBe(
      "BAD_FRAMEBUFFER_SIZE",
    );
  });

  test("fence payload over 64 bytes is refused before it is read (CVE-2019-15683)", () => {
    expect(errorOf(hex("f8 000000 00000000 41")).code).toBe("LIMIT_EXCEEDED");
  });

  test("65535 empty rects with LastRect do not end the update early and parse without buffering", () => {
    const q = new ByteQueue(1 << 16, 64);
    const r = reader();
    q.push(framebufferUpdateHeader(0xffff));
    expect(r.next(q)?.type).toBe("FramebufferUpdateStart");
    let rects = 0;
    for (let i = 0; i < 65535; i++) {
      q.push(rectHeader(0, 0, 0, 0, Encoding.Raw));
      const m = r.next(q);
      if (m?.type === "Rect") rects++;
    }
    q.push(rectHeader(0, 0, 0, 0, PseudoEncoding.LastRect));
    expect(r.next(q)?.type).toBe("FramebufferUpdateEnd");
    expect(rects).toBe(65535);
    expect(q.capacity).toBeLessThanOrEqual(64);
  });

  test("a LastRect stream that goes past 65535 rects is refused (the update would never end)", () => {
    const q = new ByteQueue(1 << 16, 64);
    const r = reader();
    q.push(framebufferUpdateHeader(0xffff));
    r.next(q);
    for (let i = 0; i < 65535; i++) {
      q.push(rectHeader(0, 0, 0, 0, Encoding.Raw));
      expect(r.next(q)?.type).toBe("Rect");
    }
    q.push(rectHeader(0, 0, 0, 0, Encoding.Raw));
    expect(codeOf(() => r.next(q))).toBe("LIMIT_EXCEEDED");
  });

  test("the rects of one update may cover at most maxUpdatePixels, counted before their bodies are read", () => {
    // A 64×48 framebuffer with a budget of 4 frames: four full-screen CopyRects pass, the fifth is refused
    // from its header alone; the next update starts a new budget.
    const copy = cat(rectHeader(0, 0, 64, 48, Encoding.CopyRect), hex("0000 0000"));
    const limits = { maxUpdatePixels: 4 * 64 * 48 };
    const ok = parseAllWith(reader({ limits }), [cat(framebufferUpdateHeader(4), copy, copy, copy, copy)]);
    expect(ok.filter((m) => m.type === "Rect")).toHaveLength(4);
    const r = reader({ limits });
    const q = new ByteQueue(1 << 16);
    q.push(
      cat(framebufferUpdateHeader(5), copy, copy, copy, copy, rectHeader(0, 0, 64, 48, Encoding.CopyRect)),
    );
    for (let i = 0; i < 5; i++) r.next(q);
    expect(codeOf(() => r.next(q))).toBe("LIMIT_EXCEEDED");
    const again = parseAllWith(reader({ limits }), [
      cat(framebufferUpdateHeader(4), copy, copy, copy, copy),
      cat(framebufferUpdateHeader(4), copy, copy, copy, copy),
    ]);
    expect(again.filter((m) => m.type === "Rect")).toHaveLength(8);
  });
});
