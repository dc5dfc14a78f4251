// Client→server message parsing: every message, split at every point (and from copied slices), and every
// framing-level row of bad-inputs.md table C: a coded error (or a skip) decided from the header alone,
// before the body is waited for or allocated.

import { describe, expect, test } from "bun:test";
import { ByteQueue } from "../../relay/rfb/byte-queue.ts";
import { type ClientMessage, ClientMessageReader } from "../../relay/rfb/client-messages.ts";
import { RfbError } from "../../relay/rfb/errors.ts";
import { DEFAULT_LIMITS } from "../../relay/rfb/limits.ts";
import { CANONICAL_FORMAT } from "../../relay/rfb/pixel-format.ts";
import {
  clientCutTextMsg,
  clientFenceMsg,
  enableContinuousUpdatesMsg,
  framebufferUpdateRequestMsg,
  keyEventMsg,
  pointerEventMsg,
  setEncodingsMsg,
  setPixelFormatMsg,
} from "../../relay/rfb/writer.ts";
import { cat, hex, splits } from "../helpers/bytes.ts";
import { errorOfWith, parseAllWith } from "../helpers/parse.ts";

const parseAll = (chunks: Uint8Array[], maxPending = 1 << 20): ClientMessage[] =>
  parseAllWith(new ClientMessageReader(DEFAULT_LIMITS), chunks, maxPending);

const errorOf = (bytes: Uint8Array) => errorOfWith(new ClientMessageReader(DEFAULT_LIMITS), bytes);

const stream = cat(
  setPixelFormatMsg(CANONICAL_FORMAT),
  setEncodingsMsg([7, 16, 5, 0, 5, -223, 7]), // duplicates are folded, order kept
  framebufferUpdateRequestMsg(true, 1, 2, 300, 400),
  keyEventMsg(true, 0xff0d),
  pointerEventMsg(0x81, 65535, 7),
  clientCutTextMsg("héllo"),
  enableContinuousUpdatesMsg(true, 0, 0, 10, 10),
  clientFenceMsg(0x80000003, hex("0102")),
  hex("fb 00 0500 0300 01 00 00000001 0000 0000 0500 0300 00000000"), // SetDesktopSize 1280×768, one screen
  hex("ff 00 0001 0000ffe1 0000002a"), // QEMU extended key event: down, Shift_L, XT 0x2a
);

describe("client messages", () => {
  test("every message, split at every point and from copied slices, parses the same", () => {
    let reference: ClientMessage[] | null = null;
    for (const { name, chunks } of splits(stream)) {
      const got = parseAll(chunks);
      reference ??= got;
      expect({ name, got }).toEqual({ name, got: reference });
    }
    expect(reference!.map((m) => m.type)).toEqual([
      "SetPixelFormat",
      "SetEncodings",
      "FramebufferUpdateRequest",
      "KeyEvent",
      "PointerEvent",
      "ClientCutText",
      "EnableContinuousUpdates",
      "ClientFence",
      "SetDesktopSize",
      "QemuKeyEvent",
    ]);
    expect(reference![1]).toEqual({ type: "SetEncodings", encodings: [7, 16, 5, 0, -223] });
    expect(reference![4]).toEqual({ type: "PointerEvent", buttonMask: 0x81, x: 65535, y: 7 });
    expect(reference![5]).toMatchObject({ type: "ClientCutText", length: 5, text: hex("68e96c6c6f") });
    expect(reference![8]).toMatchObject({ type: "SetDesktopSize", width: 1280, height: 768 });
    expect(reference![9]).toEqual({ type: "QemuKeyEvent", down: true, keysym: 0xffe1, keycode: 0x2a });
  });

  test("padding bytes we write are zero", () => {
    expect(setPixelFormatMsg(CANONICAL_FORMAT).subarray(1, 4)).toEqual(hex("000000"));
    expect(setPixelFormatMsg(CANONICAL_FORMAT).subarray(17, 20)).toEqual(hex("000000"));
    expect(keyEventMsg(true, 1).subarray(2, 4)).toEqual(hex("0000"));
    expect(clientCutTextMsg("a").subarray(1, 4)).toEqual(hex("000000"));
    expect(setEncodingsMsg([1]).subarray(1, 2)).toEqual(hex("00"));
  });
});

describe("table C: malicious client messages", () => {
  test("SetEncodings with 65535 entries is refused from its 4-byte header (LibVNC 9b82dee3)", () => {
    const r = errorOf(hex("02 00 ffff"));
    expect(r.code).toBe("LIMIT_EXCEEDED");
    expect(r.capacity).toBeLessThanOrEqual(64);
  });

  test("SetEncodings with 64 entries is fine, 65 is not", () => {
    expect(parseAll([setEncodingsMsg(Array.from({ length: 64 }, (_, i) => i))])).toHaveLength(1);
    expect(errorOf(setEncodingsMsg(Array.from({ length: 65 }, (_, i) => i))).code).toBe("LIMIT_EXCEEDED");
  });

  test("ClientCutText of 0xFFFFFFFF / 2 GiB is refused from the header, nothing allocated (CVE-2018-7225)", () => {
    for (const len of ["ffffffff", "80000000"]) {
      const r = errorOf(hex(`06 000000 ${len}`));
      expect(r.code).toBe("BAD_MESSAGE");
      expect(r.capacity).toBeLessThanOrEqual(64);
    }
  });

  test("ClientCutText over the 256 KiB cap is skipped without being stored, and parsing goes on", () => {
    const len = DEFAULT_LIMITS.maxCutText + 1;
    const big = new Uint8Array(len).fill(0x41);
    const header = hex(`06 000000 ${len.toString(16).padStart(8, "0")}`);
    const q = new ByteQueue(64 * 1024, 64);
    const r = new ClientMessageReader(DEFAULT_LIMITS);
    q.push(header);
    expect(r.next(q)).toEqual({ type: "ClientCutText", text: null, length: len });
    for (let o = 0; o < len; o += 4096) {
      q.push(big.subarray(o, o + 4096));
      expect(r.next(q)).toBeNull();
    }
    q.push(keyEventMsg(false, 0x61));
    expect(r.next(q)).toEqual({ type: "KeyEvent", down: false, keysym: 0x61 });
    expect(q.capacity).toBeLessThanOrEqual(64 * 1024);
  });

  test("oversized cut text then a key: the same two messages at every split point (deferred discard)", () => {
    const len = DEFAULT_LIMITS.maxCutText + 3;
    const header = hex(`06 000000 ${len.toString(16).padStart(8, "0")}`);
    const input = cat(header, new Uint8Array(len).fill(0x42), keyEventMsg(true, 0x62));
    for (const at of [1, 7, 8, 9, 100, len, len + 7, len + 8, len + 9, input.length - 1]) {
      const got = parseAll([input.subarray(0, at), input.subarray(at)], 1 << 20);
      expect(got).toEqual([
        { type: "ClientCutText", text: null, length: len },
        { type: "KeyEvent", down: true, keysym: 0x62 },
      ]);
    }
  });

  test("an insane SetPixelFormat is refused (CVE-2019-15695 class)", () => {
    expect(errorOf(hex("00 000000 18 18 00 01 00ff 00ff 00ff 10 08 00 000000")).code).toBe(
      "BAD_PIXEL_FORMAT",
    );
    expect(errorOf(hex("00 000000 20 28 00 01 00ff 00ff 00ff 10 08 00 000000")).code).toBe(
      "BAD_PIXEL_FORMAT",
    );
    expect(errorOf(hex("00 000000 08 08 00 01 0007 0007 0007 00 03 06 000000")).code).toBe(
      "BAD_PIXEL_FORMAT",
    );
  });

  test("fence payload over 64 bytes is refused before it is read (CVE-2019-15683)", () => {
    expect(errorOf(hex("f8 000000 80000000 41")).code).toBe("LIMIT_EXCEEDED");
    expect(parseAll([clientFenceMsg(0, new Uint8Array(64))])).toHaveLength(1);
  });

  test("xvp power control closes the session", () => {
    expect(errorOf(hex("fa 00 01 02")).code).toBe("UNSUPPORTED");
  });

  test("SetDesktopSize: 0 screens, 255 screens, 0×0, over the caps, screen outside", () => {
    expect(errorOf(hex("fb 00 0500 0300 00 00")).code).toBe("BAD_SCREEN_LAYOUT");
    expect(errorOf(hex("fb 00 0500 0300 ff 00")).code).toBe("BAD_SCREEN_LAYOUT");
    expect(errorOf(hex("fb 00 0000 0000 01 00")).code).toBe("BAD_FRAMEBUFFER_SIZE");
    expect(errorOf(hex("fb 00 ffff ffff 01 00")).code).toBe("BAD_FRAMEBUFFER_SIZE");
    expect(errorOf(hex("fb 00 0500 0300 01 00 00000001 0001 0000 0500 0300 00000000")).code).toBe(
      "BAD_SCREEN_LAYOUT",
    );
  });

  test("unknown message types, including vendor types 250+, close the session", () => {
    for (const t of [1, 7, 8, 9, 11, 100, 149, 151, 249, 252, 253, 254]) {
      expect(errorOf(new Uint8Array([t, 0, 0, 0, 0, 0, 0, 0])).code).toBe("UNKNOWN_MESSAGE");
    }
    expect(errorOf(hex("ff 01 0000")).code).toBe("UNKNOWN_MESSAGE"); // QEMU subtype other than 0
  });

  test("requests outside the framebuffer and zero-size requests parse (the server clips them)", () => {
    expect(parseAll([framebufferUpdateRequestMsg(false, 65535, 65535, 65535, 65535)])[0]).toMatchObject({
      x: 65535,
      w: 65535,
    });
    expect(parseAll([framebufferUpdateRequestMsg(true, 0, 0, 0, 0)])[0]).toMatchObject({ w: 0, h: 0 });
  });

  test("the pending-bytes cap holds whatever the peer sends", () => {
    const q = new ByteQueue(1024, 16);
    expect(() => q.push(new Uint8Array(1025))).toThrow(RfbError);
  });
});
