// Our RFB client against a real server (TigerVNC Xvnc 1.12) on loopback, with security None and with VNC
// Authentication: the handshake completes, and a full update (Raw, Hextile, RRE, and — decoded by the WASM
// codec core — zlib, ZRLE and lossless Tight) leaves our framebuffer exactly equal to a lossless capture of
// the X display, and equal to what vncsnapshot sees within its JPEG tolerance. Then the screen is repainted
// and an incremental update catches up (on the same zlib streams).

import { afterAll, describe, expect, test } from "bun:test";
import { createWasmKernels } from "../../relay/codec/wasm-kernels.ts";
import { Encoding, PseudoEncoding } from "../../relay/rfb/constants.ts";
import { connectClient } from "../helpers/rfb-peer.ts";
import { type RgbaImage, EXACT, compareImages, describeStats } from "./images.ts";
import {
  PAINT_PEERS,
  SNAPSHOT_PEERS,
  VNCSNAPSHOT_TOLERANCE,
  XVNC_PEERS,
  captureX,
  killAll,
  paint,
  requirePeer,
  startXvnc,
  vncsnapshot,
} from "./rig.ts";

const ok = requirePeer(...XVNC_PEERS, ...PAINT_PEERS, ...SNAPSHOT_PEERS);
afterAll(async () => {
  await killAll();
});

const asImage = (fb: { width: number; height: number; data: Uint8Array }): RgbaImage => {
  const rgba = fb.data.slice();
  for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255;
  return { width: fb.width, height: fb.height, rgba };
};

// Skips only outside CI, loudly: requirePeer() throws when CI=true, so in CI these tests always run.
describe.skipIf(!ok)("our client → Xvnc", () => {
  for (const [label, password, encodings] of [
    ["None, Raw", undefined, [Encoding.Raw]],
    ["VNC Authentication, Raw", "xvnc-pw", [Encoding.Raw]],
    ["None, Hextile + CopyRect", undefined, [Encoding.Hextile, Encoding.CopyRect, Encoding.Raw]],
    ["VNC Authentication, RRE", "xvnc-pw2", [Encoding.RRE, Encoding.Raw]],
    ["None, zlib (WASM core)", undefined, [Encoding.Zlib, Encoding.Raw]],
    ["None, ZRLE + CopyRect (WASM core)", undefined, [Encoding.ZRLE, Encoding.CopyRect, Encoding.Raw]],
    ["VNC Authentication, Tight lossless (WASM core)", "xvnc-pw3", [Encoding.Tight, Encoding.Raw]],
  ] as const) {
    test(label, async () => {
      const x = await startXvnc({ width: 640, height: 400, ...(password ? { password } : {}) });
      try {
        await paint(x, { pattern: "test" });
        const c = await connectClient(x.port, {
          encodings: [...encodings, PseudoEncoding.DesktopSize, PseudoEncoding.LastRect],
          ...(password ? { password } : {}),
          ...(label.includes("WASM") ? { kernels: await createWasmKernels("release") } : {}),
        });
        try {
          await c.until(() => c.client.ready, "handshake");
          expect(c.client.info).toMatchObject({ width: 640, height: 400, securityType: password ? 2 : 1 });
          await c.update(false);
          const ours = asImage(c.client.fb!);
          const truth = await captureX(x);
          const exact = compareImages(ours, truth, EXACT);
          expect({ ok: exact.ok, stats: describeStats(exact) }).toEqual({
            ok: true,
            stats: expect.any(String),
          });
          const snap = await vncsnapshot(x);
          expect(compareImages(ours, snap, VNCSNAPSHOT_TOLERANCE).ok).toBe(true);

          // Repaint (a solid, then photo-like noise: full-colour data on the zlib streams the first update
          // started), and catch up with incremental updates only.
          for (const spec of [{ solid: "#3366cc" }, { pattern: "noise" }] as const) {
            const painted = await paint(x, spec);
            for (let i = 0; i < 20 && !compareImages(asImage(c.client.fb!), painted, EXACT).ok; i++) {
              await c.update(true);
            }
            expect(compareImages(asImage(c.client.fb!), painted, EXACT).ok).toBe(true);
          }
        } finally {
          c.close();
        }
      } finally {
        await x.stop();
      }
    }, 60_000);
  }

  test("a wrong password is refused with AUTH_FAILED, without a password with AUTH_REQUIRED", async () => {
    const x = await startXvnc({ width: 320, height: 200, password: "right-pw" });
    try {
      const bad = await connectClient(x.port, { password: "wrong-pw" });
      await expect(bad.until(() => bad.client.ready, "handshake")).rejects.toThrow(/AUTH_FAILED/);
      const none = await connectClient(x.port);
      await expect(none.until(() => none.client.ready, "handshake")).rejects.toThrow(/AUTH_REQUIRED/);
    } finally {
      await x.stop();
    }
  }, 60_000);
});
