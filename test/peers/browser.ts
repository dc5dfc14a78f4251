// The browser rig for real-peer tests: headless Chromium (Debian's `chromium`) started by the peer rig
// (test/peers/rig.ts spawnTracked: pid recorded, killed at exit) in its own session and process group, with
// every file it writes (profile, config, cache, crash database, NSS db) under one temp folder, driven by
// playwright-core over the DevTools protocol. Pages are watched for console errors, uncaught exceptions,
// HTTP errors and Content-Security-Policy violations; element screenshots decode to RGBA for exact checks.
// close() ends every process of the browser (the group, then anything else naming its folder) by pid.

import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { inflateSync } from "node:zlib";
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { type RgbaImage, writePng } from "./images.ts";
import { INSTALL_COMMAND, isCi, isPidAlive, makeTempDir, spawnTracked, type TrackedProcess } from "./rig.ts";

export const BROWSER_DEFAULTS = {
  /** Debian's launcher script; it execs /usr/lib/chromium/chromium in the same process. */
  executablePath: "/usr/bin/chromium",
  /** Milliseconds from spawn until the DevTools endpoint answers (a cold start here takes about 1 s). */
  launchTimeoutMs: 30_000,
  /** Milliseconds close() waits after SIGTERM to the process group before SIGKILL. */
  killGraceMs: 2_000,
  /** Milliseconds close() waits for killed processes to disappear before it gives up and throws. */
  reapTimeoutMs: 5_000,
} as const;

/** The Debian package that brings Chromium (scripts/install-peers.sh installs it). */
export const CHROMIUM_PACKAGE = "chromium";

/**
 * Flags for a headless Chromium on this closed network (env/machines/node.md): without the background
 * networking ones it keeps dialling Google's hosts. The rest make screenshots exact and the run quiet:
 * sRGB output with no colour conversion, no scrollbars, no audio, no crash reporter uploads.
 */
export const CHROMIUM_FLAGS: readonly string[] = [
  "--headless",
  "--no-sandbox", // root in CI: the setuid sandbox refuses to run as root
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--no-default-browser-check",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-breakpad",
  "--disable-crash-reporter",
  "--force-color-profile=srgb",
  "--hide-scrollbars",
  "--mute-audio",
  "--password-store=basic",
];

/**
 * True when Chromium is installed. Otherwise, as rig.ts requirePeer: in CI (CI=true) throws, so the run
 * fails; elsewhere warns loudly with the install command and returns false for `describe.skipIf(!ok)`.
 */
export function requireBrowser(executablePath: string = BROWSER_DEFAULTS.executablePath): boolean {
  if (existsSync(executablePath)) return true;
  const message = `browser tests need ${executablePath} (Debian package ${CHROMIUM_PACKAGE}); install with: ${INSTALL_COMMAND}`;
  if (isCi()) throw new Error(`CI=true and peers are missing: ${message}`);
  console.warn(`\n!!! SKIPPING browser tests: ${message}\n`);
  return false;
}

export interface LaunchOptions {
  executablePath?: string;
  /** More flags after CHROMIUM_FLAGS. */
  args?: readonly string[];
  launchTimeoutMs?: number;
  killGraceMs?: number;
  reapTimeoutMs?: number;
}

export interface ChromiumHandle {
  /** The browser process (also its process group id and session id). */
  readonly pid: number;
  /** The temp folder holding everything this browser writes; removed by close(). */
  readonly dir: string;
  readonly browser: Browser;
  readonly process: TrackedProcess;
  /** Pids of every process of this browser now: its group, and processes naming its folder (crashpad). */
  pids(): number[];
  /** Ends every process of the browser and removes its folder; safe to call more than once. */
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const launched = new Set<ChromiumHandle>();

/** Pids whose process group is `pgid` or whose command line contains `marker`. */
function processesOf(pgid: number, marker: string): number[] {
  const found: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return found;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces, so read after the last ')'.
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] === "Z") continue;
      if (Number(fields[2]) === pgid || readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(marker)) {
        found.push(pid);
      }
    } catch {
      // gone while we looked
    }
  }
  return found;
}

function signal(pids: readonly number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}

/** The DevTools WebSocket URL Chromium writes to <profile>/DevToolsActivePort ("port\npath"). */
async function waitForDevTools(profile: string, p: TrackedProcess, timeoutMs: number): Promise<string> {
  const file = join(profile, "DevToolsActivePort");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (existsSync(file)) {
      const [port, path] = readFileSync(file, "utf8").split("\n");
      if (port && /^\d+$/.test(port) && path?.startsWith("/devtools/browser/")) {
        return `ws://127.0.0.1:${port}${path}`;
      }
    }
    if (!p.alive()) throw new Error(`chromium exited before it listened\n--- stderr ---\n${p.stderr()}`);
    if (Date.now() > deadline) {
      throw new Error(`chromium did not listen within ${timeoutMs} ms\n--- stderr ---\n${p.stderr()}`);
    }
    await sleep(50);
  }
}

/** Starts headless Chromium with a fresh profile and connects playwright-core to it. */
export async function launchChromium(opts: LaunchOptions = {}): Promise<ChromiumHandle> {
  const o = { ...BROWSER_DEFAULTS, ...opts };
  const dir = makeTempDir("shadowrelay-chromium-");
  const profile = join(dir, "profile");
  // `setsid`: a new session and process group whose id is the browser's pid (setsid execs in place when,
  // as here, the caller is no group leader), so one signal reaches the zygotes, renderers and utilities.
  const p = spawnTracked(
    "setsid",
    [
      o.executablePath,
      ...CHROMIUM_FLAGS,
      ...(opts.args ?? []),
      `--user-data-dir=${profile}`,
      "--remote-debugging-port=0", // loopback only; the port is read back from DevToolsActivePort
      "about:blank",
    ],
    {
      // Chromium writes its crash database under XDG_CONFIG_HOME and an NSS db under HOME: keep both here.
      env: {
        ...process.env,
        HOME: join(dir, "home"),
        XDG_CONFIG_HOME: join(dir, "config"),
        XDG_CACHE_HOME: join(dir, "cache"),
      },
    },
  );
  const pgid = p.pid;
  const killEverything = () => {
    signal([-pgid], "SIGKILL");
    signal(processesOf(pgid, dir), "SIGKILL");
  };
  // Also on the rig's exit path (synchronous): the group and the crash handlers outside it.
  p.onGone(killEverything);

  let browser: Browser;
  try {
    const endpoint = await waitForDevTools(profile, p, o.launchTimeoutMs);
    browser = await chromium.connectOverCDP(endpoint, { timeout: o.launchTimeoutMs });
  } catch (err) {
    await p.kill(o.killGraceMs);
    killEverything();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  let closing: Promise<void> | undefined;
  const handle: ChromiumHandle = {
    pid: p.pid,
    dir,
    browser,
    process: p,
    pids: () => processesOf(pgid, dir),
    close: () => {
      closing ??= (async () => {
        launched.delete(handle);
        // Over CDP this only disconnects Playwright; the processes are ours to end.
        await Promise.race([browser.close().catch(() => undefined), sleep(o.killGraceMs)]);
        signal([-pgid], "SIGTERM");
        await Promise.race([p.exited, sleep(o.killGraceMs)]);
        await p.kill(0); // SIGKILL if still there; reaps it and runs killEverything for the rest
        const deadline = Date.now() + o.reapTimeoutMs;
        let left = processesOf(pgid, dir);
        while (left.length > 0 && Date.now() < deadline) {
          signal(left, "SIGKILL");
          await sleep(50);
          left = processesOf(pgid, dir).filter(isPidAlive);
        }
        rmSync(dir, { recursive: true, force: true });
        if (left.length > 0)
          throw new Error(`chromium processes still running after close: ${left.join(", ")}`);
      })();
      return closing;
    },
  };
  launched.add(handle);
  return handle;
}

/** Closes every browser launched here (for afterAll). */
export async function closeAllBrowsers(): Promise<void> {
  await Promise.all([...launched].map((b) => b.close()));
}

// ---------------------------------------------------------------------------------------------------------
// Watched pages

export interface CspViolation {
  effectiveDirective: string;
  blockedURI: string;
  sourceFile: string;
  lineNumber: number;
  sample: string;
  disposition: string;
}

export interface WatchedPage {
  context: BrowserContext;
  page: Page;
  /** Every console message, in order (Chromium reports CSP violations and failed loads here too). */
  readonly console: { type: string; text: string }[];
  /** Uncaught exceptions in the page. */
  readonly pageErrors: string[];
  /** `securitypolicyviolation` events, reported from an init script that runs before the page's own. */
  readonly cspViolations: CspViolation[];
  /** Responses with status 400 or above. */
  readonly httpErrors: { url: string; status: number }[];
  consoleErrors(): string[];
  close(): Promise<void>;
}

export interface PageOptions {
  viewport?: { width: number; height: number };
  /** For pages served with a self-signed certificate (also covers the page's wss: connections). */
  ignoreHTTPSErrors?: boolean;
}

const CSP_BINDING = "__shadowrelayCspViolation";
const CSP_LISTENER = `document.addEventListener("securitypolicyviolation", (e) => {
  window.${CSP_BINDING}({
    effectiveDirective: e.effectiveDirective, blockedURI: e.blockedURI, sourceFile: e.sourceFile,
    lineNumber: e.lineNumber, sample: e.sample, disposition: e.disposition,
  });
}, true);`;

/** A new context and page with every listener in place before anything loads. */
export async function openPage(handle: ChromiumHandle, opts: PageOptions = {}): Promise<WatchedPage> {
  const context = await handle.browser.newContext({
    viewport: opts.viewport ?? { width: 1280, height: 720 },
    deviceScaleFactor: 1,
    ignoreHTTPSErrors: opts.ignoreHTTPSErrors ?? false,
  });
  const consoleMessages: { type: string; text: string }[] = [];
  const pageErrors: string[] = [];
  const cspViolations: CspViolation[] = [];
  const httpErrors: { url: string; status: number }[] = [];
  await context.exposeBinding(CSP_BINDING, (_source, v: CspViolation) => {
    cspViolations.push(v);
  });
  await context.addInitScript({ content: CSP_LISTENER });
  const page = await context.newPage();
  page.on("console", (m) => consoleMessages.push({ type: m.type(), text: m.text() }));
  page.on("pageerror", (e) => pageErrors.push(e.stack ?? e.message));
  page.on("response", (r) => {
    if (r.status() >= 400) httpErrors.push({ url: r.url(), status: r.status() });
  });
  return {
    context,
    page,
    console: consoleMessages,
    pageErrors,
    cspViolations,
    httpErrors,
    consoleErrors: () => consoleMessages.filter((m) => m.type === "error").map((m) => m.text),
    close: () => context.close(),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Screenshots

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * Decodes an 8-bit, non-interlaced PNG (greyscale, RGB, grey+alpha or RGBA: what Chromium writes) to RGBA.
 * ISO/IEC 15948 §9 filters; anything else throws.
 */
export function decodePng(png: Uint8Array): RgbaImage {
  if (PNG_SIGNATURE.some((b, i) => png[i] !== b)) throw new Error("not a PNG");
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  let width = 0;
  let height = 0;
  let colourType = -1;
  const idat: Uint8Array[] = [];
  for (let at = 8; at + 12 <= png.length; ) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...png.subarray(at + 4, at + 8));
    const data = png.subarray(at + 8, at + 8 + length);
    if (type === "IHDR") {
      width = view.getUint32(at + 8);
      height = view.getUint32(at + 12);
      const depth = data[8];
      colourType = data[9]!;
      if (depth !== 8 || data[12] !== 0)
        throw new Error(`PNG depth ${depth}, interlace ${data[12]}: unsupported`);
    } else if (type === "IDAT") {
      idat.push(data);
    } else if (type === "IEND") {
      break;
    }
    at += 12 + length;
  }
  const channels = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[colourType];
  if (channels === undefined || width === 0 || height === 0) {
    throw new Error(`PNG colour type ${colourType}, ${width}×${height}: unsupported`);
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  if (raw.length !== (stride + 1) * height) throw new Error(`PNG data is ${raw.length} bytes, expected more`);
  const rows = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = rows.subarray(y * stride, (y + 1) * stride);
    const up = y > 0 ? rows.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? out[i - channels]! : 0;
      const b = up[i]!;
      const c = i >= channels ? up[i - channels]! : 0;
      let predictor: number;
      switch (filter) {
        case 0:
          predictor = 0;
          break;
        case 1:
          predictor = a;
          break;
        case 2:
          predictor = b;
          break;
        case 3:
          predictor = (a + b) >> 1;
          break;
        case 4: {
          const p = a + b - c;
          const pa = Math.abs(p - a);
          const pb = Math.abs(p - b);
          const pc = Math.abs(p - c);
          predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default:
          throw new Error(`PNG row ${y} has filter ${filter}`);
      }
      out[i] = (src[i]! + predictor) & 0xff;
    }
  }
  const rgba = new Uint8Array(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    const s = p * channels;
    const grey = channels <= 2;
    rgba[p * 4] = rows[s]!;
    rgba[p * 4 + 1] = grey ? rows[s]! : rows[s + 1]!;
    rgba[p * 4 + 2] = grey ? rows[s]! : rows[s + 2]!;
    rgba[p * 4 + 3] = channels === 4 ? rows[s + 3]! : channels === 2 ? rows[s + 1]! : 255;
  }
  return { width, height, rgba };
}

/** A screenshot of what the element shows, at one device pixel per CSS pixel, decoded to RGBA. */
export async function screenshotElement(target: Locator): Promise<RgbaImage> {
  const png = await target.screenshot({ type: "png", scale: "css", animations: "disabled", caret: "hide" });
  return decodePng(png);
}

/** Saves a picture under test/artifacts/ (git ignores it) and returns the path. */
export function saveArtifact(name: string, image: RgbaImage): string {
  const path = `test/artifacts/${name.replace(/[^A-Za-z0-9_.-]+/g, "-")}.png`;
  writePng(path, image);
  return path;
}
