// A real native viewer through the real CLI: `shadowrelay connect --exec` (bun relay/main.ts, a subprocess)
// starts TigerVNC's vncviewer, full screen under Xvfb, against a relay whose built-in demo device holds its
// scene still. vncviewer can only take its password from a file, so --exec runs a small wrapper script that
// gets {password} and {addr} substituted by connect, writes the password with `vncpasswd -f`, records its
// pid (exec keeps it: it becomes the viewer's) and execs xtigervncviewer. The viewer's screen, captured
// losslessly from Xvfb, equals the demo's framebuffer exactly, before and after an incremental update; the
// password the viewer got is the one connect printed; the session is audited when the viewer leaves.
// connect, the viewer and Xvfb are all ended by pid.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type DemoDevice, startDemoDevice } from "../../relay/demo/server.ts";
import { type RunningServer, startServer } from "../../relay/serve/server.ts";
import { compareImages, describeStats, EXACT, type RgbaImage, writePng } from "../peers/images.ts";
import {
  captureX,
  freeDisplay,
  isPidAlive,
  killAll,
  makeTempDir,
  requirePeer,
  spawnTracked,
  type TrackedProcess,
} from "../peers/rig.ts";

/** Bounds of this file's waits (named, so that a slow CI can raise them in one place). */
export const VNCVIEWER_CONNECT_DEFAULTS = {
  /** Until Xvfb's X socket exists, ms. @default 10000 */
  xvfbStartMs: 10_000,
  /** Until connect has printed its address and one-time password, ms. @default 15000 */
  connectPrintMs: 15_000,
  /** Until the viewer's screen equals the demo's framebuffer, ms. @default 20000 */
  pictureMs: 20_000,
  /** Until connect has exited after the viewer left, ms. @default 10000 */
  connectExitMs: 10_000,
};

const ok = requirePeer("Xvfb", "xtigervncviewer", "vncpasswd", "import");
const REPO = join(import.meta.dir, "..", "..");
const ADMIN_PASSWORD = "vncviewer-connect-admin";
const WIDTH = 1280;
const HEIGHT = 720;
let relay: RunningServer;
let demo: DemoDevice;
let token = "";

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

// biome-ignore lint/suspicious/noExplicitAny: response bodies of many shapes, read only by assertions
type Json = any;

async function startXvfb(): Promise<{ display: string; process: TrackedProcess }> {
  const n = freeDisplay();
  const p = spawnTracked("Xvfb", [
    `:${n}`,
    "-screen",
    "0",
    `${WIDTH}x${HEIGHT}x24`,
    "-nolisten",
    "tcp",
    "-noreset",
  ]);
  const deadline = Date.now() + VNCVIEWER_CONNECT_DEFAULTS.xvfbStartMs;
  while (!existsSync(`/tmp/.X11-unix/X${n}`)) {
    if (!p.alive() || Date.now() > deadline) throw new Error(`Xvfb :${n} did not start\n${p.stderr()}`);
    await Bun.sleep(25);
  }
  return { display: `:${n}`, process: p };
}

/**
 * The --exec wrapper: $1 is the one-time password, $2 the address (host::port). It keeps what it was given
 * and its pid in `dir`, then execs the viewer (same pid) with the password in a vncpasswd file.
 */
function writeViewerWrapper(dir: string): string {
  const script = join(dir, "viewer.sh");
  writeFileSync(
    script,
    `#!/bin/sh
set -e
dir='${dir}'
echo $$ > "$dir/viewer.pid"
printf '%s' "$1" > "$dir/password-given"
printf '%s\\n' "$1" | vncpasswd -f > "$dir/passwd"
exec xtigervncviewer -FullScreen -passwd "$dir/passwd" -SecurityTypes VncAuth -AutoSelect=0 -FullColor \\
  -PreferredEncoding Tight "$2"
`,
    { mode: 0o755 },
  );
  return script;
}

async function waitFor<T>(what: string, ms: number, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await Bun.sleep(50);
  }
}

beforeAll(async () => {
  relay = await startServer({
    listen: "127.0.0.1:0",
    dataDir: makeTempDir("shadowrelay-vncviewer-connect-"),
    adminPassword: ADMIN_PASSWORD,
    demo: {
      start: async () => {
        demo = await startDemoDevice({ host: "127.0.0.1", port: 0, fps: 0 });
        demo.tick(2500);
        return demo;
      },
    },
  });
  token = (await api("POST", "/api/login", { name: "admin", password: ADMIN_PASSWORD })).json.token;
});

afterAll(async () => {
  await relay?.stop();
  await killAll();
});

// Skips only outside CI, loudly: requirePeer() throws when CI=true, so in CI these tests always run.
describe.skipIf(!ok)("TigerVNC vncviewer through `shadowrelay connect --exec`", () => {
  test("the viewer shows the demo's pixels exactly, twice; connect ends with the session and it is audited", async () => {
    const s = await api("POST", "/api/devices/demo/sessions", { mode: "pipe", audience: "native" });
    expect(s.status).toBe(201);
    const { display, process: xvfb } = await startXvfb();
    const dir = makeTempDir("shadowrelay-vncviewer-exec-");
    const wrapper = writeViewerWrapper(dir);
    const connect = spawnTracked(
      process.execPath,
      [
        "relay/main.ts",
        "connect",
        "--relay",
        relay.url,
        "--ticket",
        s.json.ticket,
        "--ca",
        relay.tls.certFile,
        "--exec",
        `${wrapper} {password} {addr}`,
      ],
      { cwd: REPO, env: { ...process.env, DISPLAY: display } },
    );
    let viewerPid = 0;
    try {
      const stdout = () => new TextDecoder().decode(connect.stdout());
      const printed = await waitFor(
        "connect to print its password",
        VNCVIEWER_CONNECT_DEFAULTS.connectPrintMs,
        () => {
          if (!connect.alive()) throw new Error(`connect exited early\n${stdout()}\n${connect.stderr()}`);
          return /one-time VNC password: (\S{8})/.exec(stdout())?.[1];
        },
      );
      viewerPid = await waitFor("the viewer's pid", VNCVIEWER_CONNECT_DEFAULTS.connectPrintMs, () => {
        const f = join(dir, "viewer.pid");
        return existsSync(f) ? Number(readFileSync(f, "utf8").trim()) || undefined : undefined;
      });
      // --exec substituted the password connect printed, not something else.
      expect(readFileSync(join(dir, "password-given"), "utf8")).toBe(printed);

      const viewerLog = () =>
        `--- connect stdout ---\n${stdout()}\n--- connect stderr ---\n${connect.stderr()}`;
      /** Waits until the Xvfb screen equals the demo's framebuffer as it is now. */
      const shows = async (label: string): Promise<void> => {
        const want: RgbaImage = { width: WIDTH, height: HEIGHT, rgba: demo.desktop.fb.data.slice() };
        for (let i = 3; i < want.rgba.length; i += 4) want.rgba[i] = 255;
        let last = compareImages(await captureX(display), want, EXACT);
        const deadline = Date.now() + VNCVIEWER_CONNECT_DEFAULTS.pictureMs;
        while (!last.ok && Date.now() < deadline && isPidAlive(viewerPid)) {
          await Bun.sleep(200);
          last = compareImages(await captureX(display), want, EXACT);
        }
        if (!last.ok) writePng(`test/artifacts/vncviewer-connect-${label}.png`, await captureX(display));
        expect({ ok: last.ok, label, stats: describeStats(last), log: last.ok ? "" : viewerLog() }).toEqual({
          ok: true,
          label,
          stats: expect.any(String),
          log: "",
        });
      };
      await shows("first");
      demo.tick(4100); // clock, ball, log scroll: an incremental update through the relay
      await shows("after-an-incremental-update");

      // The viewer leaves: connect's session completes, it exits 0, and the relay ends and audits the session.
      process.kill(viewerPid, "SIGTERM");
      const code = await Promise.race([
        connect.exited,
        Bun.sleep(VNCVIEWER_CONNECT_DEFAULTS.connectExitMs).then(() => "still running"),
      ]);
      await connect.done;
      expect({ code, last: stdout().trim().split("\n").at(-1) }).toEqual({
        code: 0,
        last: expect.stringMatching(/^session completed: /),
      });
      let record: Json;
      for (const deadline = Date.now() + 5_000; ; ) {
        record = (await api("GET", `/api/sessions/${s.json.id}`)).json;
        if (record.state === "ended" || Date.now() > deadline) break;
        await Bun.sleep(50);
      }
      expect(record.state).toBe("ended");
      expect(record.bytesFromDevice).toBeGreaterThan(10_000);
      const ends = (await api("GET", "/api/audit?kind=session.end")).json as {
        payload: { session: string };
      }[];
      expect(ends.map((r) => r.payload.session)).toContain(s.json.id);
    } finally {
      if (viewerPid > 0 && isPidAlive(viewerPid)) {
        process.kill(viewerPid, "SIGKILL");
      }
      await connect.kill();
      await xvfb.kill();
    }
    expect([connect.pid, xvfb.pid, viewerPid].filter(isPidAlive)).toEqual([]);
  }, 60_000);
});
