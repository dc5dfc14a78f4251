// SessionDecoder: the per-connection layer over the kernels. The zlib encoding (one persistent stream,
// inflated under a hard cap equal to the Raw size: bad-inputs.md B "Zlib encoding length"), the length
// prefix checks, the latch that ends a decoder at its first error, and one core per session: a trap in one
// session's WASM instance ends that session only.

import { expect, test } from "bun:test";
import zlib from "node:zlib";
import pako from "pako";
import { SessionDecoder } from "../../relay/codec/decoder.ts";
import type { CodecKernels } from "../../relay/codec/kernels.ts";
import { WasmKernels, createWasmKernels } from "../../relay/codec/wasm-kernels.ts";
import { Encoding } from "../../relay/rfb/constants.ts";
import { RfbError } from "../../relay/rfb/errors.ts";
import { CoreAbortError } from "../../wasm/loader.ts";
import { cat, hex } from "../helpers/bytes.ts";
import { codeOf } from "../helpers/errors.ts";
import { forEachKernel } from "./kernel-impls.ts";

const u32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
};

/** One persistent deflater (pako, an independent zlib), sync-flushed per rect, as a VNC server's zlib encoder. */
function zlibServer() {
  const deflater = new pako.Deflate({ level: 6 });
  let out: Uint8Array[] = [];
  deflater.onData = (chunk) => out.push(chunk);
  return {
    /** The compressed bytes of one rect (the first starts with the zlib header). */
    rect(data: Uint8Array): Uint8Array {
      out = [];
      deflater.push(data, pako.constants.Z_SYNC_FLUSH);
      return cat(...out);
    },
  };
}

const body = (compressed: Uint8Array) => cat(u32(compressed.length), compressed);
const rect = (x: number, y: number, w: number, h: number, encoding: number = Encoding.Zlib) => ({
  x,
  y,
  w,
  h,
  encoding,
});

// 2×2 canonical pixels: red, green, blue, white (X bytes set on the wire; the framebuffer keeps X = 0).
const PIXELS = hex("ff0000aa 00ff00aa 0000ffaa ffffffaa");
const CANON = hex("ff000000 00ff0000 0000ff00 ffffff00");

forEachKernel("SessionDecoder, zlib encoding", (impl) => {
  const decoder = async (w = 4, h = 4) => new SessionDecoder(await impl.make(), w, h);

  test("a rect inflates to Raw pixels; X bytes from the wire are cleared", async () => {
    const d = await decoder(2, 2);
    d.decode(rect(0, 0, 2, 2), body(zlib.deflateSync(PIXELS, { finishFlush: zlib.constants.Z_SYNC_FLUSH })));
    expect(d.pixels()).toEqual(CANON);
  });

  test("rects share one stream: the second rect refers back into the first (a dictionary match)", async () => {
    const d = await decoder(2, 2);
    const server = zlibServer();
    const first = server.rect(PIXELS);
    const second = server.rect(PIXELS);
    // The second rect's 16 bytes are one back-reference: far shorter than the literal pixels.
    expect(second.length).toBeLessThan(12);
    d.decode(rect(0, 0, 2, 2), body(first));
    d.pixels().fill(0);
    d.decode(rect(0, 0, 2, 2), body(second));
    expect(d.pixels()).toEqual(CANON);
  });

  test("inflating to fewer bytes than w×h×bpp is BAD_RECT; more is stopped at the cap (LIMIT_EXCEEDED)", async () => {
    const short = zlib.deflateSync(PIXELS.subarray(0, 12), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    const d1 = await decoder(2, 2);
    expect(codeOf(() => d1.decode(rect(0, 0, 2, 2), body(short)))).toBe("BAD_RECT");
    // A bomb: 1 KiB of zlib that inflates to 64 MiB, for a 2×2 rect; stopped after 16 bytes.
    const bomb = zlib.deflateSync(new Uint8Array(64 << 20), {
      level: 9,
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
    });
    expect(bomb.length).toBeLessThan(128 * 1024);
    const d2 = await decoder(2, 2);
    expect(codeOf(() => d2.decode(rect(0, 0, 2, 2), body(bomb)))).toBe("LIMIT_EXCEEDED");
  });

  test("a length prefix that does not cover exactly the data, and corrupt data, are refused", async () => {
    const good = zlib.deflateSync(PIXELS, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    const d1 = await decoder(2, 2);
    expect(codeOf(() => d1.decode(rect(0, 0, 2, 2), cat(u32(good.length + 1), good)))).toBe("BAD_RECT");
    const d2 = await decoder(2, 2);
    expect(codeOf(() => d2.decode(rect(0, 0, 2, 2), hex("000000")))).toBe("BAD_RECT");
    const d3 = await decoder(2, 2);
    expect(codeOf(() => d3.decode(rect(0, 0, 2, 2), body(hex("78 9c ff ff ff ff"))))).toBe("CODEC_ERROR");
  });

  test("after the first error every call fails with it, even a valid rect: the session must end", async () => {
    const d = await decoder(2, 2);
    expect(codeOf(() => d.decode(rect(0, 0, 2, 2), body(hex("78 9c ff ff ff ff"))))).toBe("CODEC_ERROR");
    expect(d.failed?.code).toBe("CODEC_ERROR");
    expect(codeOf(() => d.decode(rect(0, 0, 1, 1, Encoding.Raw), hex("01020300")))).toBe("CODEC_ERROR");
  });

  test("an encoding with no decoder is UNKNOWN_ENCODING; a CopyRect body must be 4 bytes", async () => {
    const d1 = await decoder();
    expect(codeOf(() => d1.decode(rect(0, 0, 1, 1, 21), hex("ffd8")))).toBe("UNKNOWN_ENCODING"); // JPEG
    const d2 = await decoder();
    expect(codeOf(() => d2.decode(rect(0, 0, 1, 1, Encoding.CopyRect), hex("000000")))).toBe("BAD_RECT");
  });
});

/** Kernels whose Raw decoder traps inside the WASM core (an abort), as a kernel bug would. */
class TrappingKernels extends WasmKernels {
  override raw(): void {
    this.core.fn.selfTestAbort();
  }
}

test("one core per session: a trap in one session's core ends that session; the other decodes on", async () => {
  const healthy: CodecKernels = await createWasmKernels("release");
  const trapping = new TrappingKernels((await createWasmKernels("debug")).core);
  const a = new SessionDecoder(healthy, 2, 2);
  const b = new SessionDecoder(trapping, 2, 2);
  let caught: unknown;
  try {
    b.decode(rect(0, 0, 2, 2, Encoding.Raw), PIXELS);
  } catch (e) {
    caught = e;
  }
  // The boundary turns the abort into a coded error for the audit; the decoder is latched failed.
  expect(caught).toBeInstanceOf(RfbError);
  expect((caught as RfbError).code).toBe("INTERNAL");
  expect((caught as RfbError).message).toContain(
    new CoreAbortError("self-test abort", "", 0, 0).message.split(" (")[0]!,
  );
  expect(b.failed?.code).toBe("INTERNAL");
  // The other session, on its own instance and memory, is untouched and keeps working.
  a.decode(rect(0, 0, 2, 2, Encoding.Raw), PIXELS);
  expect(a.pixels()).toEqual(CANON);
  expect(healthy).not.toBe(trapping);
  expect((healthy as WasmKernels).core.memory).not.toBe(trapping.core.memory);
});
