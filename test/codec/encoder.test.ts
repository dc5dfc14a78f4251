// encodeRect (relay/codec/encoder.ts) end to end: every encoding the relay sends × every test pixel format,
// encoded by each kernel implementation, serialized for a viewer (relay/codec/encoded.ts) and decoded by a
// viewer-side SessionDecoder in that format, gives the source frame as the format quantises it; the TS twin
// and both WASM builds emit the same bytes; encode-once fan-out: a viewer that joins later decodes the same
// shared blobs from its own stream header; and noVNC's own decoders accept our zlib and ZRLE streams.

import { describe, expect, test } from "bun:test";
import { SessionDecoder } from "../../relay/codec/decoder.ts";
import { type EncodedRect, serializeRect, ViewerStreams } from "../../relay/codec/encoded.ts";
import {
  ENCODABLE,
  encodeRect,
  firstSupportedEncoding,
  preferredEncoding,
} from "../../relay/codec/encoder.ts";
import type { CodecKernels } from "../../relay/codec/kernels.ts";
import { TsKernels } from "../../relay/codec/ts-kernels.ts";
import { Encoding } from "../../relay/rfb/constants.ts";
import { fromCanonical, toCanonical } from "../../relay/rfb/pixel-convert.ts";
import { bytesPerPixel, CANONICAL_FORMAT, type PixelFormat } from "../../relay/rfb/pixel-format.ts";
import { TEST_FORMATS } from "../helpers/formats.ts";
import { createNoVncSession } from "../helpers/novnc.ts";
import { syntheticDesktop } from "../helpers/synthetic-desktop.ts";
import { forEachKernel } from "./kernel-impls.ts";

const W = 160;
const H = 96;
const NAMES = new Map<number, string>([
  [Encoding.Raw, "raw"],
  [Encoding.Hextile, "hextile"],
  [Encoding.Zlib, "zlib"],
  [Encoding.ZRLE, "zrle"],
  [Encoding.Tight, "tight"],
]);

/** A desktop-like frame small enough for every combination: a crop of the synthetic 1080p desktop. */
function frame(): Uint8Array {
  const big = syntheticDesktop(640, 360, 7);
  const out = new Uint8Array(W * H * 4);
  for (let y = 0; y < H; y++)
    out.set(big.subarray(((y + 100) * 640 + 60) * 4, ((y + 100) * 640 + 60 + W) * 4), y * W * 4);
  return out;
}

/** The source as a viewer in `pf` sees it: through the format and back to canonical, X = 0. */
function quantised(src: Uint8Array, pf: PixelFormat): Uint8Array {
  const wire = new Uint8Array(W * H * bytesPerPixel(pf));
  fromCanonical(src, wire, pf, W * H);
  const out = new Uint8Array(W * H * 4);
  toCanonical(wire, pf, out, W * H);
  for (let i = 3; i < out.length; i += 4) out[i] = 0;
  return out;
}

/** Rect header + body bytes → a viewer-side decoder (the header's fields must match the rect). */
function apply(viewer: SessionDecoder, r: EncodedRect, bytes: Uint8Array): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, 12);
  expect([dv.getUint16(0), dv.getUint16(2), dv.getUint16(4), dv.getUint16(6), dv.getInt32(8)]).toEqual([
    r.x,
    r.y,
    r.w,
    r.h,
    r.encoding,
  ]);
  viewer.decode({ x: r.x, y: r.y, w: r.w, h: r.h, encoding: r.encoding }, bytes.subarray(12));
}

/** Encodes the whole frame, then three sub-rects (later rects on the same zlib streams), for one viewer. */
function encodeSequence(k: CodecKernels, encoding: number): EncodedRect[] {
  return [
    ...encodeRect(k, encoding, 0, 0, W, H),
    ...encodeRect(k, encoding, 5, 7, 60, 30),
    ...encodeRect(k, encoding, 100, 50, 60, 46),
    ...encodeRect(k, encoding, 0, 0, 1, 1),
  ];
}

forEachKernel("encodeRect round trips", (impl) => {
  for (const [fmtName, pf] of TEST_FORMATS) {
    for (const encoding of ENCODABLE) {
      test(`${NAMES.get(encoding)} × ${fmtName}: a viewer in that format decodes the source as the format quantises it`, async () => {
        const src = frame();
        const k = await impl.make();
        k.resize(W, H);
        k.raw(0, 0, W, H, src);
        k.setOutputFormat(pf);
        const viewer = new SessionDecoder(new TsKernels(), W, H, pf);
        const streams = new ViewerStreams();
        for (const r of encodeSequence(k, encoding)) apply(viewer, r, serializeRect(r, streams));
        expect(viewer.pixels()).toEqual(quantised(src, pf));
      });
    }
  }
});

describe("encodeRect: the TS twin and the WASM core emit the same bytes", () => {
  for (const [fmtName, pf] of TEST_FORMATS.slice(0, 4)) {
    test(`every encoding, ${fmtName}`, async () => {
      const src = frame();
      const { KERNEL_IMPLS } = await import("./kernel-impls.ts");
      const outputs: string[] = [];
      for (const impl of KERNEL_IMPLS) {
        const k = await impl.make();
        k.resize(W, H);
        k.raw(0, 0, W, H, src);
        k.setOutputFormat(pf);
        const streams = new ViewerStreams();
        const bytes = ENCODABLE.flatMap((e) => encodeSequence(k, e).map((r) => serializeRect(r, streams)));
        outputs.push(Buffer.concat(bytes).toString("base64"));
      }
      expect(outputs[1]).toBe(outputs[0]!);
      expect(outputs[2]).toBe(outputs[0]!);
    });
  }
});

describe("encode once, fan out: shared blobs, per-viewer stream headers", () => {
  for (const encoding of [Encoding.Zlib, Encoding.ZRLE, Encoding.Tight]) {
    test(`${NAMES.get(encoding)}: a viewer that joins after two updates decodes the same rects from its own header`, async () => {
      const src = frame();
      const k = await (await import("../../relay/codec/wasm-kernels.ts")).createWasmKernels("release");
      k.resize(W, H);
      k.raw(0, 0, W, H, src);
      k.setOutputFormat(CANONICAL_FORMAT);
      const early = { decoder: new SessionDecoder(new TsKernels(), W, H), streams: new ViewerStreams() };
      const late = { decoder: new SessionDecoder(new TsKernels(), W, H), streams: new ViewerStreams() };
      const first = encodeRect(k, encoding, 0, 0, W, H);
      for (const r of first) apply(early.decoder, r, serializeRect(r, early.streams));
      // The screen changes; one encoding of the changed rect goes to both viewers. The late viewer gets the
      // whole frame first (encoded once more, for it alone), then the same shared rect as the early one.
      const changed = src.slice();
      for (let i = 0; i < 40 * 4; i += 4) changed.set([255, i & 255, 9, 0], (50 * W + 20) * 4 + i);
      k.raw(0, 0, W, H, changed);
      for (const r of encodeRect(k, encoding, 0, 0, W, H))
        apply(late.decoder, r, serializeRect(r, late.streams));
      const shared = encodeRect(k, encoding, 20, 50, 40, 1);
      for (const r of shared) {
        const a = serializeRect(r, early.streams);
        const b = serializeRect(r, late.streams);
        // Both viewers' streams have started: the shared rect is the very same bytes for both.
        expect(Buffer.from(b).equals(Buffer.from(a))).toBe(true);
        apply(early.decoder, r, a);
        apply(late.decoder, r, b);
      }
      expect(early.decoder.pixels()).toEqual(changed);
      expect(late.decoder.pixels()).toEqual(changed);
      // A viewer whose first rect on the stream is the shared one gets the header in front of the same blob.
      const fresh = { decoder: new SessionDecoder(new TsKernels(), W, H), streams: new ViewerStreams() };
      const r0 = shared[0]!;
      const bytes = serializeRect(r0, fresh.streams);
      const again = serializeRect(r0, fresh.streams);
      expect(bytes.length - again.length).toBe(2); // the 2-byte zlib header, once
      apply(fresh.decoder, r0, bytes);
    });
  }
});

test("noVNC's own zlib and ZRLE decoders accept our streams, rect after rect", async () => {
  const src = frame();
  const k = await (await import("../../relay/codec/wasm-kernels.ts")).createWasmKernels("release");
  k.resize(W, H);
  k.raw(0, 0, W, H, src);
  for (const encoding of [Encoding.Zlib, Encoding.ZRLE]) {
    const novnc = createNoVncSession(W, H);
    const streams = new ViewerStreams();
    for (const r of encodeSequence(k, encoding)) {
      const bytes = serializeRect(r, streams);
      novnc.decodeRect(r.x, r.y, r.w, r.h, r.encoding, bytes.subarray(12));
    }
    const rgba = novnc.rgba();
    let bad = 0;
    for (let i = 0; i < W * H * 4; i += 4)
      if (rgba[i] !== src[i] || rgba[i + 1] !== src[i + 1] || rgba[i + 2] !== src[i + 2]) bad++;
    expect([NAMES.get(encoding), bad]).toEqual([NAMES.get(encoding), 0]);
  }
});

test("the encoding a viewer gets: ours by preference (never ZRLE when Tight is offered), or its own first", () => {
  const tiger = [Encoding.Tight, Encoding.ZRLE, Encoding.Hextile, Encoding.Raw];
  const novnc = [Encoding.ZRLE, Encoding.Tight, Encoding.Hextile, Encoding.Raw];
  expect(preferredEncoding(novnc)).toBe(Encoding.Tight);
  expect(preferredEncoding(tiger)).toBe(Encoding.Tight);
  expect(preferredEncoding([Encoding.Hextile, Encoding.ZRLE])).toBe(Encoding.ZRLE);
  expect(preferredEncoding([21, 50])).toBe(Encoding.Raw); // JPEG and H.264 only: Raw, which every viewer must take
  expect(firstSupportedEncoding(novnc)).toBe(Encoding.ZRLE);
  expect(firstSupportedEncoding([Encoding.CopyRect, 21, Encoding.Hextile])).toBe(Encoding.Hextile);
});
