// The browser path through the real relay: headless Chromium (Debian's, driven by playwright-core) logs
// nothing in, it opens the viewerUrl the API returned for a session on the built-in demo device; noVNC in the
// page connects over WSS to /ws/view/:session with the ticket, and the canvas, screenshotted at 1:1, equals
// the demo's framebuffer exactly. The same link a second time is refused (the ticket was single use), and a
// view-only session says so on the page and its keys never reach the device.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DemoDevice, startDemoDevice } from "../../relay/demo/server.ts";
import { type RunningServer, startServer } from "../../relay/serve/server.ts";
import { VIEWER_BAR_HEIGHT_PX } from "../../relay/serve/viewer.ts";
import {
  type ChromiumHandle,
  closeAllBrowsers,
  launchChromium,
  openPage,
  requireBrowser,
  saveArtifact,
  screenshotElement,
} from "../peers/browser.ts";
import { compareImages, describeStats, EXACT, type RgbaImage } from "../peers/images.ts";
import { killAll } from "../peers/rig.ts";

const ok = requireBrowser();
const PASSWORD = "browser-test-admin";
let relay: RunningServer;
let demo: DemoDevice;
let chromium: ChromiumHandle;
let token = "";

async function session(viewOnly: boolean): Promise<{ id: string; viewerUrl: string }> {
  const res = await fetch(`${relay.url}/api/devices/demo/sessions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ viewOnly }),
    tls: { ca: relay.tls.certPem },
  });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; viewerUrl: string };
}

// Skips only outside CI, loudly: requireBrowser() throws when CI=true, so in CI these tests always run.
describe.skipIf(!ok)("browser viewer through the relay", () => {
  beforeAll(async () => {
    relay = await startServer({
      listen: "127.0.0.1:0",
      dataDir: mkdtempSync(join(tmpdir(), "shadowrelay-browser-")),
      adminPassword: PASSWORD,
      demo: {
        start: async () => {
          demo = await startDemoDevice({ host: "127.0.0.1", port: 0, fps: 0 });
          demo.tick(2500);
          return demo;
        },
      },
    });
    const login = await fetch(`${relay.url}/api/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "admin", password: PASSWORD }),
      tls: { ca: relay.tls.certPem },
    });
    token = ((await login.json()) as { token: string }).token;
    chromium = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await closeAllBrowsers();
    await relay?.stop();
    await killAll();
  });

  test("the viewer page shows the demo's pixels exactly; the link works once", async () => {
    const s = await session(false);
    const w = await openPage(chromium, {
      viewport: { width: 1280, height: 720 + VIEWER_BAR_HEIGHT_PX },
      ignoreHTTPSErrors: true,
    });
    try {
      await w.page.goto(s.viewerUrl);
      await w.page.locator('body[data-state="connected"]').waitFor({ timeout: 20_000 });
      const want: RgbaImage = { width: 1280, height: 720, rgba: demo.desktop.fb.data.slice() };
      for (let i = 3; i < want.rgba.length; i += 4) want.rgba[i] = 255;
      const canvas = w.page.locator("#screen canvas");
      let shot = await screenshotElement(canvas);
      let last = compareImages(shot, want, EXACT);
      for (const deadline = Date.now() + 20_000; !last.ok && Date.now() < deadline; ) {
        await Bun.sleep(200);
        shot = await screenshotElement(canvas);
        last = compareImages(shot, want, EXACT);
      }
      saveArtifact("relay-browser-viewer", shot);
      expect({ ok: last.ok, stats: describeStats(last) }).toEqual({ ok: true, stats: expect.any(String) });
      expect(w.cspViolations).toEqual([]);
      expect(w.pageErrors).toEqual([]);
    } finally {
      await w.close();
    }
    // The ticket was redeemed: the same link again gets no session.
    const again = await openPage(chromium, { ignoreHTTPSErrors: true });
    try {
      await again.page.goto(s.viewerUrl);
      await again.page
        .locator('body[data-state="disconnected"], body[data-state="failed"]')
        .waitFor({ timeout: 20_000 });
    } finally {
      await again.close();
    }
  }, 60_000);

  test("view-only: the page says so and typed keys never reach the device", async () => {
    const s = await session(true);
    const w = await openPage(chromium, {
      viewport: { width: 1280, height: 720 + VIEWER_BAR_HEIGHT_PX },
      ignoreHTTPSErrors: true,
    });
    try {
      await w.page.goto(s.viewerUrl);
      await w.page.locator('body[data-state="connected"]').waitFor({ timeout: 20_000 });
      expect(await w.page.locator("body").textContent()).toContain("view only");
      const before = demo.desktop.typedText;
      await w.page.locator("#screen canvas").click();
      await w.page.keyboard.type("xyz");
      await Bun.sleep(300);
      expect(demo.desktop.typedText).toBe(before);
    } finally {
      await w.close();
    }
  }, 60_000);
});
