// Proves the real-peer rig with real peers: Xvnc starts (None and VncAuth) on loopback only, a painted
// picture is seen exactly by captureX and within the stated JPEG tolerance by vncsnapshot, a wrong password
// is refused, and every process the rig started is gone after killAll — or after the run exits or is killed.

import { afterAll, beforeAll, describe, expect, spyOn, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type CompareStats,
  compareImages,
  describeStats,
  EXACT,
  encodePng,
  noiseImage,
  parsePnm,
  type RgbaImage,
  solidImage,
  testPattern,
  tileImage,
  withRect,
  writePng,
} from "./images.ts";
import {
  captureX,
  freeDisplay,
  freePort,
  INSTALL_COMMAND,
  isPidAlive,
  killAll,
  makeTempDir,
  PAINT_PEERS,
  paint,
  readRfbGreeting,
  requirePeer,
  runOk,
  SNAPSHOT_PEERS,
  spawnTracked,
  startXvnc,
  trackedPids,
  VNCSNAPSHOT_TOLERANCE,
  vncsnapshot,
  vncsnapshotTarget,
  XVNC_PEERS,
  type Xvnc,
} from "./rig.ts";

const peersOk = requirePeer(...XVNC_PEERS, ...PAINT_PEERS, ...SNAPSHOT_PEERS);
const ARTIFACTS = join(import.meta.dir, "..", "artifacts", "peers");
const RIG_MODULE = join(import.meta.dir, "rig.ts");
// Per test and hook: above the rig's own bounded waits (Xvnc start 10 s, vncsnapshot 15 s), so a failure
// shows the rig's message with the peer's stderr rather than a bare timeout.
const PEER_TEST_MS = 30_000;

afterAll(async () => {
  await killAll();
});

/** Saves both pictures under test/artifacts/peers/ when a comparison fails, for a human to look at. */
function keepIfBad(name: string, stats: CompareStats, expected: RgbaImage, got: RgbaImage): void {
  if (stats.ok) return;
  writePng(join(ARTIFACTS, `${name}-expected.png`), expected);
  writePng(join(ARTIFACTS, `${name}-got.png`), got);
}

function withEnv<T>(name: string, value: string | undefined, fn: () => T): T {
  const before = process.env[name];
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
  try {
    return fn();
  } finally {
    if (before === undefined) delete process.env[name];
    else process.env[name] = before;
  }
}

describe("requirePeer", () => {
  test("true when every program is on PATH", () => {
    expect(withEnv("CI", "true", () => requirePeer("sh", "ls"))).toBe(true);
  });

  test("outside CI: warns naming the program, its package and the install command, and returns false", () => {
    const warn = spyOn(console, "warn").mockImplementation(() => {});
    try {
      expect(withEnv("CI", undefined, () => requirePeer("sh", "shadowrelay-no-such-peer", "Xvnc"))).toBe(
        false,
      );
      expect(warn).toHaveBeenCalledTimes(1);
      const message = String(warn.mock.calls[0]?.[0]);
      expect(message).toContain("shadowrelay-no-such-peer");
      expect(message).toContain(INSTALL_COMMAND);
    } finally {
      warn.mockRestore();
    }
  });

  test("in CI: a missing program throws, so the run fails instead of skipping", () => {
    expect(() => withEnv("CI", "true", () => requirePeer("shadowrelay-no-such-peer"))).toThrow(
      /shadowrelay-no-such-peer.*install-peers\.sh/,
    );
  });
});

describe("images", () => {
  test("compareImages counts pixels over the threshold and rejects other sizes", () => {
    const a = testPattern(64, 32);
    expect(compareImages(a, a, EXACT)).toMatchObject({ ok: true, maxDiff: 0, differingPixels: 0 });
    const b = withRect(a, 10, 5, 2, 3, [1, 2, 3]);
    const exact = compareImages(a, b, EXACT);
    expect(exact).toMatchObject({ ok: false, badPixels: 6, differingPixels: 6 });
    expect(exact.firstBad).toMatchObject({ x: 10, y: 5, b: [1, 2, 3] });
    expect(compareImages(a, b, { maxChannelDiff: 0, maxBadFraction: 6 / (64 * 32) }).ok).toBe(true);
    const nudged = a.rgba.slice();
    nudged[0] = nudged[0]! ^ 2; // white bar: 255 → 253
    const c = compareImages(a, { ...a, rgba: nudged }, { maxChannelDiff: 2, maxBadFraction: 0 });
    expect(c).toMatchObject({ ok: true, maxDiff: 2, badPixels: 0, differingPixels: 1 });
    expect(compareImages(a, testPattern(64, 33), { maxChannelDiff: 255, maxBadFraction: 1 }).ok).toBe(false);
  });

  test("parsePnm reads P6 and P5 with comments, and refuses a truncated one", () => {
    const p6 = new Uint8Array([...new TextEncoder().encode("P6\n# by hand\n2 1\n255\n"), 1, 2, 3, 4, 5, 6]);
    expect(parsePnm(p6)).toEqual({ width: 2, height: 1, rgba: new Uint8Array([1, 2, 3, 255, 4, 5, 6, 255]) });
    const p5 = new Uint8Array([...new TextEncoder().encode("P5 1 2 255 "), 7, 9]);
    expect(parsePnm(p5).rgba).toEqual(new Uint8Array([7, 7, 7, 255, 9, 9, 9, 255]));
    expect(() => parsePnm(p6.subarray(0, p6.length - 1))).toThrow(/truncated/);
  });

  test("tileImage repeats from the top-left corner", () => {
    const tile = testPattern(3, 2);
    const tiled = tileImage(tile, 7, 5);
    for (const [x, y] of [
      [0, 0],
      [4, 3],
      [6, 4],
    ] as const) {
      const at = (img: RgbaImage, px: number, py: number) => [
        ...img.rgba.subarray((py * img.width + px) * 4, (py * img.width + px) * 4 + 4),
      ];
      expect(at(tiled, x, y)).toEqual(at(tile, x % 3, y % 2));
    }
  });

  // Skips only outside CI, loudly: requirePeer() throws when CI=true, so in CI these tests always run.
  test.skipIf(!peersOk)(
    "a PNG written by encodePng reads back identically in ImageMagick",
    async () => {
      const picture = noiseImage(97, 31); // odd sizes: no row padding may sneak in
      const file = join(makeTempDir(), "noise.png");
      writeFileSync(file, encodePng(picture));
      const back = parsePnm((await runOk("convert", [file, "-depth", "8", "ppm:-"])).stdout);
      expect(compareImages(back, picture, EXACT)).toMatchObject({ ok: true, differingPixels: 0 });
    },
    PEER_TEST_MS,
  );
});

describe("free ports and displays", () => {
  test("freePort gives distinct ports that can be listened on", () => {
    const a = freePort();
    const b = freePort();
    expect(a).not.toBe(b);
    const server = Bun.listen({ hostname: "127.0.0.1", port: a, socket: { data() {} } });
    server.stop(true);
  });

  test("freeDisplay reserves: the same number is never handed out twice", () => {
    const a = freeDisplay();
    expect(a).toBeGreaterThanOrEqual(40);
    expect(freeDisplay(a)).toBeGreaterThan(a);
    expect(freeDisplay(40)).not.toBe(a);
  });
});

// Skips only outside CI, loudly: requirePeer() throws when CI=true, so in CI these tests always run.
describe.skipIf(!peersOk)("Xvnc, paint, captureX and vncsnapshot (real peers)", () => {
  const PASSWORD = "s3cret!"; // 7 characters: VNC auth uses at most 8
  let open: Xvnc;
  let authed: Xvnc;

  beforeAll(async () => {
    [open, authed] = await Promise.all([
      startXvnc({ width: 640, height: 480 }),
      startXvnc({ width: 320, height: 240, password: PASSWORD }),
    ]);
  }, PEER_TEST_MS);

  test(
    "Xvnc greets on its port and listens on loopback only, with no X over TCP",
    async () => {
      expect(open.securityTypes).toBe("None");
      expect(authed.securityTypes).toBe("VncAuth");
      expect(authed.passwordFile).toBeDefined();
      expect(readFileSync(authed.passwordFile!).length).toBe(8);
      for (const x of [open, authed]) {
        expect(await readRfbGreeting(x.port)).toBe("RFB 003.008\n");
        // /proc/net/tcp{,6}: "sl local_address rem_address st ...", addresses in hex, st 0A = LISTEN.
        const listening = ["/proc/net/tcp", "/proc/net/tcp6"].flatMap((f) =>
          readFileSync(f, "utf8")
            .split("\n")
            .slice(1)
            .map((l) => l.trim().split(/\s+/))
            .filter((cols) => cols[3] === "0A")
            .map((cols) => cols[1]!),
        );
        const hexPort = (p: number) => `:${p.toString(16).toUpperCase().padStart(4, "0")}`;
        const rfb = listening.filter((a) => a.endsWith(hexPort(x.port)));
        expect(rfb.length).toBeGreaterThan(0);
        const loopback = new Set(["0100007F", "00000000000000000000000001000000"]); // 127.0.0.1, ::1
        for (const address of rfb) expect(loopback).toContain(address.slice(0, address.indexOf(":")));
        expect(listening.filter((a) => a.endsWith(hexPort(6000 + x.display)))).toEqual([]);
      }
    },
    PEER_TEST_MS,
  );

  test(
    "a solid colour painted is what captureX sees, every pixel",
    async () => {
      for (const colour of [
        [0x3a, 0x7b, 0xd5],
        [0xff, 0x00, 0x80],
      ] as const) {
        await paint(open, { solid: colour });
        const shown = await captureX(open);
        expect([shown.width, shown.height]).toEqual([640, 480]);
        let wrong = 0;
        for (let i = 0; i < shown.rgba.length; i += 4) {
          if (
            shown.rgba[i] !== colour[0] ||
            shown.rgba[i + 1] !== colour[1] ||
            shown.rgba[i + 2] !== colour[2]
          ) {
            wrong++;
          }
        }
        expect(wrong).toBe(0);
      }
    },
    PEER_TEST_MS,
  );

  test(
    "a multi-colour pattern, and a small tile repeated, are what captureX sees",
    async () => {
      const expected = await paint(open, { pattern: "test" });
      expect(compareImages(await captureX(open), testPattern(640, 480), EXACT).ok).toBe(true);
      expect(compareImages(expected, testPattern(640, 480), EXACT).ok).toBe(true);
      const tile = noiseImage(50, 30, 7);
      await paint(open, { image: tile });
      const shown = await captureX(open);
      expect(compareImages(shown, tileImage(tile, 640, 480), EXACT)).toMatchObject({ ok: true, maxDiff: 0 });
    },
    PEER_TEST_MS,
  );

  test(
    "vncsnapshot (None) sees captureX's picture within the JPEG tolerance, which catches a 4×4 defect",
    async () => {
      for (const spec of [{ solid: "#204080" }, { pattern: "test" }, { pattern: "noise" }] as const) {
        await paint(open, spec);
        const truth = await captureX(open);
        const snap = await vncsnapshot(open);
        const stats = compareImages(snap, truth, VNCSNAPSHOT_TOLERANCE);
        keepIfBad(`vncsnapshot-${Object.values(spec)[0]}`, stats, truth, snap);
        console.log(`vncsnapshot vs captureX, ${JSON.stringify(spec)}: ${describeStats(stats)}`);
        expect(stats.ok).toBe(true);
        // The same snapshot against a picture with a 4×4 block a little off must fail: the check can fail.
        const defect = compareImages(snap, withRect(truth, 301, 203, 4, 4, [9, 9, 9]), VNCSNAPSHOT_TOLERANCE);
        expect(defect.ok).toBe(false);
        expect(defect.badPixels).toBeGreaterThanOrEqual(1);
        expect(defect.badPixels).toBeLessThanOrEqual(16);
      }
      // vncsnapshot's own target syntax: host::port (the rig's form) and host:N > 99 read as a port.
      expect(vncsnapshotTarget(`127.0.0.1:${open.port}`)).toBe(`127.0.0.1::${open.port}`);
      expect(vncsnapshotTarget(":3")).toBe("127.0.0.1:3");
      const bySpelledPort = await vncsnapshot(`:${open.port}`);
      expect(compareImages(bySpelledPort, await captureX(open), VNCSNAPSHOT_TOLERANCE).ok).toBe(true);
    },
    PEER_TEST_MS,
  );

  test(
    "VncAuth: vncsnapshot with the password sees the picture; a wrong or missing password is refused",
    async () => {
      const expected = await paint(authed, { pattern: "test" });
      expect(compareImages(await captureX(authed), expected, EXACT).ok).toBe(true);
      const viaOwnFile = await vncsnapshot(authed); // the Xvnc's own password file
      const viaPassword = await vncsnapshot(authed.port, { password: PASSWORD }); // written by vncpasswd -f
      for (const snap of [viaOwnFile, viaPassword]) {
        const stats = compareImages(snap, expected, VNCSNAPSHOT_TOLERANCE);
        keepIfBad("vncsnapshot-vncauth", stats, expected, snap);
        expect(stats.ok).toBe(true);
      }
      await expect(vncsnapshot(authed.port, { password: "wrong!!" })).rejects.toThrow(
        /authentication failed/i,
      );
      await expect(vncsnapshot(authed.port)).rejects.toThrow(/password/i); // prompts, stdin closed
      // Not a coincidence of colours: the open server shows something else than the authed one now.
      await paint(open, { solid: "#000000" });
      expect(compareImages(await vncsnapshot(open), solidImage(640, 480, [0, 0, 0]), EXACT).ok).toBe(true);
    },
    PEER_TEST_MS,
  );

  test(
    "killAll ends every started process, SIGKILL after the grace when SIGTERM is ignored",
    async () => {
      // exec keeps the ignored SIGTERM and the pid: the tracked process itself ignores it.
      const stubborn = spawnTracked("sh", ["-c", "trap '' TERM; exec sleep 30"]);
      await Bun.sleep(100); // let sh set the trap and exec
      const pids = [...trackedPids()];
      expect(pids).toContain(open.pid);
      expect(pids).toContain(authed.pid);
      expect(isPidAlive(open.pid)).toBe(true);
      const signalled = await killAll(300);
      expect(signalled).toEqual(expect.arrayContaining([open.pid, authed.pid, stubborn.pid]));
      expect(stubborn.subprocess.signalCode).toBe("SIGKILL");
      expect(open.process.subprocess.signalCode).not.toBe("SIGKILL"); // Xvnc leaves on SIGTERM, in time
      for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
      for (const x of [open, authed]) {
        expect(existsSync(`/tmp/.X${x.display}-lock`)).toBe(false); // Xvnc removed its lock file
        expect(await readRfbGreeting(x.port, 300)).toBeNull();
      }
    },
    PEER_TEST_MS,
  );
});

describe("the rig's exit handlers", () => {
  /** A separate bun that starts `sleep 30` through the rig, prints its pid, then ends as `how` says. */
  async function orphanCheck(how: "exit" | "SIGTERM"): Promise<void> {
    const script = join(makeTempDir(), "child.ts");
    writeFileSync(
      script,
      `import { spawnTracked } from ${JSON.stringify(RIG_MODULE)};\n` +
        `const p = spawnTracked("sleep", ["30"]);\n` +
        `console.log(p.pid);\n` +
        (how === "exit" ? "process.exit(0);\n" : "setInterval(() => {}, 1000);\n"),
    );
    const child = spawnTracked(process.execPath, [script]);
    const deadline = Date.now() + 4_000;
    let pid = 0;
    try {
      while (pid === 0 && Date.now() < deadline && child.alive()) {
        pid = Number.parseInt(new TextDecoder().decode(child.stdout()), 10) || 0;
        await Bun.sleep(20);
      }
      if (pid === 0) pid = Number.parseInt(new TextDecoder().decode(child.stdout()), 10) || 0;
      expect(pid).toBeGreaterThan(0);
      if (how === "SIGTERM") {
        expect(isPidAlive(pid)).toBe(true);
        child.subprocess.kill("SIGTERM");
      }
      expect(await child.exited).toBe(how === "exit" ? 0 : 128 + 15);
      // The orphan is SIGKILLed by the child's handler; whoever reaps it, it must not be running.
      while (isPidAlive(pid) && Date.now() < deadline) await Bun.sleep(20);
      expect(isPidAlive(pid)).toBe(false);
    } finally {
      // The grandchild is not in this process's registry: if the handler under test failed, end it here.
      if (pid > 0 && isPidAlive(pid)) process.kill(pid, "SIGKILL");
      await child.kill();
    }
  }

  test(
    "a run that exits without killAll still kills what it started",
    () => orphanCheck("exit"),
    PEER_TEST_MS,
  );

  test("a run ended by SIGTERM still kills what it started", () => orphanCheck("SIGTERM"), PEER_TEST_MS);
});
