// The browser path in gateway mode, all real: Xvnc with a VNC password and a known picture on its root window
// → our agent (enrolled with a one-time token, answering the device's password itself) → the relay →
// headless Chromium opening the viewerUrl of a browser session. noVNC's canvas, screenshotted at 1:1 (the
// viewport is the device's size plus the viewer's bar, so scaleViewport scales by exactly 1), equals a
// lossless capture of the Xvnc display (within a stated tolerance for the gradient, which Xvnc sends to noVNC
// as JPEG); then the device's picture changes to flat colours and the canvas follows, exactly.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type AgentHandle, startAgent } from "../../relay/agent/agent.ts";
import { enrollAgent } from "../../relay/agent/enroll.ts";
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
  type WatchedPage,
} from "../peers/browser.ts";
import { type CompareOptions, compareImages, describeStats, EXACT, type RgbaImage } from "../peers/images.ts";
import {
  captureX,
  killAll,
  makeTempDir,
  PAINT_PEERS,
  paint,
  requirePeer,
  startXvnc,
  XVNC_PEERS,
  type Xvnc,
} from "../peers/rig.ts";

/** Bounds of this file's waits. */
export const GATEWAY_BROWSER_DEFAULTS = {
  /** Until the enrolled agent's device is online, ms. @default 10000 */
  onlineMs: 10_000,
  /** Until the viewer page says it is connected, ms. @default 20000 */
  connectedMs: 20_000,
  /** Until the canvas equals the device's screen, ms. @default 20000 */
  pictureMs: 20_000,
};

const ok = requireBrowser() && requirePeer(...XVNC_PEERS, ...PAINT_PEERS);
const ADMIN = "gateway-browser-admin";
const VNC_PASSWORD = "gwbrowse";
const WIDTH = 640;
const HEIGHT = 400;
let relay: RunningServer;
let xvnc: Xvnc;
let agent: AgentHandle;
let deviceId = "";
let chromium: ChromiumHandle;
let token = "";

// biome-ignore lint/suspicious/noExplicitAny: response bodies of many shapes, read only by assertions
type Json = any;

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
  const res = await fetch(`${relay.url}${path}`, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    tls: { ca: relay.tls.certPem },
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

/**
 * noVNC asks for Tight with quality level 6, so Xvnc sends rects with many colours (the test pattern's
 * gradient, and whatever flat area shares a rect with it) as JPEG: measured max channel difference 4.
 */
const JPEG_TOLERANCE: CompareOptions = { maxChannelDiff: 12, maxBadFraction: 0 };

/** Nine flat colours (16-px cells of eight colours, 1-px white lines every 32 px): Tight palette rects, lossless. */
function flatPattern(width: number, height: number): RgbaImage {
  const colours: readonly (readonly [number, number, number])[] = [
    [32, 64, 160],
    [224, 176, 32],
    [200, 30, 60],
    [20, 140, 90],
    [0, 0, 0],
    [250, 250, 120],
    [90, 20, 140],
    [10, 200, 230],
  ];
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b] =
        x % 32 === 31 || y % 32 === 31
          ? [255, 255, 255]
          : colours[((x >> 4) + 3 * (y >> 4)) % colours.length]!;
      rgba.set([r, g, b, 255], (y * width + x) * 4);
    }
  }
  return { width, height, rgba };
}

/** Waits until the canvas matches `want`; the last screenshot is saved as an artifact either way. */
async function canvasShows(
  w: WatchedPage,
  want: RgbaImage,
  label: string,
  opts: CompareOptions,
): Promise<void> {
  const canvas = w.page.locator("#screen canvas");
  let shot = await screenshotElement(canvas);
  let last = compareImages(shot, want, opts);
  for (
    const deadline = Date.now() + GATEWAY_BROWSER_DEFAULTS.pictureMs;
    !last.ok && Date.now() < deadline;
  ) {
    await Bun.sleep(200);
    shot = await screenshotElement(canvas);
    last = compareImages(shot, want, opts);
  }
  saveArtifact(`gateway-browser-${label}`, shot);
  expect({ ok: last.ok, label, stats: describeStats(last) }).toEqual({
    ok: true,
    label,
    stats: expect.any(String),
  });
}

// Skips only outside CI, loudly: requireBrowser()/requirePeer() throw when CI=true, so in CI these always run.
describe.skipIf(!ok)("gateway mode in the browser: Xvnc → agent → relay → Chromium", () => {
  beforeAll(async () => {
    xvnc = await startXvnc({ width: WIDTH, height: HEIGHT, password: VNC_PASSWORD });
    await paint(xvnc, { pattern: "test" });
    relay = await startServer({
      listen: "127.0.0.1:0",
      dataDir: makeTempDir("shadowrelay-gw-browser-"),
      adminPassword: ADMIN,
    });
    token = (await api("POST", "/api/login", { name: "admin", password: ADMIN })).json.token;
    const enrollment = await api("POST", "/api/enrollments", { name: "browser-lab" });
    expect(enrollment.status).toBe(201);
    const stateDir = makeTempDir("shadowrelay-gw-browser-agent-");
    const enrolled = await enrollAgent({
      relayUrl: relay.url,
      token: enrollment.json.token,
      stateDir,
      relayFingerprint: relay.tls.certSha256Hex,
    });
    deviceId = enrolled.device.id;
    agent = await startAgent({
      stateDir,
      vnc: { host: "127.0.0.1", port: xvnc.port },
      vncPassword: new TextEncoder().encode(VNC_PASSWORD),
      consent: "none",
      backoff: { baseMs: 50, capMs: 500 },
    });
    for (const deadline = Date.now() + GATEWAY_BROWSER_DEFAULTS.onlineMs; ; ) {
      const devices = (await api("GET", "/api/devices")).json as { id: string; online: boolean }[];
      if (devices.find((d) => d.id === deviceId)?.online) break;
      if (Date.now() > deadline) throw new Error("the agent's device never came online");
      await Bun.sleep(50);
    }
    chromium = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await closeAllBrowsers();
    await agent?.stop();
    await relay?.stop();
    await xvnc?.stop();
    await killAll();
  });

  test("the canvas shows the Xvnc display, and follows it exactly when the picture changes", async () => {
    const s = await api("POST", `/api/devices/${deviceId}/sessions`, { mode: "pipe", viewOnly: false });
    expect(s.status).toBe(201);
    const w = await openPage(chromium, {
      viewport: { width: WIDTH, height: HEIGHT + VIEWER_BAR_HEIGHT_PX },
      ignoreHTTPSErrors: true,
    });
    try {
      await w.page.goto(s.json.viewerUrl);
      await w.page
        .locator('body[data-state="connected"]')
        .waitFor({ timeout: GATEWAY_BROWSER_DEFAULTS.connectedMs });
      // testPattern(): colour bars, a gradient, a checkerboard with 1-px lines; the gradient goes as JPEG.
      await canvasShows(w, await captureX(xvnc), "test-pattern", JPEG_TOLERANCE);
      // A picture the first one does not contain, in few colours: a live update, and exact.
      const flat = await paint(xvnc, { image: flatPattern(WIDTH, HEIGHT) });
      await canvasShows(w, flat, "flat", EXACT);
      // And one more change, to a colour neither picture holds.
      await canvasShows(w, await paint(xvnc, { solid: "#3366cc" }), "solid", EXACT);
      expect(w.cspViolations).toEqual([]);
      expect(w.pageErrors).toEqual([]);
      const session = (await api("GET", `/api/sessions/${s.json.id}`)).json;
      expect({ state: session.state, deviceId: session.deviceId }).toEqual({ state: "active", deviceId });
    } finally {
      await w.close();
    }
    // Closing the page ends the session, and the audit has its start with the agent's consent.
    let session: Json;
    for (const deadline = Date.now() + 5_000; ; ) {
      session = (await api("GET", `/api/sessions/${s.json.id}`)).json;
      if (session.state === "ended" || Date.now() > deadline) break;
      await Bun.sleep(50);
    }
    expect(session.state).toBe("ended");
    const starts = (await api("GET", "/api/audit?kind=session.start")).json as {
      payload: { session: string; consent: string; audience: string };
    }[];
    expect(starts.find((r) => r.payload.session === s.json.id)?.payload).toMatchObject({
      consent: "granted",
      audience: "browser",
    });
  }, 60_000);
});
