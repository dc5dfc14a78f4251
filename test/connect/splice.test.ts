// The handshake splicers of relay/rfb/splice.ts in memory (channelPair): each half against scripted peer
// streams split at every point, against our own RfbClient / RfbServerConnection, the two halves spliced
// into a working RFB session, and every refusal with its code and what reached the peer before the close.

import { describe, expect, test } from "bun:test";
import { RfbClient } from "../../relay/rfb/client.ts";
import { SecurityType } from "../../relay/rfb/constants.ts";
import { RfbError } from "../../relay/rfb/errors.ts";
import { CANONICAL_FORMAT, type PixelFormat } from "../../relay/rfb/pixel-format.ts";
import { RfbServerConnection } from "../../relay/rfb/server.ts";
import {
  type AcceptViewerOptions,
  type JoinServerOptions,
  acceptViewer,
  attach,
  hold,
  joinServer,
  splice,
} from "../../relay/rfb/splice.ts";
import { vncAuthResponse } from "../../relay/rfb/vnc-auth.ts";
import {
  framebufferUpdateHeader,
  rectHeader,
  securityType33Msg,
  serverInitMsg,
} from "../../relay/rfb/writer.ts";
import { type ByteChannel, channelPair } from "../../relay/session/channel.ts";
import { cat, hex, splits } from "../helpers/bytes.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const u32 = (v: number) => hex(v.toString(16).padStart(8, "0"));
const tick = () => new Promise((r) => setTimeout(r, 0));
const CHALLENGE = hex("00112233445566778899aabbccddeeff");
const PASSWORD = enc("s3cr3t!!");
const SERVER_INIT = serverInitMsg(320, 200, CANONICAL_FORMAT, "Ωdesk");
const TRAILING = hex("02 00 00 01 00 00 00 00"); // bytes after the handshake (a SetEncodings, say)

interface Run<T> {
  result?: T;
  /** The RfbError code, or a marked string for anything else. */
  error?: string;
  /** What our half wrote to the peer. */
  sent: Uint8Array;
  /** The reason the peer saw the channel close with, or null while open. */
  closedWith: string | null;
  /** Bytes held after the handshake (given to the next consumer). */
  held: Uint8Array;
}

/** Runs one half on a channelPair, the peer sending `chunks` (each delivered separately, in order). */
async function run<T>(half: (ch: ByteChannel) => Promise<T>, chunks: Uint8Array[]): Promise<Run<T>> {
  const [ours, peer] = channelPair();
  const sent: Uint8Array[] = [];
  let closedWith: string | null = null;
  peer.onData = (b) => sent.push(b);
  peer.onClose = (r) => {
    closedWith = r;
  };
  const p = half(ours);
  for (const c of chunks) peer.send(c);
  const out: Run<T> = { sent: new Uint8Array(0), closedWith: null, held: new Uint8Array(0) };
  try {
    out.result = await p;
  } catch (e) {
    out.error = e instanceof RfbError ? e.code : `not an RfbError: ${e}`;
  }
  await tick();
  const held: Uint8Array[] = [];
  if (out.result) attach(ours, { onData: (b) => held.push(b), onClose: () => {} });
  out.sent = cat(...sent);
  out.closedWith = closedWith;
  out.held = cat(...held);
  return out;
}

const join = (chunks: Uint8Array[], o: JoinServerOptions = {}) => run((ch) => joinServer(ch, o), chunks);
const accept = (chunks: Uint8Array[], o: AcceptViewerOptions) => run((ch) => acceptViewer(ch, o), chunks);

// ---------------------------------------------------------------------------------------------------------

describe("joinServer: scripted servers, every chunking", () => {
  const response = vncAuthResponse(CHALLENGE, PASSWORD);
  const cases: {
    label: string;
    server: Uint8Array;
    client: Uint8Array;
    password?: Uint8Array;
    securityType: number;
    minor: number;
  }[] = [
    {
      label: "3.8 None",
      server: cat(enc("RFB 003.008\n"), [1, 1], u32(0), SERVER_INIT),
      client: cat(enc("RFB 003.008\n"), [1], [1]),
      securityType: 1,
      minor: 8,
    },
    {
      label: "3.8 VNC Authentication",
      server: cat(enc("RFB 003.008\n"), [1, 2], CHALLENGE, u32(0), SERVER_INIT),
      client: cat(enc("RFB 003.008\n"), [2], response, [1]),
      password: PASSWORD,
      securityType: 2,
      minor: 8,
    },
    {
      label: "3.8 offering VncAuth then None, with a password: the server's first choice",
      server: cat(enc("RFB 003.008\n"), [2, 2, 1], CHALLENGE, u32(0), SERVER_INIT),
      client: cat(enc("RFB 003.008\n"), [2], response, [1]),
      password: PASSWORD,
      securityType: 2,
      minor: 8,
    },
    {
      label: "3.8 offering VncAuth then None, without a password: None",
      server: cat(enc("RFB 003.008\n"), [2, 2, 1], u32(0), SERVER_INIT),
      client: cat(enc("RFB 003.008\n"), [1], [1]),
      securityType: 1,
      minor: 8,
    },
    {
      label: "3.889 (Apple) answered as 3.8",
      server: cat(enc("RFB 003.889\n"), [1, 1], u32(0), SERVER_INIT),
      client: cat(enc("RFB 003.008\n"), [1], [1]),
      securityType: 1,
      minor: 8,
    },
    {
      label: "3.7 None (no SecurityResult)",
      server: cat(enc("RFB 003.007\n"), [1, 1], SERVER_INIT),
      client: cat(enc("RFB 003.007\n"), [1], [1]),
      securityType: 1,
      minor: 7,
    },
    {
      label: "3.7 VNC Authentication",
      server: cat(enc("RFB 003.007\n"), [1, 2], CHALLENGE, u32(0), SERVER_INIT),
      client: cat(enc("RFB 003.007\n"), [2], response, [1]),
      password: PASSWORD,
      securityType: 2,
      minor: 7,
    },
    {
      label: "3.3 None (server decides, no SecurityResult)",
      server: cat(enc("RFB 003.003\n"), securityType33Msg(1), SERVER_INIT),
      client: cat(enc("RFB 003.003\n"), [1]),
      securityType: 1,
      minor: 3,
    },
    {
      label: "3.3 VNC Authentication",
      server: cat(enc("RFB 003.003\n"), securityType33Msg(2), CHALLENGE, u32(0), SERVER_INIT),
      client: cat(enc("RFB 003.003\n"), response, [1]),
      password: PASSWORD,
      securityType: 2,
      minor: 3,
    },
    {
      label: "3.5 read as 3.3",
      server: cat(enc("RFB 003.005\n"), securityType33Msg(1), SERVER_INIT),
      client: cat(enc("RFB 003.003\n"), [1]),
      securityType: 1,
      minor: 3,
    },
  ];
  for (const c of cases) {
    test(c.label, async () => {
      const stream = cat(c.server, TRAILING);
      let n = 0;
      for (const { name, chunks } of splits(stream)) {
        const r = await join(chunks, c.password ? { password: c.password } : {});
        expect({ name, error: r.error }).toEqual({ name, error: undefined });
        const { leftover, ...rest } = r.result!;
        expect(rest).toEqual({
          serverInitBytes: SERVER_INIT,
          width: 320,
          height: 200,
          pixelFormat: CANONICAL_FORMAT,
          name: "Ωdesk",
          version: { major: 3, minor: c.minor },
          securityType: c.securityType,
        });
        // Whatever followed ServerInit comes back, in the same chunk (leftover) or later (held), never lost.
        expect(cat(leftover, r.held)).toEqual(TRAILING);
        expect(r.sent).toEqual(c.client);
        expect(r.closedWith).toBeNull();
        n++;
      }
      expect(n).toBe(2 + 2 * (stream.length - 1));
    });
  }
});

describe("acceptViewer: scripted viewers, every chunking", () => {
  const response = vncAuthResponse(CHALLENGE, PASSWORD);
  const vnc: AcceptViewerOptions = { security: { vncPassword: PASSWORD, challenge: () => CHALLENGE } };
  const none: AcceptViewerOptions = { security: "none" };
  const V38 = enc("RFB 003.008\n");
  const cases: {
    label: string;
    o: AcceptViewerOptions;
    viewer: Uint8Array;
    expectSent: Uint8Array;
    minor: number;
    shared: boolean;
  }[] = [
    {
      label: "3.8 None",
      o: none,
      viewer: cat(V38, [1], [1]),
      expectSent: cat(V38, [1, 1], u32(0)),
      minor: 8,
      shared: true,
    },
    {
      label: "3.8 VNC Authentication, exclusive ClientInit (recorded, not obeyed)",
      o: vnc,
      viewer: cat(V38, [2], response, [0]),
      expectSent: cat(V38, [1, 2], CHALLENGE, u32(0)),
      minor: 8,
      shared: false,
    },
    {
      label: "3.7 None (no SecurityResult)",
      o: none,
      viewer: cat(enc("RFB 003.007\n"), [1], [1]),
      expectSent: cat(V38, [1, 1]),
      minor: 7,
      shared: true,
    },
    {
      label: "3.7 VNC Authentication",
      o: vnc,
      viewer: cat(enc("RFB 003.007\n"), [2], response, [1]),
      expectSent: cat(V38, [1, 2], CHALLENGE, u32(0)),
      minor: 7,
      shared: true,
    },
    {
      label: "3.3 None",
      o: none,
      viewer: cat(enc("RFB 003.003\n"), [1]),
      expectSent: cat(V38, u32(1)),
      minor: 3,
      shared: true,
    },
    {
      label: "3.3 VNC Authentication (vncsnapshot's path)",
      o: vnc,
      viewer: cat(enc("RFB 003.003\n"), response, [1]),
      expectSent: cat(V38, u32(2), CHALLENGE, u32(0)),
      minor: 3,
      shared: true,
    },
    {
      label: "3.5 read as 3.3",
      o: none,
      viewer: cat(enc("RFB 003.005\n"), [1]),
      expectSent: cat(V38, u32(1)),
      minor: 3,
      shared: true,
    },
  ];
  for (const c of cases) {
    test(c.label, async () => {
      const stream = cat(c.viewer, TRAILING);
      for (const { name, chunks } of splits(stream)) {
        const r = await accept(chunks, c.o);
        expect({ name, error: r.error }).toEqual({ name, error: undefined });
        const { leftover, ...rest } = r.result!;
        expect(rest).toEqual({
          shared: c.shared,
          version: { major: 3, minor: c.minor },
          securityType: c.o.security === "none" ? 1 : 2,
        });
        expect(cat(leftover, r.held)).toEqual(TRAILING);
        // Version, security, challenge, result — and no ServerInit.
        expect(r.sent).toEqual(c.expectSent);
        expect(r.closedWith).toBeNull();
      }
    });
  }

  test("challenges come from the CSPRNG by default: 20 viewers, 20 different challenges", async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const r = await accept([cat(V38, [2])], {
        security: { vncPassword: PASSWORD },
        limits: { handshakeTimeoutMs: 5 },
      });
      expect(r.error).toBe("HANDSHAKE_TIMEOUT");
      seen.add(Buffer.from(r.sent.subarray(14, 30)).toString("hex"));
    }
    expect(seen.size).toBe(20);
  });

  test("a password that VNC Authentication would silently cut or end early is refused up front", () => {
    const [ch] = channelPair();
    for (const p of [new Uint8Array(0), enc("123456789"), hex("41 00 42")]) {
      expect(() => acceptViewer(ch, { security: { vncPassword: p } })).toThrow(RangeError);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("refusals: coded, the channel closed with the code's reason", () => {
  const reasonOf = (code: keyof typeof import("../../relay/rfb/errors.ts").ERROR_TABLE) =>
    new RfbError(code).reason;
  const V38 = enc("RFB 003.008\n");
  const pf24 = { ...CANONICAL_FORMAT, bitsPerPixel: 24 } as PixelFormat;
  const joinCases: [string, Uint8Array, string, JoinServerOptions?][] = [
    ["an HTTP answer", enc("HTTP/1.1 400 Bad Request\r\n"), "NOT_RFB"],
    ["version 2.0", enc("RFB 002.000\n"), "UNSUPPORTED_VERSION"],
    ["a malformed version", enc("RFB 003.00x\n"), "BAD_VERSION"],
    ["no security types, a reason", cat(V38, [0], u32(2), enc("no")), "SECURITY_REFUSED"],
    // The declared 4 GiB reason is refused from its length alone: the body is never sent or buffered.
    ["no security types, a 4 GiB reason", cat(V38, [0], u32(0xffffffff)), "LIMIT_EXCEEDED"],
    ["only types we cannot do", cat(V38, [2, 16, 5]), "SECURITY_REFUSED"],
    ["VncAuth only, we have no password", cat(V38, [1, 2]), "AUTH_REQUIRED"],
    ["3.3: refused with a reason", cat(enc("RFB 003.003\n"), u32(0), u32(3), enc("bye")), "SECURITY_REFUSED"],
    ["3.3: type 16", cat(enc("RFB 003.003\n"), u32(16)), "SECURITY_REFUSED"],
    ["3.3: VncAuth, we have no password", cat(enc("RFB 003.003\n"), u32(2)), "AUTH_REQUIRED"],
    [
      "3.8: SecurityResult failed with a reason",
      cat(V38, [1, 2], CHALLENGE, u32(1), u32(4), enc("nope")),
      "AUTH_FAILED",
      { password: PASSWORD },
    ],
    [
      "3.7: SecurityResult failed",
      cat(enc("RFB 003.007\n"), [1, 2], CHALLENGE, u32(1)),
      "AUTH_FAILED",
      { password: PASSWORD },
    ],
    [
      "ServerInit 0×0",
      cat(V38, [1, 1], u32(0), serverInitMsg(0, 0, CANONICAL_FORMAT, "x")),
      "BAD_FRAMEBUFFER_SIZE",
    ],
    [
      "ServerInit 16385 wide",
      cat(V38, [1, 1], u32(0), serverInitMsg(16385, 1, CANONICAL_FORMAT, "x")),
      "BAD_FRAMEBUFFER_SIZE",
    ],
    ["ServerInit with 24 bpp", cat(V38, [1, 1], u32(0), serverInitMsg(8, 8, pf24, "x")), "BAD_PIXEL_FORMAT"],
    [
      "ServerInit with a 4 GiB name",
      cat(V38, [1, 1], u32(0), serverInitMsg(8, 8, CANONICAL_FORMAT, "").subarray(0, 20), u32(0xffffffff)),
      "LIMIT_EXCEEDED",
    ],
    [
      "ServerInit with a 1025-byte name",
      cat(V38, [1, 1], u32(0), serverInitMsg(8, 8, CANONICAL_FORMAT, "n".repeat(1025))),
      "LIMIT_EXCEEDED",
    ],
  ];
  for (const [label, stream, code, o] of joinCases) {
    test(`joinServer: ${label} → ${code}, whole and byte by byte`, async () => {
      for (const chunks of [[stream], Array.from(stream, (_, i) => stream.subarray(i, i + 1))]) {
        const r = await join(chunks, o);
        expect(r.error).toBe(code);
        expect(r.closedWith).toBe(reasonOf(code as never));
      }
    });
  }

  const vnc: AcceptViewerOptions = { security: { vncPassword: PASSWORD, challenge: () => CHALLENGE } };
  test("acceptViewer: an HTTP request fails at its first byte; the viewer got the version and nothing else", async () => {
    for (const req of [enc("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), enc("G"), enc("RFX")]) {
      const r = await accept([req], vnc);
      expect(r.error).toBe("NOT_RFB");
      expect(r.sent).toEqual(V38);
      expect(r.closedWith).toBe(reasonOf("NOT_RFB"));
    }
  });

  for (const [label, viewer, code, sent] of [
    ["a malformed version", enc("RFB 003.00x\n"), "BAD_VERSION", V38],
    ["version 4.0", enc("RFB 004.000\n"), "UNSUPPORTED_VERSION", V38],
    ["Apple's 3.889 (more than we offered)", enc("RFB 003.889\n"), "UNSUPPORTED_VERSION", V38],
    // CVE-2006-2369: None was not offered, so choosing it fails, with a SecurityResult reason in 3.8.
    [
      "3.8: None when VncAuth was offered",
      cat(V38, [1]),
      "SECURITY_NOT_OFFERED",
      cat(V38, [1, 2], u32(1), u32(25), enc("security type not offered")),
    ],
    [
      "3.7: None when VncAuth was offered",
      cat(enc("RFB 003.007\n"), [1]),
      "SECURITY_NOT_OFFERED",
      cat(V38, [1, 2], u32(1)),
    ],
    [
      "3.8: a wrong response",
      cat(V38, [2], vncAuthResponse(CHALLENGE, "wrong")),
      "AUTH_FAILED",
      cat(V38, [1, 2], CHALLENGE, u32(1), u32(21), enc("authentication failed")),
    ],
    [
      "3.3: a wrong response",
      cat(enc("RFB 003.003\n"), vncAuthResponse(CHALLENGE, "wrong")),
      "AUTH_FAILED",
      cat(V38, u32(2), CHALLENGE, u32(1)),
    ],
  ] as const) {
    test(`acceptViewer: ${label} → ${code}, whole and byte by byte`, async () => {
      for (const chunks of [[viewer], Array.from(viewer, (_, i) => viewer.subarray(i, i + 1))]) {
        const r = await accept(chunks, vnc);
        expect(r.error).toBe(code);
        expect(r.sent).toEqual(sent);
        expect(r.closedWith).toBe(reasonOf(code));
      }
    });
  }

  test("the handshake deadline: HANDSHAKE_TIMEOUT on either half", async () => {
    const limits = { handshakeTimeoutMs: 20 };
    const a = await accept([enc("RFB 003.0")], { security: "none", limits });
    expect([a.error, a.closedWith]).toEqual(["HANDSHAKE_TIMEOUT", reasonOf("HANDSHAKE_TIMEOUT")]);
    const j = await join([cat(V38, [1, 1], u32(0), SERVER_INIT.subarray(0, 10))], { limits });
    expect([j.error, j.closedWith]).toEqual(["HANDSHAKE_TIMEOUT", reasonOf("HANDSHAKE_TIMEOUT")]);
  });

  test("the peer closing mid-handshake: PEER_CLOSED", async () => {
    const [ours, peer] = channelPair();
    const p = joinServer(ours);
    peer.send(V38);
    peer.close("gone");
    await expect(p).rejects.toMatchObject({ code: "PEER_CLOSED" });
  });

  test("an abort signal fails the handshake with its RfbError and closes the channel", async () => {
    const [ours, peer] = channelPair();
    let closedWith = "";
    peer.onClose = (r) => {
      closedWith = r;
    };
    const ac = new AbortController();
    const p = acceptViewer(ours, { security: "none", signal: ac.signal });
    ac.abort(new RfbError("IDLE_TIMEOUT", "test"));
    await expect(p).rejects.toMatchObject({ code: "IDLE_TIMEOUT" });
    await tick();
    expect(closedWith).toBe(reasonOf("IDLE_TIMEOUT"));
  });
});

// ---------------------------------------------------------------------------------------------------------

/** Our RfbClient on a channel; its errors are recorded and close the channel. */
function clientOn(ch: ByteChannel, password?: string) {
  const s = { error: null as string | null, closed: false };
  const c = new RfbClient({ send: (b) => ch.send(b), ...(password ? { password } : {}), decode: true });
  ch.onData = (b) => {
    try {
      c.feed(b);
    } catch (e) {
      s.error = (e as RfbError).code;
      ch.close("client failed");
    }
  };
  ch.onClose = () => {
    s.closed = true;
  };
  return { c, s };
}

/** Our RfbServerConnection on a channel (a stand-in for a device's VNC server). */
function serverOn(ch: ByteChannel, o: { password?: string; width: number; height: number; name: string }) {
  const requests: number[] = [];
  const s = new RfbServerConnection({
    send: (b) => ch.send(b),
    width: o.width,
    height: o.height,
    name: o.name,
    ...(o.password ? { securityTypes: [SecurityType.VncAuth], password: o.password } : {}),
    onMessage: (m) => {
      if (m.type === "FramebufferUpdateRequest") requests.push(m.incremental ? 1 : 0);
    },
  });
  ch.onData = (b) => s.feed(b);
  s.start();
  return { s, requests };
}

async function until(pred: () => boolean, what: string, ms = 2_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe("against our own RFB peers", () => {
  test("acceptViewer ↔ RfbClient with VNC Authentication; the viewer gets our ServerInit afterwards", async () => {
    const [ours, theirs] = channelPair();
    const { c, s } = clientOn(theirs, "s3cr3t!!");
    const r = await acceptViewer(ours, { security: { vncPassword: PASSWORD } });
    expect(r.securityType).toBe(2);
    expect(c.ready).toBe(false); // no ServerInit yet: that is the far side's
    ours.onData = () => {};
    ours.send(SERVER_INIT);
    await until(() => c.ready, "client ready");
    expect(c.info).toMatchObject({ width: 320, height: 200, name: "Ωdesk" });
    expect(s.error).toBeNull();
  });

  test("acceptViewer ↔ RfbClient with the wrong password: both sides AUTH_FAILED", async () => {
    const [ours, theirs] = channelPair();
    const { s } = clientOn(theirs, "wrong!!!");
    await expect(acceptViewer(ours, { security: { vncPassword: PASSWORD } })).rejects.toMatchObject({
      code: "AUTH_FAILED",
    });
    await until(() => s.error !== null, "client error");
    expect(s.error).toBe("AUTH_FAILED");
  });

  test("joinServer ↔ RfbServerConnection with VNC Authentication, and a wrong password", async () => {
    const [ours, theirs] = channelPair();
    serverOn(theirs, { password: "devpass", width: 64, height: 48, name: "device" });
    const r = await joinServer(ours, { password: enc("devpass") });
    expect([r.width, r.height, r.name, r.securityType]).toEqual([64, 48, "device", 2]);
    expect(r.serverInitBytes).toEqual(serverInitMsg(64, 48, CANONICAL_FORMAT, "device"));

    const [ours2, theirs2] = channelPair();
    const bad = serverOn(theirs2, { password: "devpass", width: 64, height: 48, name: "device" });
    theirs2.onData = (b) => {
      try {
        bad.s.feed(b);
      } catch {
        // the server side fails too; the client's verdict is what is checked
      }
    };
    await expect(joinServer(ours2, { password: enc("nope") })).rejects.toMatchObject({ code: "AUTH_FAILED" });
  });

  test("RfbClient ⇄ acceptViewer | joinServer ⇄ RfbServerConnection, spliced: a full session with pixels", async () => {
    // viewer side: RfbClient (password "viewerpw") on v1 ⇄ v0 (ours); device side: d0 (ours) ⇄ d1 server.
    const [v0, v1] = channelPair();
    const [d0, d1] = channelPair();
    const dev = serverOn(d1, { password: "devpass", width: 4, height: 2, name: "dev" });
    const { c, s } = clientOn(v1, "viewerpw");
    const joined = await joinServer(d0, { password: enc("devpass") });
    const accepted = await acceptViewer(v0, { security: { vncPassword: enc("viewerpw") } });
    v0.send(joined.serverInitBytes);
    const done = splice(v0, d0, { a: accepted.leftover, b: joined.leftover });
    await until(() => c.ready, "client ready");
    // The client's SetPixelFormat/SetEncodings went through the splice; now an update, answered in Raw.
    c.requestUpdate(false);
    await until(() => dev.requests.length === 1, "update request at the device");
    const pixels = new Uint8Array(4 * 2 * 4).map((_, i) => (i * 37) & 0xff);
    for (let i = 3; i < pixels.length; i += 4) pixels[i] = 0;
    d1.send(cat(framebufferUpdateHeader(1), rectHeader(0, 0, 4, 2, 0), pixels));
    await until(() => c.updates === 1, "update at the viewer");
    const fb = c.fb!;
    for (let i = 0; i < pixels.length; i++) if (i % 4 !== 3) expect(fb.data[i]).toBe(pixels[i]!);
    expect(s.error).toBeNull();
    // The device going away ends the splice and closes the viewer with the same reason.
    d1.close("device gone");
    const r = await done;
    expect(r.closedBy).toBe("b");
    expect(r.reason).toBe("device gone");
    expect(r.bToA).toBe(4 + 12 + pixels.length);
    expect(r.aToB).toBeGreaterThan(10);
    await until(() => s.closed, "viewer closed");
  });
});

describe("hold, attach and splice", () => {
  test("bytes and the close that arrive while held are replayed in order", async () => {
    const [ours, peer] = channelPair();
    hold(ours);
    peer.send(hex("01"));
    peer.send(hex("02 03"));
    peer.close("bye");
    await tick();
    const got: number[] = [];
    let closed = "";
    attach(ours, {
      onData: (b) => got.push(...b),
      onClose: (r) => {
        closed = r;
      },
    });
    expect(got).toEqual([1, 2, 3]);
    expect(closed).toBe("bye");
  });

  test("a held channel that receives more than its cap is closed with LIMIT_EXCEEDED", async () => {
    const [ours, peer] = channelPair();
    let closedWith = "";
    peer.onClose = (r) => {
      closedWith = r;
    };
    hold(ours, undefined, 10);
    peer.send(new Uint8Array(8));
    peer.send(new Uint8Array(8));
    await tick();
    expect(closedWith).toBe(new RfbError("LIMIT_EXCEEDED").reason);
  });

  test("splice forwards leftovers first, then held bytes, then live ones, and counts them", async () => {
    const [a0, a1] = channelPair();
    const [b0, b1] = channelPair();
    hold(a0);
    hold(b0);
    a1.send(hex("0a"));
    b1.send(hex("0b"));
    await tick();
    const atA: number[] = [];
    const atB: number[] = [];
    a1.onData = (x) => atA.push(...x);
    b1.onData = (x) => atB.push(...x);
    let aClosed = "";
    a1.onClose = (r) => {
      aClosed = r;
    };
    const done = splice(a0, b0, { a: hex("aa"), b: hex("bb") });
    a1.send(hex("a1 a2"));
    b1.send(hex("b1"));
    await tick();
    expect(atB).toEqual([0xaa, 0x0a, 0xa1, 0xa2]);
    expect(atA).toEqual([0xbb, 0x0b, 0xb1]);
    b1.close("b done");
    expect(await done).toEqual({ closedBy: "b", reason: "b done", aToB: 4, bToA: 3 });
    await tick();
    expect(aClosed).toBe("b done");
  });
});
