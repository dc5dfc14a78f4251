// The browser viewer (relay/serve/viewer.ts + viewer-client.js): its routes answered in-process (headers,
// escaping, the asset allow-list and traversal attempts, the module graph noVNC needs), then the real thing:
// noVNC 1.7.0 in headless Chromium (Debian `chromium`, playwright-core) over TLS against a stand-in for the
// relay's viewer WebSocket that bridges to the demo device over TCP. The canvas, screenshotted at 1:1,
// must equal the demo's framebuffer exactly (noVNC draws lossless encodings losslessly), before and after
// an incremental update; a refused ticket (close 4401) must read as such; the page must log no error and
// violate none of its Content-Security-Policy (the inline-script probe proves the watcher sees violations).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import type { Server, ServerWebSocket } from "bun";
import { type DemoDevice, startDemoDevice } from "../../relay/demo/server.ts";
import { connectTcp, type TcpLink } from "../../relay/rfb/tcp.ts";
import {
  VIEWER_BAR_HEIGHT_PX,
  VIEWER_CSP,
  VIEWER_DEFAULTS,
  type ViewerOptions,
  type ViewerPageInfo,
  viewerAssetDigest,
  viewerRoutes,
} from "../../relay/serve/viewer.ts";
import { generateSelfSigned } from "../../relay/util/x509.ts";
import {
  type ChromiumHandle,
  closeAllBrowsers,
  launchChromium,
  openPage,
  requireBrowser,
  saveArtifact,
  screenshotElement,
  type WatchedPage,
} from "./browser.ts";
import { compareImages, describeStats, EXACT, type RgbaImage } from "./images.ts";
import { isPidAlive, killAll } from "./rig.ts";

const SESSION = "s-42_demo";
// Characters that need encoding in a query ('+' would turn into a space if the client got it wrong).
const TICKET = "v1.tk-_~+/=AbC";
const DIGEST = viewerAssetDigest();
const app = viewerRoutes();

const get = (path: string, headers?: Record<string, string>) =>
  app.request(`http://relay.test${path}`, headers ? { headers } : {});

// ---------------------------------------------------------------------------------------------------------
// Routes, in-process

describe("viewer page", () => {
  test("is served with the CSP and headers, scripts and styles only by URL, and never echoes the ticket", async () => {
    const res = await get(`/view/${SESSION}?ticket=${encodeURIComponent(TICKET)}`);
    expect(res.status).toBe(200);
    expect(Object.fromEntries(res.headers)).toMatchObject({
      "content-type": "text/html; charset=utf-8",
      "content-security-policy":
        "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; " +
        "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
      "x-content-type-options": "nosniff",
      "x-frame-options": "DENY",
      "referrer-policy": "no-referrer",
      "cache-control": "no-store",
    });
    const html = await res.text();
    // Inline code of any kind would be refused by the CSP: none may be in the markup.
    const scripts = html.match(/<script\b[^>]*>[\s\S]*?<\/script>/g) ?? [];
    expect(scripts).toEqual([
      `<script type="module" src="/viewer-assets/${DIGEST}/viewer-client.js"></script>`,
    ]);
    expect(html).not.toMatch(/\sstyle=|<style|\son[a-z]+=|javascript:/i);
    expect(html).not.toContain("v1.tk");
    expect(html).toContain(`data-ws-path="/ws/view/${SESSION}"`);
    expect(html).toContain(`data-rfb="/novnc/${DIGEST}/core/rfb.js"`);
    expect(html).toContain('data-view-only="false"');
    // Every local URL the page names is served.
    for (const [, url] of html.matchAll(/(?:src|href)="(\/[^"]+)"/g)) {
      expect({ url, status: (await get(url!)).status }).toEqual({ url, status: 200 });
    }
  });

  test("a session id that is not [A-Za-z0-9_-]{1,128} gets a 404 page with no script", async () => {
    for (const bad of [
      "a.b",
      "a%3Cb",
      "a%2Fb",
      "..%2F..%2Fx",
      "x".repeat(VIEWER_DEFAULTS.maxSessionIdLength + 1),
    ]) {
      const res = await get(`/view/${bad}?ticket=t`);
      expect({ bad, status: res.status }).toEqual({ bad, status: 404 });
      const html = await res.text();
      expect(html).not.toContain("<script");
      expect(res.headers.get("content-security-policy")).toBe(VIEWER_CSP);
    }
    expect((await get(`/view/${"x".repeat(VIEWER_DEFAULTS.maxSessionIdLength)}?ticket=t`)).status).toBe(200);
  });

  test("no ticket, two tickets, an empty, overlong or non-printable one: 400 saying to ask for a new link", async () => {
    const long = "t".repeat(VIEWER_DEFAULTS.maxTicketLength + 1);
    for (const query of [
      "",
      "?ticket=",
      "?ticket=a&ticket=b",
      `?ticket=${long}`,
      "?ticket=a%20b",
      "?ticket=%00",
    ]) {
      const res = await get(`/view/${SESSION}${query}`);
      expect({ query: query.slice(0, 40), status: res.status }).toEqual({
        query: query.slice(0, 40),
        status: 400,
      });
      const html = await res.text();
      expect(html).toContain("ask for a new link");
      expect(html).not.toContain("<script");
    }
  });

  test("describe(): its title is escaped, viewOnly reaches the page, refused gives 403 without script", async () => {
    const calls: [string, string][] = [];
    let answer: ViewerPageInfo | undefined;
    const described = viewerRoutes({
      describe: (session, ticket) => {
        calls.push([session, ticket]);
        return answer;
      },
    });
    const page = async () => {
      const res = await described.request(
        `http://relay.test/view/${SESSION}?ticket=${encodeURIComponent(TICKET)}`,
      );
      return { status: res.status, html: await res.text() };
    };
    answer = { title: `<img src=x onerror="alert(1)">&'`, viewOnly: true };
    const shown = await page();
    expect(shown.status).toBe(200);
    expect(shown.html).toContain(
      "<title>&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#39; · shadowrelay</title>",
    );
    expect(shown.html).not.toContain("<img");
    expect(shown.html).toContain('data-view-only="true"');
    answer = { refused: "<b>expired</b>" };
    const refused = await page();
    expect(refused.status).toBe(403);
    expect(refused.html).toContain("&lt;b&gt;expired&lt;/b&gt;");
    expect(refused.html).not.toContain("<script");
    expect(calls).toEqual([
      [SESSION, TICKET],
      [SESSION, TICKET],
    ]);
  });
});

describe("viewer assets", () => {
  const novncFiles = (dir: string): string[] =>
    readdirSync(`${VIEWER_DEFAULTS.novncDir}/${dir}`, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith(".js"))
      .map((e) => `${e.parentPath.slice(VIEWER_DEFAULTS.novncDir.length + 1)}/${e.name}`);

  test("every module of noVNC core/ and vendor/pako/ is served as JavaScript, cached immutably, with a 304", async () => {
    const files = [...novncFiles("core"), ...novncFiles("vendor/pako")];
    expect(files.length).toBeGreaterThan(40);
    for (const file of files) {
      const res = await get(`/novnc/${DIGEST}/${file}`);
      expect({ file, status: res.status, type: res.headers.get("content-type") }).toEqual({
        file,
        status: 200,
        type: "text/javascript; charset=utf-8",
      });
      expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(
        new Uint8Array(await Bun.file(`${VIEWER_DEFAULTS.novncDir}/${file}`).arrayBuffer()),
      );
    }
    const first = await get(`/novnc/${DIGEST}/core/rfb.js`);
    const etag = first.headers.get("etag")!;
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{22}"$/);
    const again = await get(`/novnc/${DIGEST}/core/rfb.js`, { "if-none-match": etag });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe("");
    const css = await get(`/viewer-assets/${DIGEST}/viewer.css`);
    expect(css.headers.get("content-type")).toBe("text/css; charset=utf-8");
    expect(await css.text()).toContain(`height: ${VIEWER_BAR_HEIGHT_PX}px`);
  });

  test("the modules' relative imports all resolve to served files (the browser can load the whole graph)", async () => {
    const seen = new Set<string>();
    const queue = [`/viewer-assets/${DIGEST}/viewer-client.js`, `/novnc/${DIGEST}/core/rfb.js`];
    while (queue.length > 0) {
      const path = queue.pop()!;
      if (seen.has(path)) continue;
      seen.add(path);
      const res = await get(path);
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
      const source = await res.text();
      for (const [, spec] of source.matchAll(
        /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*["']([^"']+)["']/g,
      )) {
        expect(spec!).toMatch(/^\.\.?\//);
        queue.push(new URL(spec!, `http://relay.test${path}`).pathname);
      }
    }
    expect(seen.size).toBeGreaterThan(30);
  });

  test("anything else under the asset prefixes is 404: other files, other digests, traversal in any spelling", async () => {
    const attempts = [
      `/novnc/${DIGEST}/package.json`,
      `/novnc/${DIGEST}/docs/API.md`,
      `/novnc/${DIGEST}/LICENSE.txt`,
      `/novnc/${DIGEST}/vendor/pako/README.md`,
      `/novnc/${DIGEST}/core/rfb.js/`,
      `/novnc/${DIGEST}/core//rfb.js`,
      `/novnc/${DIGEST}/core/./rfb.js.map`,
      `/novnc/${DIGEST}/core/%72fb.js`,
      `/novnc/${DIGEST}/core%2frfb.js`,
      `/novnc/${DIGEST}/core/%2e%2e/package.json`,
      `/novnc/${DIGEST}/core/..%2fpackage.json`,
      `/novnc/${DIGEST}/core/..%5c..%5cpackage.json`,
      `/novnc/${DIGEST}/../../../etc/passwd`,
      `/novnc/${"0".repeat(16)}/core/rfb.js`,
      "/novnc/core/rfb.js",
      `/viewer-assets/${DIGEST}/viewer.ts`,
      `/viewer-assets/${DIGEST}/../viewer.ts`,
      `/viewer-assets/${DIGEST}/%2e%2e/viewer.ts`,
    ];
    for (const path of attempts) {
      const res = await get(path);
      expect({ path, status: res.status }).toEqual({ path, status: 404 });
    }
  });

  test("raw request lines with .. that no URL parser cleaned up are 404 over a real socket too", async () => {
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      development: false,
      fetch: (r) => app.fetch(r),
    });
    try {
      const statusOf = async (target: string): Promise<string> => {
        let text = "";
        const { promise, resolve } = Promise.withResolvers<void>();
        const socket = await Bun.connect({
          hostname: "127.0.0.1",
          port: server.port!,
          socket: {
            data: (_s, d) => {
              text += new TextDecoder().decode(d);
            },
            close: () => resolve(),
            error: () => resolve(),
          },
        });
        socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
        await Promise.race([promise, Bun.sleep(5_000)]);
        socket.end();
        return text.split("\r\n")[0] ?? "";
      };
      expect(await statusOf(`/novnc/${DIGEST}/core/rfb.js`)).toBe("HTTP/1.1 200 OK");
      for (const target of [
        `/novnc/${DIGEST}/core/../package.json`,
        `/novnc/${DIGEST}/core/../../../../../etc/passwd`,
        `/novnc/${DIGEST}/vendor/pako/../../core/../package.json`,
        `/viewer-assets/${DIGEST}/../../relay/serve/viewer.ts`,
      ]) {
        expect({ target, status: await statusOf(target) }).toEqual({
          target,
          status: "HTTP/1.1 404 Not Found",
        });
      }
    } finally {
      await server.stop(true);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
// noVNC in Chromium against a stand-in relay

interface BridgeData {
  session: string;
  ticket: string | null;
  link: TcpLink | null;
  pending: Uint8Array[];
  closed: boolean;
}

interface StandIn {
  origin: string;
  /** Session and ticket of every viewer WebSocket upgrade, in order. */
  upgrades: { session: string; ticket: string | null }[];
  stop(): Promise<void>;
}

/**
 * The relay's part for this test: viewerRoutes() plus a `/ws/view/:session` WebSocket that accepts only
 * TICKET (else closes with 4401 as the relay's AUTH_FAILED does) and pipes bytes to the demo device.
 */
async function startStandIn(device: DemoDevice, describePage?: ViewerOptions["describe"]): Promise<StandIn> {
  const cert = await generateSelfSigned({ commonName: "127.0.0.1", ipAddresses: ["127.0.0.1"] });
  const routes = viewerRoutes(describePage ? { describe: describePage } : {});
  const upgrades: StandIn["upgrades"] = [];
  const bridge = (ws: ServerWebSocket<BridgeData>) => {
    connectTcp({
      hostname: device.host,
      port: device.port,
      open: () => ({
        data: (bytes) => {
          ws.send(bytes);
        },
        close: () => ws.close(1000, "device closed"),
      }),
    }).then(
      (link) => {
        if (ws.data.closed) return link.end();
        ws.data.link = link;
        for (const b of ws.data.pending.splice(0)) link.write(b);
      },
      () => ws.close(1011, "device unreachable"),
    );
  };
  const server: Server<BridgeData> = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    development: false,
    tls: { cert: cert.certPem, key: cert.keyPem },
    fetch(req, srv) {
      const url = new URL(req.url);
      const ws = /^\/ws\/view\/([A-Za-z0-9_-]+)$/.exec(url.pathname);
      if (ws) {
        const data: BridgeData = {
          session: ws[1]!,
          ticket: url.searchParams.get("ticket"),
          link: null,
          pending: [],
          closed: false,
        };
        upgrades.push({ session: data.session, ticket: data.ticket });
        return srv.upgrade(req, { data }) ? undefined : new Response("upgrade failed", { status: 400 });
      }
      if (url.pathname === "/csp-probe") {
        // The viewer's own policy over a page with inline code: the watcher must report it.
        const html = `<!doctype html><title>probe</title><script>document.title = "inline ran";</script>`;
        return new Response(html, {
          headers: { "content-type": "text/html; charset=utf-8", "content-security-policy": VIEWER_CSP },
        });
      }
      return routes.fetch(req);
    },
    websocket: {
      data: {} as BridgeData,
      open(ws) {
        if (ws.data.session !== SESSION || ws.data.ticket !== TICKET) ws.close(4401, "authentication failed");
        else bridge(ws);
      },
      message(ws, message) {
        if (typeof message === "string") return ws.close(4400, "text frame on a binary route");
        const bytes = new Uint8Array(message);
        if (ws.data.link) ws.data.link.write(bytes);
        else ws.data.pending.push(bytes);
      },
      close(ws) {
        ws.data.closed = true;
        ws.data.link?.end();
      },
    },
  });
  return {
    origin: `https://127.0.0.1:${server.port}`,
    upgrades,
    stop: () => server.stop(true),
  };
}

const ok = requireBrowser();

/** Polls until `check` holds (bounded); fails naming what was awaited. */
async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await Bun.sleep(25);
  expect({ what, ok: check() }).toEqual({ what, ok: true });
}

// Skips only outside CI, loudly: requireBrowser() throws when CI=true, so in CI these tests always run.
describe.skipIf(!ok)("noVNC viewer page in headless Chromium", () => {
  let device: DemoDevice;
  let relay: StandIn;
  let chromium: ChromiumHandle;
  const pages: WatchedPage[] = [];
  let viewOnly = false;

  beforeAll(async () => {
    device = await startDemoDevice({ host: "127.0.0.1", port: 0, fps: 0 });
    device.tick(2500);
    relay = await startStandIn(device, () => ({ title: "Demo device", viewOnly }));
    chromium = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    for (const p of pages) await p.close().catch(() => undefined);
    await closeAllBrowsers();
    await relay?.stop();
    await device?.stop();
    await killAll();
  });

  const open = async (ticket: string, viewport = { width: 1280, height: 720 + VIEWER_BAR_HEIGHT_PX }) => {
    const watched = await openPage(chromium, { viewport, ignoreHTTPSErrors: true });
    pages.push(watched);
    await watched.page.goto(`${relay.origin}/view/${SESSION}?ticket=${encodeURIComponent(ticket)}`);
    return watched;
  };

  /** The demo's framebuffer as it is now, as the RGBA a screenshot gives. */
  const framebuffer = (): RgbaImage => {
    const fb = device.desktop.fb;
    const rgba = fb.data.slice();
    for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255;
    return { width: fb.width, height: fb.height, rgba };
  };

  /** Screenshots the canvas until it equals the demo's framebuffer exactly (bounded), saving the last one. */
  const expectCanvasShowsDemo = async (w: WatchedPage, label: string) => {
    const canvas = w.page.locator("#screen canvas");
    const want = framebuffer();
    let shot = await screenshotElement(canvas);
    let last = compareImages(shot, want, EXACT);
    const deadline = Date.now() + 20_000;
    while (!last.ok && Date.now() < deadline) {
      await Bun.sleep(200);
      shot = await screenshotElement(canvas);
      last = compareImages(shot, want, EXACT);
    }
    saveArtifact(`browser-viewer-${label}`, shot);
    expect({ label, size: `${shot.width}×${shot.height}`, ok: last.ok, stats: describeStats(last) }).toEqual({
      label,
      size: "1280×720",
      ok: true,
      stats: expect.any(String),
    });
  };

  const expectQuiet = (w: WatchedPage) => {
    expect({
      consoleErrors: w.consoleErrors(),
      pageErrors: w.pageErrors,
      cspViolations: w.cspViolations,
      httpErrors: w.httpErrors,
    }).toEqual({ consoleErrors: [], pageErrors: [], cspViolations: [], httpErrors: [] });
  };

  test("connects over wss:, shows the demo's pixels exactly at 1:1, then again after an update", async () => {
    const upgradesBefore = relay.upgrades.length;
    const w = await open(TICKET);
    await w.page.locator('body[data-state="connected"]').waitFor({ timeout: 20_000 });
    expect(await w.page.locator("#status").textContent()).toBe("Connected");
    // The ticket went through exactly once, unchanged, and left the address bar.
    expect(relay.upgrades.slice(upgradesBefore)).toEqual([{ session: SESSION, ticket: TICKET }]);
    expect(w.page.url()).toBe(`${relay.origin}/view/${SESSION}`);
    // The screen below the bar is exactly the desktop's size, so scaleViewport draws at 1:1.
    const geometry = await w.page.evaluate(() => {
      const canvas = document.querySelector("#screen canvas") as HTMLCanvasElement;
      const r = canvas.getBoundingClientRect();
      return {
        width: canvas.width,
        height: canvas.height,
        cssWidth: r.width,
        cssHeight: r.height,
        top: r.top,
      };
    });
    expect(geometry).toEqual({
      width: 1280,
      height: 720,
      cssWidth: 1280,
      cssHeight: 720,
      top: VIEWER_BAR_HEIGHT_PX,
    });
    await expectCanvasShowsDemo(w, "first");
    device.tick(4100); // clock, ball, log scroll: CopyRects and dirty rects on the same zlib streams
    await expectCanvasShowsDemo(w, "after-update");
    expect(await w.page.title()).toBe("shadowrelay demo device · shadowrelay");
    saveArtifact("browser-viewer-page", await screenshotElement(w.page.locator("body")));
    // Input reaches the device: noVNC grabbed the keyboard on connect.
    const typed = device.desktop.typedText;
    await w.page.keyboard.type("hi");
    await until(() => device.desktop.typedText === `${typed}hi`, "typed keys reach the device");
    // The Disconnect button ends the session and says who ended it.
    const viewers = device.viewers;
    await w.page.locator("#disconnect").click();
    await w.page.locator('body[data-state="disconnected"]').waitFor({ timeout: 10_000 });
    expect(await w.page.locator("#status").textContent()).toBe("You disconnected.");
    expect(await w.page.locator("#notice").textContent()).toBe("You disconnected.");
    await until(() => device.viewers === viewers - 1, "the device sees the viewer go");
    expectQuiet(w);
    await w.close();
  }, 90_000);

  test("a smaller window scales the desktop down to fit, keeping its aspect", async () => {
    const w = await open(TICKET, { width: 640, height: 360 + VIEWER_BAR_HEIGHT_PX });
    await w.page.locator('body[data-state="connected"]').waitFor({ timeout: 20_000 });
    const css = await w.page.evaluate(() => {
      const r = (document.querySelector("#screen canvas") as HTMLCanvasElement).getBoundingClientRect();
      return { width: r.width, height: r.height };
    });
    expect(css).toEqual({ width: 640, height: 360 });
    expectQuiet(w);
    await w.close();
  }, 60_000);

  test("a view-only ticket says so, and noVNC sends the device no input", async () => {
    viewOnly = true;
    try {
      const w = await open(TICKET);
      await w.page.locator('body[data-state="connected"]').waitFor({ timeout: 20_000 });
      expect(await w.page.locator("#status").textContent()).toBe("Connected, view only");
      expect(await w.page.locator("#mode").textContent()).toBe("View only");
      // noVNC sends no input: keys typed now would be on the wire before the update request that follows
      // the next update, so two updates later the device would have them.
      const typed = device.desktop.typedText;
      await w.page.locator("#screen canvas").click();
      await w.page.keyboard.type("zz");
      device.tick(5200);
      await expectCanvasShowsDemo(w, "view-only-1");
      device.tick(6300);
      await expectCanvasShowsDemo(w, "view-only-2");
      expect(device.desktop.typedText).toBe(typed);
      expectQuiet(w);
      await w.close();
    } finally {
      viewOnly = false;
    }
  }, 60_000);

  test("a refused ticket (close 4401) shows a clear message with the code and the relay's reason", async () => {
    const w = await open("not-the-ticket");
    await w.page.locator('body[data-state="disconnected"]').waitFor({ timeout: 20_000 });
    const body = w.page.locator("body");
    expect(await body.getAttribute("data-close-code")).toBe("4401");
    expect(await body.getAttribute("data-close-reason")).toBe("authentication failed");
    expect(await w.page.locator("#status").textContent()).toBe(
      "The relay refused the ticket: it has expired, was already used, or belongs to another session. " +
        "Ask for a new viewer link. (code 4401: authentication failed)",
    );
    expect(await w.page.locator("#notice").textContent()).toBe(await w.page.locator("#status").textContent());
    saveArtifact("browser-viewer-refused", await screenshotElement(w.page.locator("body")));
    // noVNC itself logs the failed connect; nothing else may complain.
    for (const e of w.consoleErrors())
      expect(e).toMatch(/^Failed when connecting: Connection closed \(code: 4401/);
    expect({ pageErrors: w.pageErrors, cspViolations: w.cspViolations, httpErrors: w.httpErrors }).toEqual({
      pageErrors: [],
      cspViolations: [],
      httpErrors: [],
    });
  }, 60_000);

  test("the watcher sees CSP violations: an inline script under the viewer's policy is blocked and reported", async () => {
    const w = await openPage(chromium, { ignoreHTTPSErrors: true });
    pages.push(w);
    await w.page.goto(`${relay.origin}/csp-probe`);
    await until(() => w.cspViolations.length > 0, "a securitypolicyviolation report");
    expect(await w.page.title()).toBe("probe");
    expect(w.cspViolations.map((v) => v.effectiveDirective)).toEqual(["script-src-elem"]);
    expect(w.consoleErrors().join("\n")).toContain("Content Security Policy");
  }, 30_000);

  test("closing the browser ends every one of its processes and removes its folder", async () => {
    const pids = chromium.pids();
    expect(pids).toContain(chromium.pid);
    expect(pids.length).toBeGreaterThan(2); // the browser, its zygotes, renderers, utilities
    for (const p of pages.splice(0)) await p.close().catch(() => undefined);
    await chromium.close();
    expect(pids.filter(isPidAlive)).toEqual([]);
    expect(chromium.pids()).toEqual([]);
    expect(existsSync(chromium.dir)).toBe(false);
  }, 30_000);
});
