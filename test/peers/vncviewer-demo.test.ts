// A real viewer (TigerVNC vncviewer 1.12, full screen under Xvfb) against the demo device with VNC
// Authentication: the viewer's screen, captured losslessly, becomes exactly the demo's framebuffer. Hextile
// over RFB is lossless and vncviewer asks for 32 bpp true colour, so no tolerance is needed.

import { afterAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { type DemoDevice, startDemoDevice } from "../../relay/demo/server.ts";
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
  test("VNC Authentication, full screen: the viewer shows the demo's pixels exactly", async () => {
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
        `127.0.0.1::${d.port}`,
      ],
      { env: { ...process.env, DISPLAY: display } },
    );
    const want: RgbaImage = { width: 1280, height: 720, rgba: d.desktop.fb.data.slice() };
    for (let i = 3; i < want.rgba.length; i += 4) want.rgba[i] = 255;
    let last = compareImages(await captureX(display), want, EXACT);
    const deadline = Date.now() + 20_000;
    while (!last.ok && Date.now() < deadline && viewer.alive()) {
      await Bun.sleep(200);
      last = compareImages(await captureX(display), want, EXACT);
    }
    if (!last.ok) writePng("test/artifacts/vncviewer-demo.png", await captureX(display));
    expect(describeStats(last), viewer.stderr()).toBe(describeStats({ ...last, ok: true }));
    expect(d.viewers).toBe(1);
    await viewer.kill();
  }, 60_000);
});
