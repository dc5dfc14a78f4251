// A real VNC client (vncsnapshot 1.2a) against the built-in demo device: the picture it saves equals the
// demo's framebuffer within the measured JPEG tolerance (VNCSNAPSHOT_TOLERANCE: no channel off by more than
// 2), with security None and with VNC Authentication; a wrong password gets no picture.

import { afterAll, describe, expect, test } from "bun:test";
import { type DemoDevice, startDemoDevice } from "../../relay/demo/server.ts";
import { Encoding } from "../../relay/rfb/constants.ts";
import { type RgbaImage, compareImages, describeStats, writePng } from "./images.ts";
import { SNAPSHOT_PEERS, VNCSNAPSHOT_TOLERANCE, killAll, requirePeer, vncsnapshot } from "./rig.ts";

const ok = requirePeer(...SNAPSHOT_PEERS);
const devices: DemoDevice[] = [];
afterAll(async () => {
  for (const d of devices) await d.stop();
  await killAll();
});

function demoImage(d: DemoDevice): RgbaImage {
  const rgba = d.desktop.fb.data.slice();
  for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255;
  return { width: d.desktop.fb.width, height: d.desktop.fb.height, rgba };
}

// Skips only outside CI, loudly: requirePeer() throws when CI=true, so in CI these tests always run.
describe.skipIf(!ok)("vncsnapshot → demo device", () => {
  for (const [label, password, encodings] of [
    ["security None, Hextile", undefined, "hextile raw"],
    ["VNC Authentication, Raw", "snap-pw1", "raw"],
    ["security None, ZRLE", undefined, "zrle raw"],
    ["security None, zlib", undefined, "zlib raw"],
  ] as const) {
    test(label, async () => {
      // fps 0: the scene holds still, so the snapshot can be compared with the framebuffer.
      const d = await startDemoDevice({
        host: "127.0.0.1",
        port: 0,
        fps: 0,
        ...(password ? { password } : {}),
      });
      devices.push(d);
      d.tick(1000);
      const snap = await vncsnapshot(d.port, { encodings, ...(password ? { password } : {}) });
      const stats = compareImages(snap, demoImage(d), VNCSNAPSHOT_TOLERANCE);
      if (!stats.ok) writePng(`test/artifacts/vncsnapshot-demo-${encodings.split(" ")[0]}.png`, snap);
      expect({ ok: stats.ok, stats: describeStats(stats) }).toEqual({ ok: true, stats: expect.any(String) });
      // The demo answered in the viewer's first encoding, through the codec core's encoder for it.
      const first = {
        hextile: Encoding.Hextile,
        raw: Encoding.Raw,
        zrle: Encoding.ZRLE,
        zlib: Encoding.Zlib,
      }[encodings.split(" ")[0] as "hextile" | "raw" | "zrle" | "zlib"];
      expect(d.rectsSent.get(first)).toBeGreaterThan(0);
    }, 60_000);
  }

  test("a wrong password gets no picture, and the device serves the next viewer", async () => {
    const d = await startDemoDevice({ host: "127.0.0.1", port: 0, fps: 0, password: "right-pw" });
    devices.push(d);
    await expect(vncsnapshot(d.port, { password: "wrong-pw", timeoutMs: 8000 })).rejects.toThrow();
    const snap = await vncsnapshot(d.port, { password: "right-pw" });
    expect(compareImages(snap, demoImage(d), VNCSNAPSHOT_TOLERANCE).ok).toBe(true);
  }, 60_000);
});
