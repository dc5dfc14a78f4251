// The real-peer test rig: finds peer programs (loud skip outside CI, failure in CI), starts them on loopback
// with free ports and X displays, records every pid and kills them all at the end (also when the test run
// exits or is signalled), puts known pictures on an X display and reads them back: losslessly from X
// (ImageMagick `import`), and through RFB with vncsnapshot (JPEG only, so compare with a stated tolerance).

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import {
  type CompareOptions,
  compareImages,
  describeStats,
  EXACT,
  hexColour,
  noiseImage,
  parseHexColour,
  parsePnm,
  type Rgb,
  type RgbaImage,
  solidImage,
  testPattern,
  tileImage,
} from "./images.ts";

export const INSTALL_COMMAND = "sudo scripts/install-peers.sh";

/** Peer programs and the Debian package that brings each (scripts/install-peers.sh installs them all). */
export const PEER_PACKAGES: Readonly<Record<string, string>> = {
  Xvnc: "tigervnc-standalone-server",
  vncpasswd: "tigervnc-tools",
  vncviewer: "tigervnc-viewer",
  xtigervncviewer: "tigervnc-viewer",
  x11vnc: "x11vnc",
  Xvfb: "xvfb",
  vncsnapshot: "vncsnapshot",
  xdpyinfo: "x11-utils",
  xwininfo: "x11-utils",
  xsetroot: "x11-xserver-utils",
  xterm: "xterm",
  import: "imagemagick",
  display: "imagemagick",
  convert: "imagemagick",
  identify: "imagemagick",
  chromium: "chromium",
  websockify: "websockify",
};

/** Programs each helper here runs, for requirePeer(...). */
export const XVNC_PEERS = ["Xvnc", "vncpasswd"] as const;
export const PAINT_PEERS = ["xsetroot", "display", "import"] as const;
export const SNAPSHOT_PEERS = ["vncsnapshot", "vncpasswd", "convert"] as const;

export function isCi(): boolean {
  const ci = process.env.CI?.toLowerCase();
  return ci === "true" || ci === "1";
}

/**
 * True when every program is on PATH. Otherwise: in CI (CI=true) throws, so the run fails; elsewhere warns
 * loudly, naming what is missing and the install command, and returns false for `test.skipIf(!ok)`.
 */
export function requirePeer(...binaries: string[]): boolean {
  const missing = [...new Set(binaries)].filter((b) => Bun.which(b) === null);
  if (missing.length === 0) return true;
  const named = missing.map((b) => `${b} (Debian package ${PEER_PACKAGES[b] ?? "unknown"})`).join(", ");
  const message = `real-peer tests need ${named}; install with: ${INSTALL_COMMAND}`;
  if (isCi()) throw new Error(`CI=true and peers are missing: ${message}`);
  console.warn(`\n!!! SKIPPING real-peer tests: ${message}\n`);
  return false;
}

// ---------------------------------------------------------------------------------------------------------
// Process registry

export interface SpawnTrackedOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Bytes or text written to stdin, then closed; default: no stdin (a password prompt fails, never waits). */
  stdin?: Uint8Array | string;
  /** stdout is kept whole up to this many bytes (default 256 MiB), then the process is killed. */
  maxStdoutBytes?: number;
  /** The last this-many bytes of stderr are kept for diagnostics (default 64 KiB). */
  stderrTailBytes?: number;
}

export interface TrackedProcess {
  readonly pid: number;
  /** The command line, for messages. */
  readonly command: string;
  readonly subprocess: Subprocess;
  /** Exit code, or 128 + signal number. */
  readonly exited: Promise<number>;
  /** Resolves when the process has exited and both pipes are drained. */
  readonly done: Promise<void>;
  alive(): boolean;
  stdout(): Uint8Array;
  stdoutOverflowed(): boolean;
  stderr(): string;
  /** SIGTERM, then SIGKILL after graceMs; resolves once the process is reaped. */
  kill(graceMs?: number): Promise<void>;
  /** Runs once the process is known to be gone (also from the exit handler, so it must be synchronous). */
  onGone(cleanup: () => void): void;
}

const DEFAULT_GRACE_MS = 500;
// Entries, not pids, so that a pid the kernel reuses later can never make us forget or signal the wrong one.
const live = new Set<TrackedEntry>();
const everStarted: number[] = [];
const tempDirs = new Set<string>();
let exitHandlersInstalled = false;

interface TrackedEntry {
  tracked: TrackedProcess;
  cleanups: (() => void)[];
}

function runCleanups(entry: TrackedEntry): void {
  for (const fn of entry.cleanups.splice(0)) {
    try {
      fn();
    } catch {
      // best effort: a cleanup must not stop the others
    }
  }
}

/** Kills whatever is still running, synchronously: the last chance, from process exit or a signal. */
function killAllSync(): void {
  for (const entry of live) {
    if (entry.tracked.alive()) {
      try {
        process.kill(entry.tracked.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    runCleanups(entry);
  }
  live.clear();
  removeTempDirs();
}

function installExitHandlers(): void {
  if (exitHandlersInstalled) return;
  exitHandlersInstalled = true;
  process.on("exit", killAllSync);
  const signals: [NodeJS.Signals, number][] = [
    ["SIGINT", 2],
    ["SIGTERM", 15],
    ["SIGHUP", 1],
  ];
  for (const [signal, number] of signals) {
    process.on(signal, () => {
      killAllSync();
      process.exit(128 + number);
    });
  }
}

class StderrTail {
  private chunks: Uint8Array[] = [];
  private size = 0;
  constructor(private readonly limit: number) {}
  push(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - (this.chunks[0]?.length ?? 0) >= this.limit && this.chunks.length > 1) {
      this.size -= this.chunks.shift()!.length;
    }
  }
  text(): string {
    return new TextDecoder().decode(Buffer.concat(this.chunks));
  }
}

async function drain(stream: ReadableStream<Uint8Array>, push: (chunk: Uint8Array) => void): Promise<void> {
  try {
    for await (const chunk of stream) push(chunk);
  } catch {
    // the pipe breaks when the process is killed; what was read is kept
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Bun.spawn with the pid recorded, output captured in memory, and a kill that escalates. */
export function spawnTracked(
  cmd: string,
  args: readonly string[],
  opts: SpawnTrackedOptions = {},
): TrackedProcess {
  installExitHandlers();
  const stdin = typeof opts.stdin === "string" ? new TextEncoder().encode(opts.stdin) : opts.stdin;
  const subprocess = Bun.spawn([cmd, ...args], {
    stdin: stdin ?? "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: opts.env ?? process.env,
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
  // A forgotten server must not keep the test run alive; the exit handler kills it.
  subprocess.unref();
  const maxStdout = opts.maxStdoutBytes ?? 256 * 1024 * 1024;
  const outChunks: Uint8Array[] = [];
  let outSize = 0;
  let overflowed = false;
  const errTail = new StderrTail(opts.stderrTailBytes ?? 64 * 1024);
  const pipes = Promise.all([
    drain(subprocess.stdout, (chunk) => {
      if (outSize + chunk.length > maxStdout) {
        if (!overflowed) subprocess.kill("SIGKILL");
        overflowed = true;
        return;
      }
      outChunks.push(chunk);
      outSize += chunk.length;
    }),
    drain(subprocess.stderr, (chunk) => errTail.push(chunk)),
  ]);
  const alive = () => subprocess.exitCode === null && subprocess.signalCode === null;
  const entry: TrackedEntry = { tracked: undefined as unknown as TrackedProcess, cleanups: [] };
  const tracked: TrackedProcess = {
    pid: subprocess.pid,
    command: [cmd, ...args].join(" "),
    subprocess,
    exited: subprocess.exited,
    done: subprocess.exited.then(() => pipes).then(() => undefined),
    alive,
    stdout: () => {
      if (outChunks.length > 1) outChunks.splice(0, outChunks.length, Buffer.concat(outChunks));
      return outChunks[0] ?? new Uint8Array(0);
    },
    stdoutOverflowed: () => overflowed,
    stderr: () => errTail.text(),
    kill: async (graceMs = DEFAULT_GRACE_MS) => {
      if (alive()) {
        subprocess.kill("SIGTERM");
        await Promise.race([subprocess.exited, sleep(graceMs)]);
        if (alive()) subprocess.kill("SIGKILL");
      }
      await subprocess.exited;
      live.delete(entry);
      runCleanups(entry);
    },
    onGone: (cleanup) => {
      if (alive() || live.has(entry)) entry.cleanups.push(cleanup);
      else cleanup();
    },
  };
  entry.tracked = tracked;
  live.add(entry);
  everStarted.push(subprocess.pid);
  return tracked;
}

/** Every pid started through spawnTracked in this process, in order (for "all gone" checks). */
export function trackedPids(): readonly number[] {
  return everStarted;
}

/** Pids of tracked processes that are still running. */
export function livePids(): number[] {
  return [...live].filter((e) => e.tracked.alive()).map((e) => e.tracked.pid);
}

/**
 * SIGTERM to every tracked process still running, SIGKILL to those still there after graceMs, waits until
 * all are reaped, then runs their cleanups and removes the rig's temp folders. Returns the pids it signalled.
 */
export async function killAll(graceMs = DEFAULT_GRACE_MS): Promise<number[]> {
  const entries = [...live];
  const signalled = entries.filter((e) => e.tracked.alive()).map((e) => e.tracked.pid);
  await Promise.all(entries.map((e) => e.tracked.kill(graceMs)));
  removeTempDirs();
  return signalled;
}

/** True while the pid names a process that has not exited (a zombie counts as gone). */
export function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ..."; comm may hold spaces and parentheses, so read after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true;
  }
}

/** A temp folder removed by killAll (and at exit). */
export function makeTempDir(prefix = "shadowrelay-peer-"): string {
  installExitHandlers();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

function removeTempDirs(): void {
  for (const dir of [...tempDirs]) removeTempDir(dir);
}

export interface RunOptions extends SpawnTrackedOptions {
  /** Default 10 s; then SIGTERM, SIGKILL, and `timedOut` in the result. */
  timeoutMs?: number;
}

export interface RunResult {
  exitCode: number;
  timedOut: boolean;
  stdout: Uint8Array;
  stderr: string;
  pid: number;
}

/** Runs a short-lived program to its end (bounded), tracked like any other. */
export async function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const p = spawnTracked(cmd, args, opts);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void p.kill();
  }, opts.timeoutMs ?? 10_000);
  try {
    const exitCode = await p.exited;
    await p.done;
    await p.kill(); // already exited: only unregisters and runs cleanups
    return { exitCode, timedOut, stdout: p.stdout(), stderr: p.stderr(), pid: p.pid };
  } finally {
    clearTimeout(timer);
  }
}

/** run(), but a non-zero exit or a timeout is an error carrying the program's stderr. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.timedOut || r.exitCode !== 0) {
    const why = r.timedOut ? `timed out after ${opts.timeoutMs ?? 10_000} ms` : `exited with ${r.exitCode}`;
    throw new Error(`${cmd} ${args.join(" ")} ${why}\n--- stderr ---\n${r.stderr.trim()}`);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------------------
// Free ports and X displays

const handedPorts = new Set<number>();
const reservedDisplays = new Set<number>();

function canListen(hostname: string, port: number): boolean {
  try {
    const server = Bun.listen({ hostname, port, socket: { data() {} } });
    server.stop(true);
    return true;
  } catch (e) {
    // No IPv6 on this machine is fine; the port being taken there is not (Xvnc -localhost binds ::1 too).
    return (e as { code?: string }).code === "EADDRNOTAVAIL";
  }
}

/** A TCP port free on 127.0.0.1 (and ::1), never handed out twice in this process. */
export function freePort(): number {
  for (let attempt = 0; attempt < 50; attempt++) {
    const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = server.port;
    server.stop(true);
    if (handedPorts.has(port) || !canListen("::1", port)) continue;
    handedPorts.add(port);
    return port;
  }
  throw new Error("no free loopback port after 50 tries");
}

function abstractUnixSockets(): Set<string> {
  try {
    // /proc/net/unix: the path is the last column; an abstract socket's starts with '@'.
    const lines = readFileSync("/proc/net/unix", "utf8").split("\n").slice(1);
    return new Set(lines.map((l) => l.trim().split(/\s+/)[7] ?? "").filter((p) => p.startsWith("@")));
  } catch {
    return new Set();
  }
}

/**
 * An X display number N from `start` up with no /tmp/.X11-unix/XN, /tmp/.XN-lock or abstract socket,
 * reserved in this process. Another process may still take it first: startXvnc retries on that. The
 * default start is 40 plus a share of the pid, so that test runs side by side seldom race for one number
 * (6 runs all starting at 40 cascaded through more than 3 lost races in one of 6 tries).
 */
export function freeDisplay(start = 40 + (process.pid % 64)): number {
  const abstract = abstractUnixSockets();
  for (let n = start; n < 1000; n++) {
    if (reservedDisplays.has(n)) continue;
    if (existsSync(`/tmp/.X11-unix/X${n}`) || existsSync(`/tmp/.X${n}-lock`)) continue;
    if (abstract.has(`@/tmp/.X11-unix/X${n}`)) continue;
    reservedDisplays.add(n);
    return n;
  }
  throw new Error(`no free X display number in ${start}..999`);
}

// ---------------------------------------------------------------------------------------------------------
// Xvnc

/** Writes a VNC password file with `vncpasswd -f` (DES-obfuscated, 8 bytes; longer passwords are cut). */
export async function writeVncPasswordFile(password: string, dir: string = makeTempDir()): Promise<string> {
  if (password.includes("\n")) throw new Error("a VNC password cannot contain a newline");
  const r = await runOk("vncpasswd", ["-f"], { stdin: `${password}\n`, timeoutMs: 5_000 });
  if (r.stdout.length !== 8) throw new Error(`vncpasswd -f wrote ${r.stdout.length} bytes, expected 8`);
  const file = join(dir, "passwd");
  writeFileSync(file, r.stdout, { mode: 0o600 });
  return file;
}

export interface XvncOptions {
  width: number;
  height: number;
  /** Default 24; exact pixel checks need 24 (16 loses bits). */
  depth?: 16 | 24 | 32;
  /** Default: "VncAuth" when a password is given, else "None". */
  securityTypes?: "None" | "VncAuth";
  password?: string;
  desktopName?: string;
  extraArgs?: readonly string[];
  /** Bound on the wait for the RFB greeting; default 10 s. */
  startTimeoutMs?: number;
}

export interface Xvnc {
  display: number;
  /** ":N", for DISPLAY and -display. */
  displayName: string;
  host: "127.0.0.1";
  port: number;
  pid: number;
  width: number;
  height: number;
  depth: number;
  securityTypes: "None" | "VncAuth";
  password?: string;
  passwordFile?: string;
  process: TrackedProcess;
  stop(): Promise<void>;
}

const RFB_GREETING = "RFB 003.008\n";

/** Connects to 127.0.0.1:port and returns the first 12 bytes as text, or null (refused, closed, too slow). */
export function readRfbGreeting(port: number, timeoutMs = 1_000): Promise<string | null> {
  return new Promise((resolve) => {
    let got = new Uint8Array(0);
    let finished = false;
    let socket: { end(): void } | undefined;
    const finish = (value: string | null) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket?.end();
      resolve(value);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        data(_s, data) {
          const next = new Uint8Array(got.length + data.length);
          next.set(got);
          next.set(data, got.length);
          got = next;
          if (got.length >= 12) finish(new TextDecoder().decode(got.subarray(0, 12)));
        },
        close() {
          finish(null);
        },
        error() {
          finish(null);
        },
        connectError() {
          finish(null);
        },
      },
    }).then(
      (s) => {
        socket = s;
        if (finished) s.end();
      },
      () => finish(null),
    );
  });
}

// Another process took the display or the port between our check and Xvnc's bind: worth another try, on
// the next number (a lost race costs one Xvnc that exits at once).
const XVNC_START_ATTEMPTS = 8;
const XVNC_RACE = /already active|Address already in use|Cannot establish any listening sockets|lock file/i;

/** Removes the lock file and socket an Xvnc leaves behind when SIGKILLed, if the lock names that pid. */
function removeStaleXFiles(display: number, pid: number): void {
  const lock = `/tmp/.X${display}-lock`;
  try {
    if (Number.parseInt(readFileSync(lock, "utf8").trim(), 10) !== pid) return;
  } catch {
    return;
  }
  rmSync(lock, { force: true });
  rmSync(`/tmp/.X11-unix/X${display}`, { force: true });
}

/**
 * Starts TigerVNC's Xvnc on a free display and a free port, RFB and X on loopback only (-localhost,
 * -interface 127.0.0.1, -nolisten tcp), and waits until the RFB port greets with "RFB 003.008\n" and the
 * X socket exists (Xvnc 1.12 then listens on 127.0.0.1 and ::1; rig.test.ts checks /proc/net/tcp{,6}).
 * -AlwaysShared so several viewers can connect; -BlacklistThreshold 1000 because Xvnc
 * blocks a host after 5 unauthenticated connections (peer-quirks.md); -noreset so the picture stays when
 * the last X client leaves.
 */
export async function startXvnc(opts: XvncOptions): Promise<Xvnc> {
  const depth = opts.depth ?? 24;
  const securityTypes = opts.securityTypes ?? (opts.password === undefined ? "None" : "VncAuth");
  if (securityTypes === "VncAuth" && opts.password === undefined) throw new Error("VncAuth needs a password");
  if (securityTypes === "None" && opts.password !== undefined) throw new Error("a password needs VncAuth");
  const dir = makeTempDir("shadowrelay-xvnc-");
  const passwordFile =
    opts.password === undefined ? undefined : await writeVncPasswordFile(opts.password, dir);
  const startTimeoutMs = opts.startTimeoutMs ?? 10_000;
  let lastError = "";
  for (let attempt = 1; attempt <= XVNC_START_ATTEMPTS; attempt++) {
    const display = freeDisplay();
    const port = freePort();
    const args = [
      `:${display}`,
      "-geometry",
      `${opts.width}x${opts.height}`,
      "-depth",
      String(depth),
      "-rfbport",
      String(port),
      "-localhost",
      "-interface",
      "127.0.0.1",
      "-nolisten",
      "tcp",
      "-SecurityTypes",
      securityTypes,
      ...(passwordFile ? ["-PasswordFile", passwordFile] : []),
      "-AlwaysShared",
      "-BlacklistThreshold",
      "1000",
      "-noreset",
      "-desktop",
      opts.desktopName ?? "shadowrelay-test",
      ...(opts.extraArgs ?? []),
    ];
    const p = spawnTracked("Xvnc", args);
    p.onGone(() => removeStaleXFiles(display, p.pid));
    const deadline = Date.now() + startTimeoutMs;
    let greeting: string | null = null;
    while (Date.now() < deadline && p.alive()) {
      if (existsSync(`/tmp/.X11-unix/X${display}`)) {
        greeting = await readRfbGreeting(port, Math.min(1_000, Math.max(1, deadline - Date.now())));
        if (greeting !== null) break;
      }
      await sleep(25);
    }
    // Alive after the greeting: the answer came from this Xvnc, not one that took the port after ours failed.
    if (greeting === RFB_GREETING && p.alive()) {
      return {
        display,
        displayName: `:${display}`,
        host: "127.0.0.1",
        port,
        pid: p.pid,
        width: opts.width,
        height: opts.height,
        depth,
        securityTypes,
        ...(opts.password === undefined ? {} : { password: opts.password }),
        ...(passwordFile ? { passwordFile } : {}),
        process: p,
        stop: async () => {
          await p.kill();
          removeTempDir(dir);
        },
      };
    }
    const exited = !p.alive();
    await p.kill();
    const stderr = p.stderr().trim();
    lastError =
      `Xvnc :${display} port ${port} (attempt ${attempt}): ` +
      (greeting !== null
        ? `greeted with ${JSON.stringify(greeting)}`
        : exited
          ? `exited with ${p.subprocess.exitCode ?? p.subprocess.signalCode}`
          : `no RFB greeting within ${startTimeoutMs} ms`) +
      `\n--- Xvnc stderr ---\n${stderr}`;
    if (!(exited && XVNC_RACE.test(stderr))) break;
  }
  removeTempDir(dir);
  throw new Error(lastError);
}

// ---------------------------------------------------------------------------------------------------------
// Pictures on an X display

type DisplayTarget = Xvnc | number | string;

function displayNameOf(target: DisplayTarget): string {
  if (typeof target === "number") return `:${target}`;
  if (typeof target === "string") return target;
  return target.displayName;
}

function xEnv(display: string): Record<string, string | undefined> {
  return { ...process.env, DISPLAY: display };
}

/**
 * Lossless capture of the whole X screen: ImageMagick `import -window root` reads it with XGetImage, as
 * binary PPM. (xwd would do as well but lives in x11-apps, which the rig does not otherwise need.)
 */
export async function captureX(target: DisplayTarget, timeoutMs = 10_000): Promise<RgbaImage> {
  const display = displayNameOf(target);
  const r = await runOk(
    "import",
    ["-display", display, "-silent", "-window", "root", "-depth", "8", "ppm:-"],
    {
      env: xEnv(display),
      timeoutMs,
    },
  );
  return parsePnm(r.stdout);
}

export type PaintSpec =
  /** xsetroot -solid; "#rrggbb" or [r, g, b]. */
  | { solid: Rgb | string }
  /** Shown as the root window background, tiled from the top-left corner when smaller than the screen. */
  | { image: RgbaImage }
  /** testPattern() or noiseImage() at the screen's size. */
  | { pattern: "test" | "noise" };

/**
 * Puts a known picture on the X display and waits (bounded) until captureX shows exactly that; returns
 * the picture now on screen. No window manager is needed: both ways set the root window's background
 * (xsetroot -solid; ImageMagick `display -window root`, which exits with 1 even when it worked, so the
 * capture is what decides).
 */
export async function paint(target: DisplayTarget, spec: PaintSpec, timeoutMs = 5_000): Promise<RgbaImage> {
  const display = displayNameOf(target);
  const size = typeof target === "object" ? target : await captureX(display);
  let expected: RgbaImage;
  let painter: RunResult;
  if ("solid" in spec) {
    const rgb = typeof spec.solid === "string" ? parseHexColour(spec.solid) : spec.solid;
    expected = solidImage(size.width, size.height, rgb);
    painter = await runOk("xsetroot", ["-display", display, "-solid", hexColour(rgb)], {
      env: xEnv(display),
      timeoutMs,
    });
  } else {
    const image =
      "image" in spec
        ? spec.image
        : spec.pattern === "noise"
          ? noiseImage(size.width, size.height)
          : testPattern(size.width, size.height);
    expected = tileImage(image, size.width, size.height);
    const rgb = new Uint8Array(image.width * image.height * 3);
    for (let p = 0; p < image.width * image.height; p++)
      rgb.set(image.rgba.subarray(p * 4, p * 4 + 3), p * 3);
    painter = await run(
      "display",
      [
        "-display",
        display,
        "-size",
        `${image.width}x${image.height}`,
        "-depth",
        "8",
        "-window",
        "root",
        "rgb:-",
      ],
      { env: xEnv(display), stdin: rgb, timeoutMs },
    );
    if (painter.timedOut) throw new Error(`display -window root timed out\n${painter.stderr}`);
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const shown = await captureX(display);
    const stats = compareImages(shown, expected, EXACT);
    if (stats.ok) return expected;
    if (Date.now() >= deadline) {
      throw new Error(
        `paint ${display}: screen still differs after ${timeoutMs} ms: ${describeStats(stats)}\n` +
          `--- painter stderr ---\n${painter.stderr.trim()}`,
      );
    }
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------------------------
// vncsnapshot

/**
 * Tolerance for vncsnapshot 1.2a against the lossless picture (captureX). vncsnapshot only writes JPEG, but
 * at -quality 100 it uses 1x1 chroma sampling (4:4:4, identify -verbose), so only the colour transform and
 * DCT rounding remain. Measured on Xvnc 1.12 at 640×480, encodings "zrle hextile raw", "hextile" and "raw"
 * alike: a solid colour comes back exact; testPattern: max per-channel difference 1, 0.34% of pixels differ
 * (by 1), none by more; seeded noise (the worst case): max difference 1, 25.1% of pixels differ (by 1), none
 * by more. So: no pixel may be off by more than 2 in any channel. That still catches a single wrong pixel
 * of any visible size, while a swapped channel or a shifted picture fails everywhere.
 */
export const VNCSNAPSHOT_TOLERANCE: CompareOptions = { maxChannelDiff: 2, maxBadFraction: 0 };

export interface VncsnapshotOptions {
  /** Written to a passwd file with vncpasswd -f. Default for an Xvnc target: its own password file. */
  password?: string;
  passwordFile?: string;
  /** Default "zrle hextile raw": vncsnapshot 1.2a hangs on Tight from Xvnc (peer-quirks.md). */
  encodings?: string;
  /** Default 15 s. */
  timeoutMs?: number;
}

/**
 * "host::port" as vncsnapshot wants it. A number or an Xvnc is a port on 127.0.0.1; a string
 * "host:N" is a display (port 5900 + N) when N < 100, else a port — as vncsnapshot itself reads it.
 */
export function vncsnapshotTarget(target: Xvnc | number | string): string {
  if (typeof target === "number") return `127.0.0.1::${target}`;
  if (typeof target === "object") return `${target.host}::${target.port}`;
  if (target.includes("::")) return target.startsWith("::") ? `127.0.0.1${target}` : target;
  const m = /^(.*):(\d+)$/.exec(target);
  if (!m)
    throw new Error(`vncsnapshot target ${JSON.stringify(target)} is neither host:display nor host:port`);
  const host = m[1] === "" ? "127.0.0.1" : m[1]!;
  const n = Number(m[2]);
  return n < 100 ? `${host}:${n}` : `${host}::${n}`;
}

/** One full-screen snapshot through RFB with vncsnapshot, decoded to RGBA (JPEG: compare with tolerance). */
export async function vncsnapshot(
  target: Xvnc | number | string,
  opts: VncsnapshotOptions = {},
): Promise<RgbaImage> {
  const dir = makeTempDir("shadowrelay-snap-");
  try {
    let passwordFile = opts.passwordFile;
    if (opts.password !== undefined) passwordFile = await writeVncPasswordFile(opts.password, dir);
    else if (passwordFile === undefined && typeof target === "object") passwordFile = target.passwordFile;
    const out = join(dir, "snap.jpg");
    const args = [
      "-allowblank", // else a one-colour screen is waited on as "blank"
      "-nocursor",
      "-quality",
      "100",
      "-vncQuality",
      "9",
      "-nojpeg", // no lossy Tight JPEG in transit, whatever the encodings
      "-encodings",
      opts.encodings ?? "zrle hextile raw",
      ...(passwordFile ? ["-passwd", passwordFile] : []),
      vncsnapshotTarget(target),
      out,
    ];
    const timeoutMs = opts.timeoutMs ?? 15_000;
    const r = await run("vncsnapshot", args, { timeoutMs });
    if (r.timedOut || r.exitCode !== 0 || !existsSync(out)) {
      const why = r.timedOut ? `timed out after ${timeoutMs} ms` : `exited with ${r.exitCode}`;
      throw new Error(`vncsnapshot ${args.join(" ")} ${why}\n--- stderr ---\n${r.stderr.trim()}`);
    }
    const decoded = await runOk("convert", [out, "-depth", "8", "ppm:-"], { timeoutMs: 10_000 });
    return parsePnm(decoded.stdout);
  } finally {
    removeTempDir(dir);
  }
}
