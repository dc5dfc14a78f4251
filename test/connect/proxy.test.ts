// The native-viewer proxy (`shadowrelay connect`) on loopback: vncsnapshot through it with the one-time
// password gets the Xvnc picture (the relay side being a TCP connection to an Xvnc without a password, or
// the agent's VNC bridge to an Xvnc with one); three wrong passwords burn it; an HTTP request is closed with
// nothing after the version; one viewer at a time, one session only; expiry, stop, a failing relay side;
// refused configurations.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { bridgeToVnc } from "../../relay/agent/vnc-bridge.ts";
import {
  ConnectProxyError,
  PASSWORD_ALPHABET,
  generateOneTimePassword,
  parseLoopbackListen,
  startConnectProxy,
} from "../../relay/connect/proxy.ts";
import { RfbError } from "../../relay/rfb/errors.ts";
import { connectTcpChannel } from "../../relay/rfb/splice.ts";
import { log } from "../../relay/util/log.ts";
import { type ByteChannel, channelPair } from "../../relay/session/channel.ts";
import { connectClient } from "../helpers/rfb-peer.ts";
import { compareImages, describeStats } from "../peers/images.ts";
import {
  PAINT_PEERS,
  SNAPSHOT_PEERS,
  VNCSNAPSHOT_TOLERANCE,
  XVNC_PEERS,
  captureX,
  killAll,
  paint,
  requirePeer,
  run,
  startXvnc,
  vncsnapshot,
  writeVncPasswordFile,
} from "../peers/rig.ts";

const enc = (s: string) => new TextEncoder().encode(s);

// The proxy's log lines are kept (not printed) and checked: a one-time password must never be logged.
const logLines: string[] = [];
const passwords: string[] = [];
let restoreSink: ((line: string) => void) | undefined;
beforeAll(() => {
  restoreSink = log.setSink((line) => logLines.push(line));
});
afterAll(() => {
  if (restoreSink) log.setSink(restoreSink);
  expect(logLines.length).toBeGreaterThan(0);
  for (const pw of passwords) expect(logLines.filter((l) => l.includes(pw))).toEqual([]);
});

interface Raw {
  write(b: Uint8Array): void;
  received(): Uint8Array;
  /** Resolves when the proxy closed the connection; rejects after ms. */
  closed(ms?: number): Promise<void>;
  end(): void;
}

/** A plain TCP client that records what it receives and when it is closed. */
async function raw(port: number): Promise<Raw> {
  const got: number[] = [];
  let isClosed = false;
  const waiters: (() => void)[] = [];
  const s = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, d) {
        got.push(...d);
      },
      close() {
        isClosed = true;
        for (const w of waiters.splice(0)) w();
      },
      error() {},
    },
  });
  return {
    write: (b) => void s.write(b),
    received: () => new Uint8Array(got),
    closed: (ms = 3_000) =>
      new Promise<void>((resolve, reject) => {
        if (isClosed) return resolve();
        const t = setTimeout(() => reject(new Error(`not closed within ${ms} ms`)), ms);
        waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      }),
    end: () => s.end(),
  };
}

async function refused(port: number): Promise<boolean> {
  try {
    const r = await raw(port);
    // Accepted by the kernel only if something still listens: then it must close without a byte.
    await r.closed();
    return r.received().length === 0;
  } catch {
    return true;
  }
}

/** startConnectProxy, with the password remembered for the log check. */
function track(o: Parameters<typeof startConnectProxy>[0]) {
  const p = startConnectProxy(o);
  passwords.push(p.password);
  return p;
}

const neverRelay = async (): Promise<ByteChannel> => {
  throw new Error("openRelay must not be called");
};

describe("configuration", () => {
  test("only loopback listen addresses", () => {
    expect(parseLoopbackListen("127.0.0.1:0")).toEqual({ hostname: "127.0.0.1", port: 0 });
    expect(parseLoopbackListen("127.1.2.3:5901")).toEqual({ hostname: "127.1.2.3", port: 5901 });
    expect(parseLoopbackListen("[::1]:0")).toEqual({ hostname: "::1", port: 0 });
    expect(parseLoopbackListen("localhost:7000")).toEqual({ hostname: "127.0.0.1", port: 7000 });
    for (const bad of ["0.0.0.0:0", "192.168.1.10:5900", "[::]:0", "example.com:0", "[::ffff:10.0.0.1]:0"]) {
      expect(() => parseLoopbackListen(bad)).toThrow(expect.objectContaining({ code: "NOT_LOOPBACK" }));
    }
    for (const bad of ["127.0.0.1", "127.0.0.1:65536", ":5900", "127.0.0.1:-1", "::1:0"]) {
      expect(() => parseLoopbackListen(bad)).toThrow(ConnectProxyError);
    }
    expect(() => startConnectProxy({ listen: "0.0.0.0:0", openRelay: neverRelay })).toThrow(
      expect.objectContaining({ code: "NOT_LOOPBACK" }),
    );
  });

  test("the one-time password: 8 characters of the alphabet, fresh each time; a given one must be 8 printable", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const p = generateOneTimePassword();
      expect(p).toHaveLength(8);
      for (const c of p) expect(PASSWORD_ALPHABET).toContain(c);
      seen.add(p);
    }
    expect(seen.size).toBe(200);
    for (const bad of ["short", "with spc1", "ninechars", "tab\there", "Ünïcödé!"]) {
      expect(() => startConnectProxy({ password: bad, openRelay: neverRelay })).toThrow(
        expect.objectContaining({ code: "BAD_PASSWORD" }),
      );
    }
    expect(() => startConnectProxy({ maxFailures: 0, openRelay: neverRelay })).toThrow(
      expect.objectContaining({ code: "BAD_OPTION" }),
    );
  });
});

describe("the proxy without real peers", () => {
  test("an HTTP request is closed at once: the version, nothing else; it does not count as a failure", async () => {
    const p = track({ openRelay: neverRelay });
    try {
      const r = await raw(p.port);
      r.write(enc("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
      await r.closed();
      expect(new TextDecoder().decode(r.received())).toBe("RFB 003.008\n");
      // Still usable: a viewer with the right password authenticates (and the relay side is asked for).
      let opened = 0;
      const p2 = track({
        openRelay: async () => {
          opened++;
          throw new Error("relay unreachable");
        },
      });
      const c = await connectClient(p2.port, { password: p2.password });
      await expect(c.until(() => c.client.ready, "handshake")).rejects.toThrow(/closed/);
      const res = await p2.done;
      expect(res).toMatchObject({ outcome: "failed", failures: 0 });
      expect(res.error).toBeInstanceOf(RfbError);
      expect(opened).toBe(1);
    } finally {
      p.stop();
    }
    expect((await p.done).failures).toBe(0);
  });

  test("one viewer at a time: a second connection during a handshake is closed without a byte", async () => {
    const p = track({ openRelay: neverRelay });
    try {
      const first = await raw(p.port);
      await new Promise((r) => setTimeout(r, 20));
      const second = await raw(p.port);
      await second.closed();
      expect(second.received().length).toBe(0);
      expect(new TextDecoder().decode(first.received())).toBe("RFB 003.008\n");
      first.end();
    } finally {
      p.stop("test over");
    }
    expect(await p.done).toMatchObject({ outcome: "stopped", reason: "test over" });
    expect(await refused(p.port)).toBe(true);
  });

  test("three wrong passwords burn it: later attempts, even with the right password, are refused", async () => {
    const p = track({ openRelay: neverRelay });
    for (let i = 1; i <= 3; i++) {
      const c = await connectClient(p.port, { password: `wrong-${i}` });
      await expect(c.until(() => c.client.ready, "handshake")).rejects.toThrow(/AUTH_FAILED/);
    }
    expect(await p.done).toMatchObject({ outcome: "burned", failures: 3 });
    expect(await refused(p.port)).toBe(true);
  });

  test("a relay side that never opens: the session fails after relayOpenTimeoutMs, the viewer is closed", async () => {
    const p = track({ openRelay: () => new Promise<ByteChannel>(() => {}), relayOpenTimeoutMs: 50 });
    const c = await connectClient(p.port, { password: p.password });
    await expect(c.until(() => c.client.ready, "handshake")).rejects.toThrow(/closed/);
    const res = await p.done;
    expect(res.outcome).toBe("failed");
    expect(res.error?.code).toBe("HANDSHAKE_TIMEOUT");
  });

  test("the password expires: a handshake in progress is ended, the port closed", async () => {
    const p = track({ openRelay: neverRelay, passwordTtlMs: 50 });
    const r = await raw(p.port);
    expect(await p.done).toMatchObject({ outcome: "expired" });
    await r.closed();
    expect(await refused(p.port)).toBe(true);
  });
});

const ok = requirePeer(...XVNC_PEERS, ...PAINT_PEERS, ...SNAPSHOT_PEERS);
afterAll(async () => {
  await killAll();
});

// Skips only outside CI, loudly: requirePeer() throws when CI=true.
describe.skipIf(!ok)("vncsnapshot through the proxy", () => {
  test("relay side = TCP to an Xvnc without a password: the Xvnc picture; single use", async () => {
    const x = await startXvnc({ width: 320, height: 240 });
    try {
      const truth = await paint(x, { pattern: "test" });
      let opened = 0;
      const p = track({
        openRelay: () => {
          opened++;
          return connectTcpChannel(x.host, x.port);
        },
      });
      const snap = await vncsnapshot(p.port, { password: p.password });
      const cmp = compareImages(snap, truth, VNCSNAPSHOT_TOLERANCE);
      expect({ ok: cmp.ok, stats: describeStats(cmp) }).toEqual({ ok: true, stats: expect.any(String) });
      const res = await p.done;
      expect(res).toMatchObject({ outcome: "completed", failures: 0 });
      expect(res.bytesToViewer).toBeGreaterThan(1_000); // ServerInit and a ZRLE-compressed frame
      expect(res.bytesToRelay).toBeGreaterThan(0);
      expect(opened).toBe(1);
      // Single use: the same password does not work a second time.
      await expect(vncsnapshot(p.port, { password: p.password, timeoutMs: 5_000 })).rejects.toThrow();
    } finally {
      await x.stop();
    }
  }, 60_000);

  test("relay side = the agent's VNC bridge to an Xvnc with its own password (the whole chain but the relay)", async () => {
    const x = await startXvnc({ width: 256, height: 192, password: "devpass1" });
    try {
      await paint(x, { pattern: "noise" });
      const truth = await captureX(x);
      const bridges: Promise<unknown>[] = [];
      const p = track({
        openRelay: async () => {
          const [relayEnd, agentEnd] = channelPair();
          bridges.push(bridgeToVnc(agentEnd, { host: x.host, port: x.port, password: enc("devpass1") }));
          return relayEnd;
        },
      });
      const snap = await vncsnapshot(p.port, { password: p.password });
      const cmp = compareImages(snap, truth, VNCSNAPSHOT_TOLERANCE);
      expect({ ok: cmp.ok, stats: describeStats(cmp) }).toEqual({ ok: true, stats: expect.any(String) });
      expect(await p.done).toMatchObject({ outcome: "completed" });
      expect(bridges).toHaveLength(1);
      await bridges[0];
    } finally {
      await x.stop();
    }
  }, 60_000);

  test("vncsnapshot with wrong passwords three times burns it; the right one is refused afterwards", async () => {
    const p = track({ openRelay: neverRelay });
    const wrong = await writeVncPasswordFile("WrongPw1");
    for (let i = 0; i < 3; i++) {
      const r = await run(
        "vncsnapshot",
        ["-allowblank", "-passwd", wrong, `127.0.0.1::${p.port}`, "/dev/null"],
        { timeoutMs: 10_000 },
      );
      expect(r.timedOut).toBe(false);
      expect(r.exitCode).not.toBe(0);
    }
    expect(await p.done).toMatchObject({ outcome: "burned", failures: 3 });
    await expect(vncsnapshot(p.port, { password: p.password, timeoutMs: 5_000 })).rejects.toThrow();
  }, 60_000);
});
