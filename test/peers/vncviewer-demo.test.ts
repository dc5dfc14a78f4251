// A real viewer (TigerVNC vncviewer 1.12, full screen under Xvfb) against the demo device with VNC
// Authentication: the viewer's screen, captured losslessly, becomes exactly the demo's framebuffer, then
// again after the scene moved on (incremental updates on the same zlib streams: the "second frame fails"
// class of bug). The demo encodes with our codec core in the viewer's preferred encoding — Tight (its
// default), ZRLE, Hextile, Raw — all lossless at 32 bpp true colour, so no tolerance is needed: this is the
// interop test of our encoders against TigerVNC's decoders.

import { afterAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { type DemoDevice, startDemoDevice } from "../../relay/demo/server.ts";
import { Encoding } from "../../relay/rfb/constants.ts";
import { type RgbaImage, EXACT, compareImages, describeStats, writePng } from "./images.ts";
import {
  captureX,
  freeDisplay,
  killAll,
  makeTempDir,
  requirePeer,
  spawnTracked,
  writeVncPasswordFile,
} from "./rig.ts";

const ok = requirePeer("Xvfb", "xtigervncviewer", "vncpasswd", "import");
const devices: DemoDevice[] = [];
afterAll(async () => {
  for (const d of devices) await d.stop();
  await killAll();
});

async function startXvfb(width: number, height: number): Promise<string> {
  const n = freeDisplay();
  const p = spawnTracked("Xvfb", [
    `:${n}`,
    "-screen",
    "0",
    `${width}x${height}x24`,
    "-nolisten",
    "tcp",
    "-noreset",
  ]);
  const deadline = Date.now() + 10_000;
  while (!existsSync(`/tmp/.X11-unix/X${n}`)) {
    if (!p.alive() || Date.now() > deadline) throw new Error(`Xvfb :${n} did not start\n${p.stderr()}`);
    await Bun.sleep(25);
  }
  return `:${n}`;
}

// Skips only outside CI, loudly: requirePeer() throws when CI=true, so in CI these tests always run.
describe.skipIf(!ok)("TigerVNC vncviewer → demo device", () => {
  for (const [preferred, encoding] of [
    ["Tight", Encoding.Tight],
    ["ZRLE", Encoding.ZRLE],
    ["Hextile", Encoding.Hextile],
    ["Raw", Encoding.Raw],
  ] as const) {
    test(`${preferred}, VNC Authentication, full screen: the viewer shows the demo's pixels exactly, twice`, async () => {
      const password = "view-pw";
      const d = await startDemoDevice({ host: "127.0.0.1", port: 0, fps: 0, password });
      devices.push(d);
      d.tick(2500);
      const display = await startXvfb(1280, 720);
      const passwd = await writeVncPasswordFile(password, makeTempDir());
      const viewer = spawnTracked(
        "xtigervncviewer",
        [
          "-FullScreen",
          "-passwd",
          passwd,
          "-SecurityTypes",
          "VncAuth",
          "-AutoSelect=0",
          "-FullColor",
          "-PreferredEncoding",
          preferred,
          `127.0.0.1::${d.port}`,
        ],
        { env: { ...process.env, DISPLAY: display } },
      );
      /** Waits until the viewer's screen equals the demo's framebuffer as it is now. */
      const shows = async (label: string): Promise<void> => {
        const want: RgbaImage = { width: 1280, height: 720, rgba: d.desktop.fb.data.slice() };
        for (let i = 3; i < want.rgba.length; i += 4) want.rgba[i] = 255;
        let last = compareImages(await captureX(display), want, EXACT);
        const deadline = Date.now() + 20_000;
        while (!last.ok && Date.now() < deadline && viewer.alive()) {
          await Bun.sleep(200);
          last = compareImages(await captureX(display), want, EXACT);
        }
        if (!last.ok)
          writePng(`test/artifacts/vncviewer-demo-${preferred}-${label}.png`, await captureX(display));
        // The stats and the viewer's log ride along in the compared value, so a failure shows them.
        expect({
          ok: last.ok,
          label,
          stats: describeStats(last),
          log: last.ok ? "" : viewer.stderr(),
        }).toEqual({
          ok: true,
          label,
          stats: expect.any(String),
          log: "",
        });
      };
      await shows("first");
      const before = d.rectsSent.get(encoding) ?? 0;
      expect(before).toBeGreaterThan(0); // the encoding under test is the one that was sent
      d.tick(4100); // clock, ball, log scroll: CopyRects and dirty rects
      await shows("after an incremental update");
      expect(d.rectsSent.get(encoding) ?? 0).toBeGreaterThan(before);
      expect(d.viewers).toBe(1);
      await viewer.kill();
    }, 60_000);
  }
});
