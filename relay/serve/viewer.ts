// The browser viewer (DESIGN.md "Browser viewer"): `/view/:session?ticket=…` serves a page that runs noVNC
// against the relay's `/ws/view/:session` WebSocket, and this module serves everything that page loads:
// its own client script and stylesheet and noVNC's ES modules (`@novnc/novnc` core/ and vendor/pako/ only).
// Hono only, no runtime I/O per request: the assets are read once into memory when the routes are built,
// so a request path is looked up in a map of known files and never turned into a filesystem path (no
// traversal by construction). Asset URLs carry a digest of all asset bytes, so they are cached immutably
// and an upgrade of noVNC or of the client changes every URL at once.

import { createHash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Hono } from "hono";

const HERE = dirname(fileURLToPath(import.meta.url));

export const VIEWER_DEFAULTS = {
  /**
   * The `@novnc/novnc` package folder; only `.js` files under its core/ and vendor/pako/ are served.
   * @default the package as Node resolution finds it from this file
   */
  novncDir: dirname(dirname(fileURLToPath(import.meta.resolve("@novnc/novnc")))),
  /** Path of the viewer WebSocket without the session id (DESIGN.md contract). @default "/ws/view/" */
  wsPathPrefix: "/ws/view/",
  /** Longest session id `/view/:session` accepts (ids are [A-Za-z0-9_-]). @default 128 */
  maxSessionIdLength: 128,
  /**
   * Longest ticket the page accepts in its query (the WebSocket endpoint checks the ticket itself).
   * @default 4096
   */
  maxTicketLength: 4096,
  /**
   * A noVNC file above this size fails viewerRoutes() (1.7.0's largest, core/rfb.js, is 119 KiB).
   * @default 1 MiB
   */
  maxAssetBytes: 1024 * 1024,
  /** How long browsers keep the digest-addressed assets. @default 31536000 (one year, with `immutable`) */
  assetMaxAgeSeconds: 31_536_000,
} as const;

/** What the page may say about a session; from the integrator's ticket check, which must not redeem it. */
export interface ViewerPageInfo {
  /** Shown as the page title (the device's name, say); escaped. @default "Session <id>" */
  title?: string;
  /** The ticket's role is view: the page says so and noVNC sends no input (the relay enforces it anyway). */
  viewOnly?: boolean;
  /** When set the page is not served: 403 with this text (escaped), and no script. */
  refused?: string;
}

export interface ViewerOptions {
  novncDir?: string;
  wsPathPrefix?: string;
  maxSessionIdLength?: number;
  maxTicketLength?: number;
  maxAssetBytes?: number;
  assetMaxAgeSeconds?: number;
  /**
   * Looked up for every page request, with the session id and the ticket from the query. Returning
   * undefined serves the page with the defaults (interactive; the WebSocket endpoint decides).
   */
  describe?: (
    session: string,
    ticket: string,
  ) => ViewerPageInfo | undefined | Promise<ViewerPageInfo | undefined>;
}

/**
 * The page's Content-Security-Policy: scripts, styles and connections from the relay's own origin only
 * (`connect-src 'self'` admits the same-origin `wss:` URL: CSP3 §6.7.2.8 matches ws/wss against http/https
 * 'self'; test/peers/browser-viewer.test.ts checks that Chromium agrees), no inline code, `data:` images
 * for noVNC's cursor and Tight-PNG rects, never framed.
 */
export const VIEWER_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "style-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const PAGE_HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "content-security-policy": VIEWER_CSP,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  // The page URL carries a ticket: never send it on as a Referer, never keep the page in a cache.
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
  "cross-origin-opener-policy": "same-origin",
} as const;

/** Height of the status bar in CSS pixels; fixed so that the remote screen below it is a whole-pixel box. */
export const VIEWER_BAR_HEIGHT_PX = 32;

// The page's stylesheet, served as a file like the rest (style-src 'self' admits no inline styles).
const VIEWER_CSS = `html, body { margin: 0; height: 100%; }
body {
  display: flex; flex-direction: column; overflow: hidden;
  background: #101418; color: #e6e9ee; font: 14px/1.2 system-ui, sans-serif;
}
#bar {
  flex: 0 0 ${VIEWER_BAR_HEIGHT_PX}px; height: ${VIEWER_BAR_HEIGHT_PX}px; box-sizing: border-box;
  display: flex; align-items: center; gap: 12px; padding: 0 10px; overflow: hidden; white-space: nowrap;
  background: #1c232c; border-bottom: 1px solid #2c3643;
}
#status { flex: 1 1 auto; overflow: hidden; text-overflow: ellipsis; }
#mode { color: #f3c969; }
#mode:empty { display: none; }
body[data-state="connected"] #status { color: #8fd694; }
body[data-state="disconnected"] #status, body[data-state="failed"] #status { color: #ff9a8f; }
#disconnect { font: inherit; padding: 2px 10px; }
#screen { flex: 1 1 auto; min-height: 0; position: relative; }
.message { margin: 2em auto; max-width: 40em; padding: 0 1em; font-size: 16px; line-height: 1.4; }
#notice[hidden] { display: none; }
`;

// The tab icon (without one, Chromium asks for /favicon.ico and logs the 404 as a console error).
const VIEWER_ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">
<rect x="1" y="2" width="14" height="10" rx="1" fill="#1c232c" stroke="#8fd694"/>
<path d="M5 14h6" stroke="#8fd694" stroke-width="1.5"/>
</svg>
`;

export class ViewerError extends Error {
  override name = "ViewerError";
}

interface Asset {
  body: Uint8Array<ArrayBuffer>;
  contentType: string;
  etag: string;
}

interface AssetSet {
  digest: string;
  /** noVNC files by path below the package folder ("core/rfb.js"). */
  novnc: Map<string, Asset>;
  /** The page's own files by name ("viewer-client.js"). */
  own: Map<string, Asset>;
}

const JS_TYPE = "text/javascript; charset=utf-8"; // RFC 9239
const CSS_TYPE = "text/css; charset=utf-8";
const SVG_TYPE = "image/svg+xml; charset=utf-8";
/** The folders of the noVNC package whose modules the page imports (core/ imports ../vendor/pako/). */
const NOVNC_DIRS = ["core", "vendor/pako"] as const;
/** File and folder names that may appear in a served path: no dot files, no "..", no escapes. */
const SAFE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;

function asset(body: Uint8Array<ArrayBuffer>, contentType: string): Asset {
  const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
  return { body, contentType, etag };
}

/** Every regular `.js` file below `root/dir` by path relative to root; symlinks and odd names are skipped. */
function collectModules(root: string, dir: string, maxBytes: number, out: Map<string, Asset>): void {
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    if (!SAFE_NAME.test(entry.name)) continue;
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) {
      collectModules(root, rel, maxBytes, out);
    } else if (entry.isFile() && entry.name.endsWith(".js")) {
      const size = lstatSync(join(root, rel)).size;
      if (size > maxBytes) throw new ViewerError(`${rel} is ${size} bytes, above maxAssetBytes ${maxBytes}`);
      out.set(rel, asset(readFileSync(join(root, rel)), JS_TYPE));
    }
  }
}

const assetCache = new Map<string, AssetSet>();

function loadAssets(novncDir: string, maxBytes: number): AssetSet {
  const key = `${novncDir}\0${maxBytes}`;
  const cached = assetCache.get(key);
  if (cached !== undefined) return cached;
  const novnc = new Map<string, Asset>();
  for (const dir of NOVNC_DIRS) {
    try {
      collectModules(novncDir, dir, maxBytes, novnc);
    } catch (err) {
      if (err instanceof ViewerError) throw err;
      throw new ViewerError(`cannot read noVNC from ${join(novncDir, dir)}`, { cause: err });
    }
  }
  if (!novnc.has("core/rfb.js")) throw new ViewerError(`no core/rfb.js in ${novncDir}`);
  const own = new Map<string, Asset>([
    ["viewer-client.js", asset(readFileSync(join(HERE, "viewer-client.js")), JS_TYPE)],
    ["viewer.css", asset(new TextEncoder().encode(VIEWER_CSS), CSS_TYPE)],
    ["icon.svg", asset(new TextEncoder().encode(VIEWER_ICON), SVG_TYPE)],
  ]);
  const hash = createHash("sha256");
  for (const [name, a] of [...own, ...novnc].sort(([x], [y]) => (x < y ? -1 : 1))) {
    hash.update(`${name}\0${a.body.length}\0`).update(a.body);
  }
  const set: AssetSet = { digest: hash.digest("hex").slice(0, 16), novnc, own };
  assetCache.set(key, set);
  return set;
}

const ESCAPES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

function escapeText(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

const SESSION_ID = /^[A-Za-z0-9_-]+$/;
/** Printable ASCII without space: what a ticket (base64url or the like) can be after URL decoding. */
const TICKET_TEXT = /^[\x21-\x7e]+$/;

function messagePage(title: string, text: string, cssUrl: string, iconUrl: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeText(title)} · shadowrelay</title>
<link rel="stylesheet" href="${escapeText(cssUrl)}">
<link rel="icon" href="${escapeText(iconUrl)}">
</head>
<body data-state="failed">
<main class="message">
<h1>${escapeText(title)}</h1>
<p id="status">${escapeText(text)}</p>
</main>
</body>
</html>
`;
}

interface ViewerPage {
  title: string;
  viewOnly: boolean;
  wsPath: string;
  cssUrl: string;
  iconUrl: string;
  clientUrl: string;
  rfbUrl: string;
}

function viewerPage(p: ViewerPage): string {
  const attr = escapeText;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeText(p.title)} · shadowrelay</title>
<link rel="stylesheet" href="${attr(p.cssUrl)}">
<link rel="icon" href="${attr(p.iconUrl)}">
<link rel="modulepreload" href="${attr(p.rfbUrl)}">
<script type="module" src="${attr(p.clientUrl)}"></script>
</head>
<body data-state="loading" data-view-only="${p.viewOnly}">
<header id="bar">
<span id="status" role="status" aria-live="polite">Loading the viewer…</span>
<span id="mode">${p.viewOnly ? "View only" : ""}</span>
<button id="disconnect" type="button" hidden>Disconnect</button>
</header>
<p id="notice" class="message" hidden></p>
<main id="screen" data-ws-path="${attr(p.wsPath)}" data-rfb="${attr(p.rfbUrl)}"></main>
<noscript><p class="message">The viewer needs JavaScript.</p></noscript>
</body>
</html>
`;
}

/**
 * The viewer routes: `GET /view/:session?ticket=…` (the page), `GET /novnc/<digest>/…` (noVNC's modules),
 * `GET /viewer-assets/<digest>/…` (the page's script and stylesheet). Mount with `app.route("/", …)`.
 * Reads noVNC and the client script when called (synchronously; a missing package throws ViewerError).
 */
export function viewerRoutes(options: ViewerOptions = {}): Hono {
  const o = {
    novncDir: options.novncDir ?? VIEWER_DEFAULTS.novncDir,
    wsPathPrefix: options.wsPathPrefix ?? VIEWER_DEFAULTS.wsPathPrefix,
    maxSessionIdLength: options.maxSessionIdLength ?? VIEWER_DEFAULTS.maxSessionIdLength,
    maxTicketLength: options.maxTicketLength ?? VIEWER_DEFAULTS.maxTicketLength,
    maxAssetBytes: options.maxAssetBytes ?? VIEWER_DEFAULTS.maxAssetBytes,
    assetMaxAgeSeconds: options.assetMaxAgeSeconds ?? VIEWER_DEFAULTS.assetMaxAgeSeconds,
    describe: options.describe,
  };
  const assets = loadAssets(o.novncDir, o.maxAssetBytes);
  const novncBase = `/novnc/${assets.digest}/`;
  const ownBase = `/viewer-assets/${assets.digest}/`;
  const cssUrl = `${ownBase}viewer.css`;
  const iconUrl = `${ownBase}icon.svg`;
  const cacheControl = `public, max-age=${o.assetMaxAgeSeconds}, immutable`;
  const app = new Hono();

  const serve = (found: Asset | undefined, ifNoneMatch: string | undefined): Response => {
    if (found === undefined) {
      return new Response("not found\n", {
        status: 404,
        headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
      });
    }
    const headers = {
      "content-type": found.contentType,
      "cache-control": cacheControl,
      etag: found.etag,
      "x-content-type-options": "nosniff",
      "cross-origin-resource-policy": "same-origin",
    };
    if (ifNoneMatch?.split(/\s*,\s*/).includes(found.etag)) {
      return new Response(null, { status: 304, headers });
    }
    return new Response(found.body, { headers });
  };

  // The raw path, not Hono's decoded one: a request names a file only by its exact, unescaped path.
  const rawPath = (url: string) => new URL(url).pathname;
  app.get("/novnc/*", (c) => {
    const path = rawPath(c.req.url);
    const found = path.startsWith(novncBase) ? assets.novnc.get(path.slice(novncBase.length)) : undefined;
    return serve(found, c.req.header("if-none-match"));
  });
  app.get("/viewer-assets/*", (c) => {
    const path = rawPath(c.req.url);
    const found = path.startsWith(ownBase) ? assets.own.get(path.slice(ownBase.length)) : undefined;
    return serve(found, c.req.header("if-none-match"));
  });

  app.get("/view/:session", async (c) => {
    const session = c.req.param("session");
    if (session.length > o.maxSessionIdLength || !SESSION_ID.test(session)) {
      const page = messagePage("No such session", "This is not a viewer link.", cssUrl, iconUrl);
      return c.body(page, 404, PAGE_HEADERS);
    }
    const tickets = c.req.queries("ticket") ?? [];
    const ticket = tickets[0];
    if (
      tickets.length !== 1 ||
      ticket === undefined ||
      ticket.length > o.maxTicketLength ||
      !TICKET_TEXT.test(ticket)
    ) {
      const text =
        "This viewer link has no valid ticket. Tickets work once and only for a minute: ask for a new link.";
      return c.body(messagePage("No ticket", text, cssUrl, iconUrl), 400, PAGE_HEADERS);
    }
    const info = (await o.describe?.(session, ticket)) ?? {};
    if (info.refused !== undefined) {
      return c.body(messagePage("Ticket refused", info.refused, cssUrl, iconUrl), 403, PAGE_HEADERS);
    }
    const page = viewerPage({
      title: info.title ?? `Session ${session}`,
      viewOnly: info.viewOnly === true,
      wsPath: `${o.wsPathPrefix}${session}`,
      cssUrl,
      iconUrl,
      clientUrl: `${ownBase}viewer-client.js`,
      rfbUrl: `${novncBase}core/rfb.js`,
    });
    return c.body(page, 200, PAGE_HEADERS);
  });

  return app;
}

/** The digest in this build's asset URLs (for tests and for an operator checking what a browser loads). */
export function viewerAssetDigest(options: Pick<ViewerOptions, "novncDir" | "maxAssetBytes"> = {}): string {
  return loadAssets(
    options.novncDir ?? VIEWER_DEFAULTS.novncDir,
    options.maxAssetBytes ?? VIEWER_DEFAULTS.maxAssetBytes,
  ).digest;
}
