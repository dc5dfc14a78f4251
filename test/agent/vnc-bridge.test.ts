// The agent's VNC bridge: towards the relay an RFB server offering only None, towards the device's VNC
// server a client answering its VNC Authentication with the device's own password. In memory against our
// RfbServerConnection (refusals), and against a real Xvnc with a VNC password: our RfbClient on the relay
// side, decoding, sees exactly what a lossless capture of the X display shows.

import { afterAll, describe, expect, test } from "bun:test";
import { bridgeToVnc } from "../../relay/agent/vnc-bridge.ts";
import { RfbClient } from "../../relay/rfb/client.ts";
import { Encoding, SecurityType } from "../../relay/rfb/constants.ts";
import { RfbError } from "../../relay/rfb/errors.ts";
import { RfbServerConnection } from "../../relay/rfb/server.ts";
import { hold } from "../../relay/rfb/splice.ts";
import { type ByteChannel, channelPair } from "../../relay/session/channel.ts";
import { EXACT, type RgbaImage, compareImages, describeStats } from "../peers/images.ts";
import {
  PAINT_PEERS,
  XVNC_PEERS,
  captureX,
  freePort,
  killAll,
  paint,
  requirePeer,
  startXvnc,
} from "../peers/rig.ts";

const enc = (s: string) => new TextEncoder().encode(s);

/** Our RfbClient on the relay's end of the data channel; errors and the close are recorded. */
function relayClient(ch: ByteChannel, o: { password?: string; encodings?: number[] } = {}) {
  const st = { error: null as string | null, closed: null as string | null, sawBytes: 0 };
  const c = new RfbClient({
    send: (b) => ch.send(b),
    ...(o.password ? { password: o.password } : {}),
    ...(o.encodings ? { encodings: o.encodings } : {}),
  });
  ch.onData = (b) => {
    st.sawBytes += b.length;
    try {
      c.feed(b);
    } catch (e) {
      st.error = e instanceof RfbError ? e.code : String(e);
      ch.close("client failed");
    }
  };
  ch.onClose = (r) => {
    st.closed = r;
  };
  return { c, st };
}

async function until(pred: () => boolean, what: string, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** A device VNC server in memory: our RfbServerConnection, reached through the bridge's `connect`. */
function memoryDevice(password?: string) {
  const connects: string[] = [];
  const connect = async (host: string, port: number): Promise<ByteChannel> => {
    connects.push(`${host}:${port}`);
    const [ours, dev] = channelPair();
    hold(ours); // as a TCP LinkChannel does: the greeting may arrive before the handshake attaches
    const s = new RfbServerConnection({
      send: (b) => dev.send(b),
      width: 32,
      height: 16,
      name: "memdev",
      ...(password ? { securityTypes: [SecurityType.VncAuth], password } : {}),
    });
    dev.onData = (b) => {
      try {
        s.feed(b);
      } catch {
        dev.close("server failed");
      }
    };
    s.start();
    return ours;
  };
  return { connect, connects };
}

describe("bridgeToVnc in memory", () => {
  test("the relay sees an RFB server offering only None, with the device's ServerInit", async () => {
    const dev = memoryDevice("devpass");
    const [relaySide, relay] = channelPair();
    const seen: number[] = [];
    const { c, st } = relayClient(relay);
    const feed = relay.onData;
    relay.onData = (b) => {
      seen.push(...b);
      feed(b);
    };
    const bridge = await bridgeToVnc(
      relaySide,
      { host: "dev", port: 5900, password: enc("devpass") },
      { connect: dev.connect },
    );
    await until(() => c.ready, "relay client ready");
    expect(dev.connects).toEqual(["dev:5900"]);
    // Version, then the security list [1 type: None] — the device password never crosses.
    expect(seen.slice(12, 14)).toEqual([1, SecurityType.None]);
    expect(c.info).toMatchObject({ width: 32, height: 16, name: "memdev", securityType: SecurityType.None });
    expect(bridge.server.securityType).toBe(SecurityType.VncAuth);
    expect(bridge.viewer.securityType).toBe(SecurityType.None);
    bridge.close("device user ended the session");
    const r = await bridge.done;
    expect(r.reason).toBe("device user ended the session");
    await until(() => st.closed !== null, "relay side closed");
    expect(st.closed).toBe("device user ended the session");
    expect(st.error).toBeNull();
  });

  test("a wrong device password: the relay side is closed before any RFB byte", async () => {
    const dev = memoryDevice("devpass");
    const [relaySide, relay] = channelPair();
    const { st } = relayClient(relay);
    await expect(
      bridgeToVnc(relaySide, { host: "dev", port: 1, password: enc("wrong") }, { connect: dev.connect }),
    ).rejects.toMatchObject({ code: "AUTH_FAILED" });
    await until(() => st.closed !== null, "relay side closed");
    expect(st.sawBytes).toBe(0);
    expect(st.closed).toBe(new RfbError("AUTH_FAILED").reason);
  });

  test("no password for a VncAuth server: AUTH_REQUIRED, relay side closed", async () => {
    const dev = memoryDevice("devpass");
    const [relaySide, relay] = channelPair();
    const { st } = relayClient(relay);
    await expect(
      bridgeToVnc(relaySide, { host: "dev", port: 1 }, { connect: dev.connect }),
    ).rejects.toMatchObject({
      code: "AUTH_REQUIRED",
    });
    await until(() => st.closed !== null, "relay side closed");
    expect(st.sawBytes).toBe(0);
  });

  test("the relay side closing while the device handshake runs aborts the bridge and closes the device", async () => {
    let deviceClosed = "";
    const [relaySide, relay] = channelPair();
    const connect = async (): Promise<ByteChannel> => {
      const [ours, dev] = channelPair();
      hold(ours);
      dev.onClose = (r) => {
        deviceClosed = r;
      };
      // A VNC server that greets and then says nothing more.
      dev.send(enc("RFB 003.008\n"));
      queueMicrotask(() => relay.close("relay went away"));
      return ours;
    };
    await expect(bridgeToVnc(relaySide, { host: "x", port: 1 }, { connect })).rejects.toMatchObject({
      code: "PEER_CLOSED",
    });
    await until(() => deviceClosed !== "", "device closed");
  });

  test("a VNC server that is not listening: a coded error, the relay side closed", async () => {
    const port = freePort();
    const [relaySide, relay] = channelPair();
    const { st } = relayClient(relay);
    const err = await bridgeToVnc(relaySide, { host: "127.0.0.1", port }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RfbError);
    expect((err as RfbError).message).toContain(`127.0.0.1:${port}`);
    await until(() => st.closed !== null, "relay side closed");
    expect(st.sawBytes).toBe(0);
  });

  test("a VNC server that never connects: the connect deadline", async () => {
    const [relaySide] = channelPair();
    const connect = () => new Promise<ByteChannel>(() => {});
    await expect(
      bridgeToVnc(relaySide, { host: "x", port: 1 }, { connect, connectTimeoutMs: 20 }),
    ).rejects.toMatchObject({ code: "HANDSHAKE_TIMEOUT" });
  });
});

const ok = requirePeer(...XVNC_PEERS, ...PAINT_PEERS);
afterAll(async () => {
  await killAll();
});

const asImage = (fb: { width: number; height: number; data: Uint8Array }): RgbaImage => {
  const rgba = fb.data.slice();
  for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255;
  return { width: fb.width, height: fb.height, rgba };
};

// Skips only outside CI, loudly: requirePeer() throws when CI=true.
describe.skipIf(!ok)("bridgeToVnc → Xvnc with a VNC password", () => {
  test("the relay side's decoding client sees exactly the X display, before and after a repaint", async () => {
    const x = await startXvnc({ width: 320, height: 200, password: "devpass1" });
    try {
      await paint(x, { pattern: "test" });
      const [relaySide, relay] = channelPair();
      const { c, st } = relayClient(relay, {
        encodings: [Encoding.Hextile, Encoding.CopyRect, Encoding.Raw],
      });
      const bridge = await bridgeToVnc(relaySide, { host: x.host, port: x.port, password: enc("devpass1") });
      expect(bridge.server).toMatchObject({
        width: 320,
        height: 200,
        name: "shadowrelay-test",
        securityType: 2,
      });
      await until(() => c.ready, "relay client ready");
      expect(c.info?.securityType).toBe(SecurityType.None);
      c.requestUpdate(false);
      await until(() => c.updates >= 1, "first update", 10_000);
      const truth = await captureX(x);
      const first = compareImages(asImage(c.fb!), truth, EXACT);
      expect({ ok: first.ok, stats: describeStats(first) }).toEqual({ ok: true, stats: expect.any(String) });

      const painted = await paint(x, { solid: "#3366cc" });
      for (let i = 0; i < 20 && !compareImages(asImage(c.fb!), painted, EXACT).ok; i++) {
        const before = c.updates;
        c.requestUpdate(true);
        await until(() => c.updates > before, "incremental update", 10_000);
      }
      expect(compareImages(asImage(c.fb!), painted, EXACT).ok).toBe(true);
      expect(st.error).toBeNull();

      relay.close("viewer left");
      const r = await bridge.done;
      expect(r.closedBy).toBe("b");
      expect(r.aToB).toBeGreaterThan(320 * 200); // at least one full frame's worth came through
    } finally {
      await x.stop();
    }
  }, 60_000);

  test("the wrong device password: AUTH_FAILED from Xvnc, nothing reaches the relay", async () => {
    const x = await startXvnc({ width: 64, height: 64, password: "devpass1" });
    try {
      const [relaySide, relay] = channelPair();
      const { st } = relayClient(relay);
      await expect(
        bridgeToVnc(relaySide, { host: x.host, port: x.port, password: enc("nottheone") }),
      ).rejects.toMatchObject({ code: "AUTH_FAILED" });
      await until(() => st.closed !== null, "relay side closed");
      expect(st.sawBytes).toBe(0);
    } finally {
      await x.stop();
    }
  }, 30_000);
});
