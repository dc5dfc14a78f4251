// shadowrelay replay: recordings built here byte by byte (every security path, with and without the
// client's bytes, a pixel format of the client's choosing, DesktopSize mid-stream), the corpus end to end
// through the command line (RGBA exactly the expected framebuffer at the last checkpoint, a PNG), and the
// coded failures: a cut-off handshake, a bad byte in an update, an update that is not in the recording.

import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TsKernels } from "../relay/codec/ts-kernels.ts";
import { createWasmKernels } from "../relay/codec/wasm-kernels.ts";
import { replay } from "../relay/replay.ts";
import { Encoding, PseudoEncoding } from "../relay/rfb/constants.ts";
import { CANONICAL_FORMAT } from "../relay/rfb/pixel-format.ts";
import {
  clientInitMsg,
  framebufferUpdateHeader,
  rectHeader,
  securityResultMsg,
  securityType33Msg,
  securityTypesMsg,
  serverInitMsg,
  setEncodingsMsg,
  setPixelFormatMsg,
  versionString,
} from "../relay/rfb/writer.ts";
import { cat, hex } from "./helpers/bytes.ts";
import { loadCorpus, loadExpectedFinal, CORPUS_DIR } from "./helpers/corpus.ts";
import { codeOf } from "./helpers/errors.ts";
import { BGRX } from "./helpers/formats.ts";

/** One update: a 2×1 Raw rect at (x, 0) in canonical pixels red, green. */
const update = (x = 0) =>
  cat(framebufferUpdateHeader(1), rectHeader(x, 0, 2, 1, Encoding.Raw), hex("ff000000 00ff0000"));
const RED_GREEN = hex("ff000000 00ff0000");

describe("replay(): recordings built byte by byte", () => {
  test("3.8, security None, no client bytes: ServerInit's pixel format, every update applied", () => {
    const server = cat(
      versionString(3, 8),
      securityTypesMsg([1]),
      securityResultMsg(true, 8),
      serverInitMsg(4, 2, CANONICAL_FORMAT, "rec"),
      update(0),
      update(2),
    );
    const r = replay({ server, kernels: new TsKernels() });
    expect([r.width, r.height, r.desktopName, r.updates, r.rects, r.pixelsDecoded, r.complete]).toEqual([
      4,
      2,
      "rec",
      2,
      2,
      4,
      true,
    ]);
    expect(r.pixels.subarray(0, 16)).toEqual(cat(RED_GREEN, RED_GREEN));
  });

  test("3.8 offering None and VNC Authentication, no client bytes: the challenge is recognised and skipped", () => {
    const server = cat(
      versionString(3, 8),
      securityTypesMsg([1, 2]),
      new Uint8Array(16).fill(0xaa), // the VNC Authentication challenge
      securityResultMsg(true, 8),
      serverInitMsg(2, 1, CANONICAL_FORMAT, "auth"),
      update(),
    );
    const r = replay({ server, kernels: new TsKernels() });
    expect([r.desktopName, r.updates]).toEqual(["auth", 1]);
    expect(r.pixels).toEqual(RED_GREEN);
  });

  test("3.3 with VNC Authentication, and the client's bytes: its SetPixelFormat (BGRX) and encodings apply", () => {
    const bgrx = hex("0000ff00 00ff0000"); // red, green as TigerVNC's format sends them: bytes B,G,R,X
    const server = cat(
      versionString(3, 3),
      securityType33Msg(2),
      new Uint8Array(16),
      hex("00000000"), // SecurityResult OK
      serverInitMsg(2, 1, CANONICAL_FORMAT, "33"),
      cat(framebufferUpdateHeader(1), rectHeader(0, 0, 2, 1, Encoding.Raw), bgrx),
    );
    const client = cat(
      versionString(3, 3),
      new Uint8Array(16), // the VNC Authentication response
      clientInitMsg(true),
      setPixelFormatMsg(BGRX),
      setEncodingsMsg([Encoding.Raw, PseudoEncoding.DesktopSize]),
    );
    const r = replay({ server, client, kernels: new TsKernels() });
    expect(r.pixelFormat).toEqual(BGRX);
    expect(r.pixels).toEqual(RED_GREEN);
  });

  test("DesktopSize mid-recording resizes; --at-update stops there; a cut-off last message is reported", () => {
    const server = cat(
      versionString(3, 8),
      securityTypesMsg([1]),
      securityResultMsg(true, 8),
      serverInitMsg(2, 1, CANONICAL_FORMAT, "r"),
      update(),
      cat(framebufferUpdateHeader(1), rectHeader(0, 0, 6, 3, PseudoEncoding.DesktopSize)),
      update(4),
      framebufferUpdateHeader(1).subarray(0, 3), // the capture ends inside a message
    );
    const first = replay({ server, atUpdate: 0, kernels: new TsKernels() });
    expect([first.width, first.updates, first.complete]).toEqual([2, 1, true]);
    const all = replay({ server, kernels: new TsKernels() });
    expect([all.width, all.height, all.updates, all.complete]).toEqual([6, 3, 3, false]);
    expect(all.pixels.subarray(16, 24)).toEqual(RED_GREEN); // after the resize, at x = 4
    expect(codeOf(() => replay({ server, atUpdate: 3, kernels: new TsKernels() }))).toBe("BAD_MESSAGE");
  });

  test("a recording cut inside the handshake, or one whose server refused the client, is a coded error", () => {
    expect(
      codeOf(() => replay({ server: cat(versionString(3, 8), hex("01")), kernels: new TsKernels() })),
    ).toBe("BAD_MESSAGE");
    expect(
      codeOf(() =>
        replay({ server: cat(versionString(3, 8), hex("00 00000000")), kernels: new TsKernels() }),
      ),
    ).toBe("SECURITY_REFUSED");
    const failedAuth = cat(versionString(3, 8), securityTypesMsg([2]), new Uint8Array(16), hex("00000001"));
    expect(codeOf(() => replay({ server: failedAuth, kernels: new TsKernels() }))).toBe("AUTH_FAILED");
  });

  test("the first bad byte of an update is reported with its code (a Raw rect past the framebuffer)", () => {
    const server = cat(
      versionString(3, 8),
      securityTypesMsg([1]),
      securityResultMsg(true, 8),
      serverInitMsg(2, 1, CANONICAL_FORMAT, "r"),
      cat(framebufferUpdateHeader(1), rectHeader(1, 0, 2, 1, Encoding.Raw), RED_GREEN),
    );
    expect(codeOf(() => replay({ server, kernels: new TsKernels() }))).toBe("RECT_OUT_OF_BOUNDS");
  });
});

describe("shadowrelay replay (the command)", () => {
  const dir = mkdtempSync(join(tmpdir(), "shadowrelay-replay-"));
  const run = (...args: string[]) =>
    Bun.spawnSync([process.execPath, "relay/main.ts", "replay", ...args], {
      cwd: join(import.meta.dir, ".."),
      stderr: "pipe",
      stdout: "pipe",
    });

  test("the tight corpus session to RGBA equals the expected framebuffer at its last checkpoint", () => {
    const out = join(dir, "tight.rgba");
    const last = loadCorpus("tight").index.checkpoints.at(-1)!.afterUpdate;
    const r = run(
      "--server",
      join(CORPUS_DIR, "tight.s2c.rfb.gz"),
      "--client",
      join(CORPUS_DIR, "tight.c2s.rfb.gz"),
      "--out",
      out,
      "--at-update",
      String(last),
    );
    expect([r.exitCode, r.stderr.toString()]).toEqual([0, ""]);
    expect(r.stdout.toString()).toContain(`1920x1080 "anchors-a" after ${last + 1} updates`);
    expect(new Uint8Array(readFileSync(out))).toEqual(new Uint8Array(loadExpectedFinal()));
  });

  test("PNG output; the TS twin gives the same picture", () => {
    const a = join(dir, "h.png");
    const b = join(dir, "h-ts.png");
    const server = join(CORPUS_DIR, "hextile.s2c.rfb.gz");
    const client = join(CORPUS_DIR, "hextile.c2s.rfb.gz");
    expect(run("--server", server, "--client", client, "--out", a).exitCode).toBe(0);
    expect(run("--server", server, "--client", client, "--out", b, "--core", "ts").exitCode).toBe(0);
    const png = readFileSync(a);
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([1920, 1080]); // IHDR width, height
    expect(readFileSync(b).equals(png)).toBe(true);
  });

  test("bad input exits 1 naming the code; bad arguments exit 2", async () => {
    const corrupt = join(dir, "corrupt.s2c");
    const { s2c, index } = loadCorpus("zrle");
    const bytes = s2c.slice(0, index.updates[1]!.offset);
    const first = index.updates[0]!.rects[0]!;
    bytes[first.offset + 12 + 4 + 2]! ^= 0xff; // inside the first ZRLE rect's zlib data, past its header
    await Bun.write(corrupt, bytes);
    const r = run("--server", corrupt, "--out", join(dir, "x.png"));
    expect(r.exitCode).toBe(1);
    expect(r.stderr.toString()).toMatch(/shadowrelay replay: (CODEC_ERROR|BAD_RECT)/);
    expect(run("--out", join(dir, "x.png")).exitCode).toBe(2);
    expect(run("--server", corrupt, "--out", join(dir, "x.jpg")).exitCode).toBe(2);
    expect(run("--server", corrupt, "--out", join(dir, "x.png"), "--at-update=-1").exitCode).toBe(2);
    expect(run("--server", corrupt, "--out", join(dir, "x.png"), "--no-such-option").exitCode).toBe(2);
  });
});

test("replay on the WASM core and the TS twin agree on a whole corpus session", async () => {
  const { s2c, c2s } = loadCorpus("zrle");
  const a = replay({ server: s2c, client: c2s, kernels: new TsKernels() });
  const b = replay({ server: s2c, client: c2s, kernels: await createWasmKernels("release") });
  expect(b.pixels).toEqual(a.pixels);
});
