// The pipe session in memory (channelPair): a fake device (our RfbServerConnection, or hand-written bytes)
// and a fake viewer (our RfbClient, or hand-written bytes) on either side. Both handshakes, byte-exact
// forwarding under any chunking, the view-only filter, SetEncodings cut down, the pixel format followed at
// update boundaries, coded ends for malicious input from either side, deadlines, backpressure, and onEnd
// exactly once.

import { describe, expect, test } from "bun:test";
import { RfbClient, type RfbClientOptions } from "../../relay/rfb/client.ts";
import type { ClientMessage } from "../../relay/rfb/client-messages.ts";
import { ClientMsg, Encoding, PseudoEncoding, SecurityType } from "../../relay/rfb/constants.ts";
import { RfbError } from "../../relay/rfb/errors.ts";
import { CANONICAL_FORMAT, type PixelFormat } from "../../relay/rfb/pixel-format.ts";
import { RfbServerConnection, type RfbServerOptions } from "../../relay/rfb/server.ts";
import { vncAuthResponse } from "../../relay/rfb/vnc-auth.ts";
import {
  bellMsg,
  clientCutTextMsg,
  desktopNameBody,
  endOfContinuousUpdatesMsg,
  enableContinuousUpdatesMsg,
  framebufferUpdateHeader,
  framebufferUpdateRequestMsg,
  keyEventMsg,
  pointerEventMsg,
  rectHeader,
  serverCutTextMsg,
  serverInitMsg,
  setEncodingsMsg,
  setPixelFormatMsg,
  versionString,
} from "../../relay/rfb/writer.ts";
import { type ByteChannel, channelPair } from "../../relay/session/channel.ts";
import {
  type DropKind,
  PIPE_DEFAULTS,
  type PipeDeviceInfo,
  type PipeEnd,
  type PipeOptions,
  type PipeSession,
  relayableEncodings,
  sanitizeName,
  startPipe,
  tuningWith,
  type ViewerPassword,
} from "../../relay/session/pipe.ts";
import { cat } from "../helpers/bytes.ts";
import { BGRX, RGB565_LE } from "../helpers/formats.ts";

const enc = new TextEncoder();

/** Lets queued microtasks and zero-delay timers run until pred holds (bounded). */
async function until(pred: () => boolean, what: string, ms = 2_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** Lets everything queued so far be delivered (in-memory channels deliver in microtasks). */
const settle = () => new Promise((r) => setTimeout(r, 5));

// ---- fakes ----------------------------------------------------------------------------------------------

interface FakeDevice {
  server: RfbServerConnection;
  /** Client messages the device parsed, after its handshake. */
  messages: ClientMessage[];
  /** Bytes received once its handshake was done (what the relay forwarded or built). */
  after: Uint8Array[];
  closed: boolean;
  error: RfbError | null;
  send(b: Uint8Array): void;
}

/** A device built on our RFB server role: it records everything it receives. */
function fakeDevice(ch: ByteChannel, o: Partial<Omit<RfbServerOptions, "send">> = {}): FakeDevice {
  const d: FakeDevice = {
    server: null as unknown as RfbServerConnection,
    messages: [],
    after: [],
    closed: false,
    error: null,
    send: (b) => ch.send(b),
  };
  d.server = new RfbServerConnection({
    width: 16,
    height: 8,
    name: "device-1",
    pixelFormat: BGRX,
    ...o,
    send: (b) => ch.send(b),
    onMessage: (m) => d.messages.push(m),
  });
  ch.onData = (b) => {
    if (d.server.ready) d.after.push(b.slice());
    try {
      d.server.feed(b);
    } catch (e) {
      d.error = e as RfbError;
      ch.close("device error");
    }
  };
  ch.onClose = () => {
    d.closed = true;
  };
  d.server.start();
  return d;
}

interface FakeViewer {
  client: RfbClient;
  /** Bytes received after its ServerInit. */
  after: Uint8Array[];
  all: Uint8Array[];
  closed: boolean;
  closeReason: string;
  error: RfbError | null;
  send(b: Uint8Array): void;
}

/** A viewer built on our RFB client role (decoding, so the pixels can be checked). */
function fakeViewer(ch: ByteChannel, o: Partial<Omit<RfbClientOptions, "send">> = {}): FakeViewer {
  const v: FakeViewer = {
    client: null as unknown as RfbClient,
    after: [],
    all: [],
    closed: false,
    closeReason: "",
    error: null,
    send: (b) => ch.send(b),
  };
  v.client = new RfbClient({ ...o, send: (b) => ch.send(b) });
  ch.onData = (b) => {
    v.all.push(b.slice());
    if (v.client.ready) v.after.push(b.slice());
    try {
      v.client.feed(b);
    } catch (e) {
      v.error = e as RfbError;
      ch.close("viewer error");
    }
  };
  ch.onClose = (r) => {
    v.closed = true;
    v.closeReason = r;
  };
  return v;
}

/** A raw byte endpoint: records what arrives, sends what the test says. */
function rawEnd(ch: ByteChannel) {
  const e = {
    got: [] as Uint8Array[],
    closed: false,
    bytes: () => cat(...e.got),
    send: (b: Uint8Array) => ch.send(b),
  };
  ch.onData = (b) => e.got.push(b.slice());
  ch.onClose = () => {
    e.closed = true;
  };
  return e;
}

interface Rig {
  pipe: PipeSession;
  ends: PipeEnd[];
  ready: PipeDeviceInfo[];
  firstDrops: DropKind[];
  viewerEnd: ByteChannel;
  deviceEnd: ByteChannel;
}

/** A pipe between two in-memory pairs; the test attaches whatever it likes to viewerEnd and deviceEnd. */
function rig(
  o: Partial<Omit<PipeOptions, "viewer" | "device" | "onEnd">> = {},
  viewerChannel?: (c: ByteChannel) => ByteChannel,
): Rig {
  const [viewerEnd, relayViewer] = channelPair();
  const [deviceEnd, relayDevice] = channelPair();
  const r: Rig = {
    pipe: null as unknown as PipeSession,
    ends: [],
    ready: [],
    firstDrops: [],
    viewerEnd,
    deviceEnd,
  };
  r.pipe = startPipe({
    viewOnly: false,
    ...o,
    viewer: viewerChannel ? viewerChannel(relayViewer) : relayViewer,
    device: relayDevice,
    onEnd: (e) => r.ends.push(e),
    onReady: (d) => r.ready.push(d),
    onFirstDrop: (k) => r.firstDrops.push(k),
  });
  return r;
}

/** Canonical pixels (R,G,B,X) for a w×h rect of one colour. */
function solid(w: number, h: number, rgb: [number, number, number], pf: PixelFormat = CANONICAL_FORMAT) {
  const bpp = pf.bitsPerPixel / 8;
  const out = new Uint8Array(w * h * bpp);
  const R = Math.round((rgb[0] * pf.redMax) / 255);
  const G = Math.round((rgb[1] * pf.greenMax) / 255);
  const B = Math.round((rgb[2] * pf.blueMax) / 255);
  const v = ((R << pf.redShift) | (G << pf.greenShift) | (B << pf.blueShift)) >>> 0;
  for (let i = 0; i < w * h; i++) {
    for (let k = 0; k < bpp; k++) out[i * bpp + k] = (v >>> (8 * (pf.bigEndian ? bpp - 1 - k : k))) & 0xff;
  }
  return out;
}

/** One RGB pixel of a decoded canonical framebuffer. */
function px(v: FakeViewer, x: number, y: number): number[] {
  const fb = v.client.fb!;
  const o = (y * fb.width + x) * 4;
  return [...fb.data.subarray(o, o + 3)];
}

/** The viewer handshake as hand-written bytes (3.8, None, shared). */
const viewerHello = cat(versionString(3, 8), [SecurityType.None], [1]);
/** The device handshake as hand-written bytes (3.8, None, ServerInit). */
const deviceHello = (w: number, h: number, name = "dev", pf: PixelFormat = CANONICAL_FORMAT) =>
  cat(versionString(3, 8), [1, SecurityType.None], [0, 0, 0, 0], serverInitMsg(w, h, pf, name));

/** Sends b in pieces of n bytes (each piece its own onData at the far end). */
function sendIn(send: (b: Uint8Array) => void, b: Uint8Array, n: number): void {
  for (let i = 0; i < b.length; i += n) send(b.subarray(i, i + n));
}

/** QEMU extended key event: type 255, subtype 0, U16 down, U32 keysym, U32 keycode. */
function qemuKey(down: boolean, keysym: number, keycode: number): Uint8Array {
  const b = new Uint8Array(12);
  const dv = new DataView(b.buffer);
  dv.setUint8(0, ClientMsg.Qemu);
  dv.setUint16(2, down ? 1 : 0);
  dv.setUint32(4, keysym);
  dv.setUint32(8, keycode);
  return b;
}

/** SetDesktopSize w×h with one screen covering it. */
function setDesktopSize(w: number, h: number): Uint8Array {
  const b = new Uint8Array(8 + 16);
  const dv = new DataView(b.buffer);
  dv.setUint8(0, ClientMsg.SetDesktopSize);
  dv.setUint16(2, w);
  dv.setUint16(4, h);
  dv.setUint8(6, 1);
  dv.setUint16(8 + 8, w);
  dv.setUint16(8 + 10, h);
  return b;
}

/** Cursor pseudo-rect body for w×h in pf: pixels then a 1-bit mask, rows padded to bytes. */
function cursorBody(w: number, h: number, pf: PixelFormat): Uint8Array {
  return cat(solid(w, h, [255, 0, 0], pf), new Uint8Array(((w + 7) >> 3) * h).fill(0xff));
}

async function connectedPair(
  o: Partial<Omit<PipeOptions, "viewer" | "device" | "onEnd">> = {},
  device: Partial<Omit<RfbServerOptions, "send">> = {},
  viewer: Partial<Omit<RfbClientOptions, "send">> = {},
) {
  const r = rig(o);
  const d = fakeDevice(r.deviceEnd, device);
  const v = fakeViewer(r.viewerEnd, viewer);
  await until(() => v.client.ready && d.server.ready, "both handshakes");
  // The viewer's SetPixelFormat and SetEncodings reach the device.
  await until(() => d.messages.length >= 2, "the viewer's SetPixelFormat and SetEncodings");
  return { r, d, v };
}

// ---- tests ----------------------------------------------------------------------------------------------

describe("handshakes", () => {
  test("the viewer gets the device's size, pixel format and name; the device gets the viewer's format and encodings cut down", async () => {
    const { r, d, v } = await connectedPair({}, { width: 320, height: 200, name: "Ωdesk" });
    expect(v.client.info).toMatchObject({
      width: 320,
      height: 200,
      name: "Ωdesk",
      securityType: SecurityType.None,
    });
    expect(v.client.info!.serverPixelFormat).toEqual(BGRX);
    expect(r.ready).toEqual([
      { version: { major: 3, minor: 8 }, width: 320, height: 200, pixelFormat: BGRX, name: "Ωdesk" },
    ]);
    expect(d.server.info?.shared).toBe(true);
    expect(d.server.pixelFormat).toEqual(CANONICAL_FORMAT);
    // RfbClient's default list: all of it can be framed.
    expect(d.server.encodings).toEqual(relayableEncodings(d.server.encodings));
    expect(d.server.encodings).toContain(PseudoEncoding.Cursor);

    // A list with things the relay cannot frame or will not pass.
    const asked = [
      Encoding.Tight,
      12345,
      Encoding.ZRLE,
      Encoding.Raw,
      PseudoEncoding.ContinuousUpdates,
      PseudoEncoding.ExtendedMouseButtons,
      PseudoEncoding.XCursor,
      PseudoEncoding.DesktopSize,
      PseudoEncoding.CompressLevel0 + 6,
      PseudoEncoding.QualityLevel0 + 9,
      PseudoEncoding.Fence,
      -1063131698, // Extended Clipboard (0xC0A1E5CE)
      -317, // Tight without zlib
      PseudoEncoding.LastRect,
    ];
    v.send(setEncodingsMsg(asked));
    await until(() => d.messages.length >= 3, "SetEncodings");
    expect(d.messages[2]).toEqual({
      type: "SetEncodings",
      encodings: [
        Encoding.Tight,
        Encoding.ZRLE,
        Encoding.Raw,
        PseudoEncoding.DesktopSize,
        PseudoEncoding.CompressLevel0 + 6,
        PseudoEncoding.QualityLevel0 + 9,
        PseudoEncoding.Fence,
        PseudoEncoding.LastRect,
      ],
    });
    r.pipe.end("test over");
  });

  test("the viewer gets no ServerInit until the device's handshake is done", async () => {
    const r = rig();
    const v = fakeViewer(r.viewerEnd);
    await settle();
    // Version (12), security types [1 type: None] (2), SecurityResult OK (4): nothing more.
    expect(cat(...v.all)).toEqual(cat(versionString(3, 8), [1, SecurityType.None], [0, 0, 0, 0]));
    expect(v.client.ready).toBe(false);
    const d = fakeDevice(r.deviceEnd, { width: 40, height: 30 });
    await until(() => v.client.ready, "viewer handshake");
    expect(v.client.info).toMatchObject({ width: 40, height: 30, name: "device-1" });
    expect(d.server.ready).toBe(true);
    r.pipe.end();
  });

  test("a device that needs a password (the agent did not answer it) ends the session with AUTH_REQUIRED", async () => {
    const r = rig();
    const v = fakeViewer(r.viewerEnd);
    fakeDevice(r.deviceEnd, { securityTypes: [SecurityType.VncAuth], password: "pw" });
    await until(() => r.ends.length > 0, "end");
    expect(r.ends).toEqual([expect.objectContaining({ by: "device", error: "AUTH_REQUIRED" })]);
    await until(() => v.closed, "viewer closed");
    expect(v.client.ready).toBe(false);
  });

  test("a device refusing the connection (no security types + reason) ends it with SECURITY_REFUSED", async () => {
    const r = rig();
    rawEnd(r.viewerEnd).send(viewerHello);
    const dev = rawEnd(r.deviceEnd);
    dev.send(cat(versionString(3, 8), [0], [0, 0, 0, 4], enc.encode("busy")));
    await until(() => r.ends.length > 0, "end");
    expect(r.ends[0]).toMatchObject({ by: "device", error: "SECURITY_REFUSED" });
    expect(r.ends[0]!.detail).toContain("busy");
  });

  test("3.3 and 3.7 devices and viewers are handled", async () => {
    for (const minor of [3, 7]) {
      const r = rig();
      const dev = rawEnd(r.deviceEnd);
      const view = rawEnd(r.viewerEnd);
      dev.send(versionString(3, minor));
      if (minor === 3) dev.send(new Uint8Array([0, 0, 0, SecurityType.None]));
      else dev.send(new Uint8Array([1, SecurityType.None]));
      dev.send(serverInitMsg(8, 4, CANONICAL_FORMAT, "old"));
      view.send(versionString(3, minor));
      if (minor === 7) view.send(new Uint8Array([SecurityType.None]));
      view.send(new Uint8Array([0]));
      await until(() => r.pipe.ready, `3.${minor} handshakes`);
      // The device heard our version, our choice (3.7 only), the ClientInit; no SecurityResult was expected.
      expect(dev.bytes()).toEqual(cat(versionString(3, minor), minor === 7 ? [SecurityType.None] : [], [1]));
      expect(view.bytes()).toEqual(
        cat(
          versionString(3, 8),
          minor === 3 ? [0, 0, 0, SecurityType.None] : [1, SecurityType.None],
          serverInitMsg(8, 4, CANONICAL_FORMAT, "old"),
        ),
      );
      r.pipe.end();
    }
  });

  test("names are sanitised and capped, in ServerInit and in a DesktopName rect", async () => {
    const evil = `evil\u001b[31m\u202Ename\u0000${"x".repeat(600)}`;
    const { r, d, v } = await connectedPair({}, { name: evil });
    const name = v.client.info!.name;
    expect(name.startsWith("evil?[31m?name?xxx")).toBe(true);
    expect(enc.encode(name).length).toBe(PIPE_DEFAULTS.maxNameBytes);
    d.send(
      cat(
        framebufferUpdateHeader(1),
        rectHeader(0, 0, 0, 0, PseudoEncoding.DesktopName),
        desktopNameBody("a\u0007b\u2028c"),
      ),
    );
    await until(() => v.client.updates === 1, "update");
    expect(cat(...v.after)).toEqual(
      cat(
        framebufferUpdateHeader(1),
        rectHeader(0, 0, 0, 0, PseudoEncoding.DesktopName),
        desktopNameBody("a?b?c"),
      ),
    );
    r.pipe.end();
  });

  test("a viewer that speaks HTTP is closed with NOT_RFB, the device never hears from us", async () => {
    const r = rig();
    const view = rawEnd(r.viewerEnd);
    const dev = rawEnd(r.deviceEnd);
    view.send(enc.encode("GET / HTTP/1.1\r\n"));
    await until(() => r.ends.length > 0, "end");
    expect(r.ends[0]).toMatchObject({ by: "viewer", error: "NOT_RFB", bytesToDevice: 0 });
    await until(() => dev.closed && view.closed, "both closed");
    expect(dev.got).toEqual([]);
  });

  test("the viewer may choose only the security type offered", async () => {
    const r = rig();
    const view = rawEnd(r.viewerEnd);
    view.send(cat(versionString(3, 8), [SecurityType.VncAuth]));
    await until(() => r.ends.length > 0, "end");
    expect(r.ends[0]).toMatchObject({ by: "viewer", error: "SECURITY_NOT_OFFERED" });
  });

  test("the handshake deadline closes a session whose device never speaks", async () => {
    const r = rig({ limits: { handshakeTimeoutMs: 30 } });
    const v = fakeViewer(r.viewerEnd);
    await until(() => r.ends.length > 0, "end", 2_000);
    expect(r.ends).toEqual([expect.objectContaining({ by: "device", error: "HANDSHAKE_TIMEOUT" })]);
    await until(() => v.closed, "viewer closed");
    expect(v.closeReason).toBe("handshake deadline passed");
  });

  test("…and one whose viewer never finishes", async () => {
    const r = rig({ limits: { handshakeTimeoutMs: 30 } });
    fakeDevice(r.deviceEnd);
    rawEnd(r.viewerEnd).send(versionString(3, 8)); // and then nothing
    await until(() => r.ends.length > 0, "end", 2_000);
    expect(r.ends).toEqual([expect.objectContaining({ by: "viewer", error: "HANDSHAKE_TIMEOUT" })]);
  });
});

describe("viewer VNC Authentication (when the relay checks a password itself)", () => {
  const pw = enc.encode("otp12345");
  const viewerWith = (password: string, gate: ViewerPassword) => {
    const r = rig({ viewerSecurity: gate });
    const d = fakeDevice(r.deviceEnd);
    const v = fakeViewer(r.viewerEnd, { password });
    return { r, d, v };
  };

  test("the right password gets through", async () => {
    const gate: ViewerPassword = { vncPassword: pw, maxFailures: 3 };
    const { r, v } = viewerWith("otp12345", gate);
    await until(() => v.client.ready, "handshake");
    expect(v.client.info!.securityType).toBe(SecurityType.VncAuth);
    expect(gate.failures ?? 0).toBe(0);
    r.pipe.end();
  });

  test("a wrong one is refused with AUTH_FAILED and counted; after maxFailures even the right one is refused", async () => {
    const gate: ViewerPassword = { vncPassword: pw, maxFailures: 2 };
    for (let i = 1; i <= 2; i++) {
      const { r, v } = viewerWith("wrong", gate);
      await until(() => r.ends.length > 0, "end");
      expect(r.ends[0]).toMatchObject({ by: "viewer", error: "AUTH_FAILED" });
      expect(gate.failures).toBe(i);
      await until(() => v.error !== null, "viewer error");
      expect(v.error!.code).toBe("AUTH_FAILED");
    }
    const { r, v } = viewerWith("otp12345", gate);
    await until(() => r.ends.length > 0, "end");
    expect(r.ends[0]).toMatchObject({ by: "viewer", error: "AUTH_FAILED" });
    expect(v.client.ready).toBe(false);
    // Refused before any challenge: an empty security-type list with a reason.
    await until(() => v.error !== null, "viewer error");
    expect(v.error!.code).toBe("SECURITY_REFUSED");
    expect(v.error!.message).toContain("too many authentication failures");
    expect(gate.failures).toBe(2);
  });

  test("the challenge–response is checked against the password's bytes (hand-written viewer)", async () => {
    const gate: ViewerPassword = { vncPassword: pw, maxFailures: 3 };
    const r = rig({ viewerSecurity: gate });
    fakeDevice(r.deviceEnd);
    const view = rawEnd(r.viewerEnd);
    view.send(cat(versionString(3, 8), [SecurityType.VncAuth]));
    await until(() => view.bytes().length >= 12 + 2 + 16, "challenge");
    expect(view.bytes().subarray(12, 14)).toEqual(new Uint8Array([1, SecurityType.VncAuth]));
    const challenge = view.bytes().slice(14, 30);
    view.send(cat(vncAuthResponse(challenge, "otp12345"), [1]));
    await until(() => r.pipe.ready, "handshake");
    expect(view.bytes().subarray(30, 34)).toEqual(new Uint8Array([0, 0, 0, 0]));
    r.pipe.end();
  });
});

describe("device → viewer", () => {
  test("updates and other messages are forwarded byte-exact, and the viewer decodes them", async () => {
    const { r, d, v } = await connectedPair({}, { width: 16, height: 8 });
    const pf = d.server.pixelFormat; // the viewer's (canonical)
    const stream = cat(
      framebufferUpdateHeader(3),
      rectHeader(0, 0, 16, 8, Encoding.Raw),
      solid(16, 8, [10, 20, 30], pf),
      rectHeader(4, 2, 3, 2, Encoding.Raw),
      solid(3, 2, [200, 100, 50], pf),
      rectHeader(1, 1, 2, 2, PseudoEncoding.Cursor), // hotspot 1,1,
      cursorBody(2, 2, pf),
      bellMsg(),
      serverCutTextMsg("clip"),
      framebufferUpdateHeader(0xffff),
      rectHeader(10, 5, 3, 2, Encoding.CopyRect),
      new Uint8Array([0, 4, 0, 2]), // from (4, 2)
      rectHeader(0, 0, 0, 0, PseudoEncoding.LastRect),
    );
    d.send(stream);
    await until(() => v.client.updates === 2, "two updates");
    expect(cat(...v.after)).toEqual(stream);
    expect(v.error).toBeNull();
    expect(px(v, 0, 0)).toEqual([10, 20, 30]);
    expect(px(v, 5, 3)).toEqual([200, 100, 50]);
    expect(px(v, 11, 6)).toEqual([200, 100, 50]); // copied
    expect(r.ends).toEqual([]);
    r.pipe.end();
  });

  test("split invariance: the same bytes come out whatever the chunking of either side (1, 2, 7 bytes, whole, every two-way split)", async () => {
    const updates = cat(
      framebufferUpdateHeader(2),
      rectHeader(0, 0, 4, 2, Encoding.Raw),
      solid(4, 2, [1, 2, 3]),
      rectHeader(1, 1, 2, 1, Encoding.CopyRect),
      new Uint8Array([0, 0, 0, 0]),
      bellMsg(),
      serverCutTextMsg("hello"),
      framebufferUpdateHeader(1),
      rectHeader(0, 0, 0, 0, PseudoEncoding.DesktopSize),
    );
    const encodings = [Encoding.CopyRect, Encoding.Raw, PseudoEncoding.DesktopSize, 999];
    const viewerStream = cat(
      viewerHello,
      setPixelFormatMsg(CANONICAL_FORMAT),
      setEncodingsMsg(encodings),
      framebufferUpdateRequestMsg(false, 0, 0, 4, 2),
      keyEventMsg(true, 0x61),
      pointerEventMsg(1, 2, 1),
      clientCutTextMsg("paste"),
    );
    const expectedToViewer = cat(
      versionString(3, 8),
      [1, SecurityType.None],
      [0, 0, 0, 0],
      serverInitMsg(4, 2, CANONICAL_FORMAT, "dev"),
      bellMsg(),
      updates,
    );
    const expectedToDevice = cat(
      versionString(3, 8),
      [SecurityType.None],
      [1],
      setPixelFormatMsg(CANONICAL_FORMAT),
      setEncodingsMsg([Encoding.CopyRect, Encoding.Raw, PseudoEncoding.DesktopSize]),
      framebufferUpdateRequestMsg(false, 0, 0, 4, 2),
      keyEventMsg(true, 0x61),
      pointerEventMsg(1, 2, 1),
      clientCutTextMsg("paste"),
    );
    const run = async (label: string, pieces: (b: Uint8Array) => Uint8Array[]) => {
      const r = rig();
      const dev = rawEnd(r.deviceEnd);
      const view = rawEnd(r.viewerEnd);
      // The device's handshake and a Bell at once, before the viewer has even started: the relay holds the
      // Bell back until the viewer has its ServerInit. The updates follow the viewer's request, as a
      // device's would (before the viewer's SetEncodings, CopyRect would not be allowed).
      for (const p of pieces(cat(deviceHello(4, 2), bellMsg()))) dev.send(p);
      for (const p of pieces(viewerStream)) view.send(p);
      await until(() => dev.bytes().length >= expectedToDevice.length, `the viewer's messages, ${label}`);
      for (const p of pieces(updates)) dev.send(p);
      await until(() => view.bytes().length >= expectedToViewer.length, `the updates, ${label}`);
      await settle();
      expect({ label, ends: r.ends }).toEqual({ label, ends: [] });
      expect(view.bytes()).toEqual(expectedToViewer);
      expect(dev.bytes()).toEqual(expectedToDevice);
      expect(r.pipe.bytesToViewer).toBe(expectedToViewer.length);
      expect(r.pipe.bytesToDevice).toBe(expectedToDevice.length);
      r.pipe.end();
    };
    const inPiecesOf = (n: number) => (b: Uint8Array) => {
      const out: Uint8Array[] = [];
      for (let i = 0; i < b.length; i += n) out.push(b.subarray(i, i + n));
      return out;
    };
    for (const n of [1, 2, 7, 1 << 20]) await run(`${n}-byte chunks`, inPiecesOf(n));
    // Every two-way split point of each stream.
    for (let at = 1; at < updates.length; at++) {
      await run(`split at ${at}`, (b) => [b.subarray(0, at), b.subarray(at)]);
    }
  });

  test("the pixel format follows the viewer's SetPixelFormat (16 bpp Raw is framed as 16 bpp)", async () => {
    const { r, d, v } = await connectedPair({}, { width: 8, height: 4 }, { pixelFormat: RGB565_LE });
    expect(d.server.pixelFormat).toEqual(RGB565_LE);
    const stream = cat(
      framebufferUpdateHeader(1),
      rectHeader(0, 0, 8, 4, Encoding.Raw),
      solid(8, 4, [255, 0, 0], RGB565_LE),
    );
    d.send(stream);
    await until(() => v.client.updates === 1, "update");
    expect(cat(...v.after)).toEqual(stream);
    expect(px(v, 7, 3)).toEqual([255, 0, 0]);
    expect(r.ends).toEqual([]);
    r.pipe.end();
  });

  test("a SetPixelFormat that arrives inside an update applies when that update ends", async () => {
    const r = rig();
    const dev = rawEnd(r.deviceEnd);
    const view = rawEnd(r.viewerEnd);
    dev.send(deviceHello(4, 2));
    view.send(cat(viewerHello, setEncodingsMsg([Encoding.Raw])));
    await until(() => r.pipe.ready, "handshakes");
    const first = cat(
      framebufferUpdateHeader(2),
      rectHeader(0, 0, 2, 1, Encoding.Raw),
      solid(2, 1, [9, 9, 9]),
    );
    dev.send(first);
    await settle();
    view.send(setPixelFormatMsg(RGB565_LE)); // the device would apply it after this update
    await settle();
    const rest = cat(
      rectHeader(2, 0, 2, 2, Encoding.Raw),
      solid(2, 2, [7, 7, 7]), // still 32 bpp: 16 bytes
      framebufferUpdateHeader(1),
      rectHeader(0, 0, 4, 2, Encoding.Raw),
      solid(4, 2, [255, 255, 255], RGB565_LE), // 16 bpp: 16 bytes
      bellMsg(),
    );
    dev.send(rest);
    await settle();
    expect(r.ends).toEqual([]);
    const serverInitEnd = 12 + 2 + 4 + serverInitMsg(4, 2, CANONICAL_FORMAT, "dev").length;
    expect(view.bytes().subarray(serverInitEnd)).toEqual(cat(first, rest));
    r.pipe.end();
  });

  test("an over-long ServerCutText is dropped unread, EndOfContinuousUpdates too; what follows is forwarded", async () => {
    const { r, d, v } = await connectedPair({ limits: { maxCutText: 16 } });
    d.send(
      cat(
        serverCutTextMsg("x".repeat(100)),
        endOfContinuousUpdatesMsg(),
        serverCutTextMsg("short"),
        bellMsg(),
      ),
    );
    await settle();
    expect(cat(...v.after)).toEqual(cat(serverCutTextMsg("short"), bellMsg()));
    expect(r.ends).toEqual([]);
    r.pipe.end();
  });

  const malicious: [string, (pf: PixelFormat) => Uint8Array, string][] = [
    [
      "a rect outside the framebuffer",
      (pf) =>
        cat(framebufferUpdateHeader(1), rectHeader(15, 0, 2, 1, Encoding.Raw), solid(2, 1, [1, 1, 1], pf)),
      "RECT_OUT_OF_BOUNDS",
    ],
    [
      "an encoding the viewer did not ask for",
      () => cat(framebufferUpdateHeader(1), rectHeader(0, 0, 16, 16, Encoding.Hextile), [0]),
      "UNKNOWN_ENCODING",
    ],
    ["an unknown message type", () => new Uint8Array([77, 0, 0, 0]), "UNKNOWN_MESSAGE"],
    [
      "a 300×300 cursor",
      () => cat(framebufferUpdateHeader(1), rectHeader(0, 0, 300, 300, PseudoEncoding.Cursor)),
      "BAD_CURSOR",
    ],
    [
      "a resize to 0×5",
      () => cat(framebufferUpdateHeader(1), rectHeader(0, 0, 0, 5, PseudoEncoding.DesktopSize)),
      "BAD_FRAMEBUFFER_SIZE",
    ],
  ];
  for (const [label, bytes, code] of malicious) {
    test(`${label} ends the session with ${code}, reported by onEnd; the viewer gets none of it`, async () => {
      const { r, d, v } = await connectedPair({}, { width: 16, height: 16 });
      const good = cat(
        framebufferUpdateHeader(1),
        rectHeader(0, 0, 1, 1, Encoding.Raw),
        solid(1, 1, [5, 5, 5]),
      );
      d.send(good);
      await until(() => v.client.updates === 1, "a good update first");
      d.send(bytes(d.server.pixelFormat));
      await until(() => r.ends.length > 0, "end");
      expect(r.ends).toEqual([
        expect.objectContaining({ by: "device", error: code, reason: new RfbError(code as never).reason }),
      ]);
      await until(() => v.closed && d.closed, "both closed");
      expect(cat(...v.after)).toEqual(good);
      expect(v.error).toBeNull();
    });
  }
});

describe("viewer → device", () => {
  const input = () =>
    cat(
      keyEventMsg(true, 0x61),
      keyEventMsg(false, 0x61),
      pointerEventMsg(1, 3, 4),
      clientCutTextMsg("secret"),
      qemuKey(true, 0x62, 48),
      setDesktopSize(16, 8),
      framebufferUpdateRequestMsg(true, 0, 0, 16, 8), // the marker: this one always passes
    );

  test("view-only: keys, pointer, clipboard, QEMU keys and SetDesktopSize never reach the device, and are counted", async () => {
    const { r, d, v } = await connectedPair({ viewOnly: true });
    const before = d.messages.length;
    sendIn(v.send, input(), 5);
    await until(() => d.messages.length > before, "the marker");
    await settle();
    expect(d.messages.slice(before)).toEqual([
      { type: "FramebufferUpdateRequest", incremental: true, x: 0, y: 0, w: 16, h: 8 },
    ]);
    expect(cat(...d.after).includes(0x61)).toBe(false);
    expect(r.pipe.dropped).toEqual({ keys: 3, pointer: 1, clipboard: 1, other: 1 });
    expect(r.firstDrops).toEqual(["keys", "pointer", "clipboard", "other"]);
    r.viewerEnd.close("viewer left");
    await until(() => r.ends.length > 0, "end");
    expect(r.ends[0]).toMatchObject({
      by: "viewer",
      dropped: { keys: 3, pointer: 1, clipboard: 1, other: 1 },
    });
  });

  test("not view-only: the same input reaches the device byte for byte", async () => {
    const { r, d, v } = await connectedPair({ viewOnly: false });
    const sentBefore = cat(...d.after).length;
    v.send(input());
    await until(() => cat(...d.after).length >= sentBefore + input().length, "forwarded input");
    expect(cat(...d.after).subarray(sentBefore)).toEqual(input());
    expect(d.messages.slice(2).map((m) => m.type)).toEqual([
      "KeyEvent",
      "KeyEvent",
      "PointerEvent",
      "ClientCutText",
      "QemuKeyEvent",
      "SetDesktopSize",
      "FramebufferUpdateRequest",
    ]);
    expect(r.pipe.dropped).toEqual({ keys: 0, pointer: 0, clipboard: 0, other: 0 });
    r.pipe.end();
  });

  test("an over-long ClientCutText is dropped even when not view-only; EnableContinuousUpdates is never passed", async () => {
    const { r, d, v } = await connectedPair({ limits: { maxCutText: 8 } });
    const before = d.messages.length;
    v.send(
      cat(
        clientCutTextMsg("far too long for the cap"),
        enableContinuousUpdatesMsg(true, 0, 0, 16, 8),
        keyEventMsg(true, 0x41),
      ),
    );
    await until(() => d.messages.length > before, "the key");
    await settle();
    expect(d.messages.slice(before)).toEqual([{ type: "KeyEvent", down: true, keysym: 0x41 }]);
    expect(r.pipe.dropped).toEqual({ keys: 0, pointer: 0, clipboard: 1, other: 1 });
    r.pipe.end();
  });

  for (const [label, bytes, code] of [
    ["an unknown message type", new Uint8Array([99, 1, 2, 3, 4, 5, 6, 7]), "UNKNOWN_MESSAGE"],
    ["xvp power control", new Uint8Array([ClientMsg.Xvp, 0, 1, 2]), "UNSUPPORTED"],
    [
      "a SetEncodings with 65535 entries",
      new Uint8Array([ClientMsg.SetEncodings, 0, 0xff, 0xff]),
      "LIMIT_EXCEEDED",
    ],
    [
      "an insane SetPixelFormat",
      setPixelFormatMsg({ ...CANONICAL_FORMAT, bitsPerPixel: 24 }),
      "BAD_PIXEL_FORMAT",
    ],
  ] as const) {
    test(`${label} from the viewer ends the session with ${code}; nothing of it reaches the device`, async () => {
      for (const viewOnly of [true, false]) {
        const { r, d, v } = await connectedPair({ viewOnly });
        const before = cat(...d.after).length;
        v.send(bytes);
        await until(() => r.ends.length > 0, "end");
        expect(r.ends).toEqual([expect.objectContaining({ by: "viewer", error: code })]);
        await until(() => d.closed && v.closed, "both closed");
        expect(cat(...d.after).length).toBe(before);
      }
    });
  }
});

describe("ending", () => {
  test("the viewer closing ends the device side; onEnd once", async () => {
    const { r, d } = await connectedPair();
    r.viewerEnd.close("bye");
    await until(() => d.closed, "device closed");
    r.pipe.end("again");
    r.deviceEnd.close("and again");
    await settle();
    expect(r.ends).toHaveLength(1);
    expect(r.ends[0]).toMatchObject({ by: "viewer", reason: "viewer closed", detail: "bye" });
    expect(r.ends[0]!.error).toBeUndefined();
    expect(r.ends[0]!.bytesToViewer).toBe(r.pipe.bytesToViewer);
    expect(r.ends[0]!.bytesToDevice).toBeGreaterThan(0);
  });

  test("the device closing ends the viewer side; onEnd once", async () => {
    const { r, d, v } = await connectedPair();
    const stream = cat(
      framebufferUpdateHeader(1),
      rectHeader(0, 0, 1, 1, Encoding.Raw),
      solid(1, 1, [1, 2, 3]),
    );
    d.send(stream);
    r.deviceEnd.close("device gone");
    await until(() => v.closed, "viewer closed");
    // What the device sent before it went is still delivered first.
    expect(cat(...v.after)).toEqual(stream);
    r.viewerEnd.close();
    r.pipe.end();
    await settle();
    expect(r.ends).toHaveLength(1);
    expect(r.ends[0]).toMatchObject({ by: "device", reason: "device closed" });
    expect(v.closeReason).toBe("device closed");
  });

  test("end(reason) from outside closes both with that reason; later ends are ignored", async () => {
    const { r, d, v } = await connectedPair();
    r.pipe.end("ended by admin");
    r.pipe.end("twice");
    await until(() => d.closed && v.closed, "both closed");
    expect(v.closeReason).toBe("ended by admin");
    expect(r.ends).toEqual([expect.objectContaining({ by: "relay", reason: "ended by admin" })]);
    expect(r.pipe.isEnded).toBe(true);
  });

  test("either side closing during the handshake ends the session", async () => {
    const r = rig();
    const v = fakeViewer(r.viewerEnd);
    r.deviceEnd.close("agent refused");
    await until(() => v.closed, "viewer closed");
    expect(r.ends).toEqual([expect.objectContaining({ by: "device", reason: "device closed" })]);
  });
});

describe("backpressure", () => {
  /** The relay's viewer channel with a `buffered` the test sets. */
  const slow =
    (state: { buffered: number }) =>
    (inner: ByteChannel): ByteChannel => ({
      get buffered() {
        return state.buffered;
      },
      send: (b) => inner.send(b),
      close: (reason) => inner.close(reason),
      get onData() {
        return inner.onData;
      },
      set onData(f) {
        inner.onData = f;
      },
      get onClose() {
        return inner.onClose;
      },
      set onClose(f) {
        inner.onClose = f;
      },
    });

  const setup = async (state: { buffered: number }, o: Partial<PipeOptions>) => {
    const r = rig(o, slow(state));
    const d = fakeDevice(r.deviceEnd, { width: 4, height: 4 });
    const v = fakeViewer(r.viewerEnd);
    await until(() => v.client.ready && d.messages.length >= 2, "handshakes");
    return { r, d, v };
  };
  const update = () =>
    cat(framebufferUpdateHeader(1), rectHeader(0, 0, 1, 1, Encoding.Raw), solid(1, 1, [1, 1, 1]));

  test("past the hard cap the session closes at once", async () => {
    const state = { buffered: 0 };
    const { r, d } = await setup(state, {
      sendHardCapBytes: 1000,
      sendBudgetBytes: 100,
      sendBudgetMs: 60_000,
    });
    state.buffered = 1001;
    d.send(update());
    await until(() => r.ends.length > 0, "end");
    expect(r.ends[0]).toMatchObject({ by: "viewer", error: "LIMIT_EXCEEDED" });
    expect(r.ends[0]!.detail).toContain("hard cap");
  });

  test("over the budget past the deadline the session closes", async () => {
    const state = { buffered: 0 };
    const { r, d } = await setup(state, { sendBudgetBytes: 100, sendBudgetMs: 20 });
    state.buffered = 500;
    d.send(update());
    await until(() => r.ends.length > 0, "end");
    expect(r.ends[0]).toMatchObject({ by: "viewer", error: "LIMIT_EXCEEDED" });
    expect(r.ends[0]!.detail).toContain("for 20 ms");
  });

  test("a viewer that catches up before the deadline keeps its session", async () => {
    const state = { buffered: 0 };
    const { r, d } = await setup(state, { sendBudgetBytes: 100, sendBudgetMs: 30 });
    state.buffered = 500;
    d.send(update());
    await settle();
    state.buffered = 50;
    d.send(update()); // seen back under the budget
    await new Promise((res) => setTimeout(res, 80));
    expect(r.ends).toEqual([]);
    // …and one that is under the budget again when the deadline passes (no send in between) too.
    state.buffered = 500;
    d.send(update());
    await settle();
    state.buffered = 0;
    await new Promise((res) => setTimeout(res, 80));
    expect(r.ends).toEqual([]);
    r.pipe.end();
  });
});

describe("helpers", () => {
  test("sanitizeName replaces controls and format characters and cuts at a character boundary", () => {
    expect(sanitizeName("plain name", 64)).toBe("plain name");
    expect(sanitizeName("a\tb\u0085c\u200bd\u202ee\ufeff", 64)).toBe("a?b?c?d?e?");
    expect(sanitizeName("ααα", 5)).toBe("αα"); // 2 bytes each: the third would be cut in half
    expect(sanitizeName("x".repeat(10), 4)).toBe("xxxx");
    expect(sanitizeName("\ud800lone", 64)).toBe("?lone");
  });

  test("relayableEncodings keeps framed encodings and known pseudo-encodings in order", () => {
    expect(
      relayableEncodings([
        Encoding.ZRLE,
        3, // not assigned
        Encoding.Hextile,
        PseudoEncoding.Cursor,
        PseudoEncoding.XCursor,
        PseudoEncoding.ExtendedDesktopSize,
        PseudoEncoding.ContinuousUpdates,
        PseudoEncoding.QemuExtendedKeyEvent,
        PseudoEncoding.CompressLevel9 + 1,
        PseudoEncoding.QualityLevel0 - 1,
      ]),
    ).toEqual([
      Encoding.ZRLE,
      Encoding.Hextile,
      PseudoEncoding.Cursor,
      PseudoEncoding.ExtendedDesktopSize,
      PseudoEncoding.QemuExtendedKeyEvent,
    ]);
  });

  test("tuning options are checked", () => {
    expect(tuningWith({})).toEqual({ ...PIPE_DEFAULTS });
    expect(tuningWith({ sendBudgetMs: 5, deviceShared: false })).toMatchObject({
      sendBudgetMs: 5,
      deviceShared: false,
    });
    expect(() => tuningWith({ sendBudgetBytes: -1 })).toThrow(RangeError);
    expect(() => tuningWith({ maxNameBytes: 1.5 })).toThrow(RangeError);
  });

  test("deviceShared: false is what the device's ClientInit says", async () => {
    const { r, d } = await connectedPair({ deviceShared: false });
    expect(d.server.info?.shared).toBe(false);
    r.pipe.end();
  });
});
