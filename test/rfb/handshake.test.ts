// Both roles of the RFB core talking to each other in memory: every version × security type, with the
// server's and the client's byte streams split at every point; and the refusals of table A.

import { describe, expect, test } from "bun:test";
import { RfbClient } from "../../relay/rfb/client.ts";
import { SecurityType } from "../../relay/rfb/constants.ts";
import { RfbError } from "../../relay/rfb/errors.ts";
import { CANONICAL_FORMAT } from "../../relay/rfb/pixel-format.ts";
import { RfbServerConnection, type RfbServerOptions } from "../../relay/rfb/server.ts";
import { vncAuthResponse } from "../../relay/rfb/vnc-auth.ts";
import { cat, hex, splits } from "../helpers/bytes.ts";
import { codeOf } from "../helpers/errors.ts";

const code = (f: () => void): string => codeOf(f) ?? "";

const enc38 = new TextEncoder().encode("RFB 003.008\n");

/** Runs a server connection on a scripted client byte stream; returns what the server wrote. */
function runServer(input: Uint8Array[], opts: { securityTypes?: number[]; password?: string } = {}) {
  const chunks: Uint8Array[] = [];
  const s = new RfbServerConnection({
    send: (b) => chunks.push(b),
    width: 64,
    height: 32,
    name: "desk",
    ...opts,
  });
  s.start();
  for (const c of input) s.feed(c);
  return { out: cat(...chunks), chunks, ready: s.ready, s };
}

/**
 * A server and a client wired to each other in memory, exchanging until both are ready or one fails
 * (bounded rounds); `bytewise` delivers every byte separately in both directions.
 */
function pair(serverOpts: Omit<RfbServerOptions, "send">, password: string | undefined, bytewise: boolean) {
  const toClient: Uint8Array[] = [];
  const toServer: Uint8Array[] = [];
  const server = new RfbServerConnection({ ...serverOpts, send: (b) => toClient.push(b) });
  const client = new RfbClient({ send: (b) => toServer.push(b), ...(password ? { password } : {}) });
  const pieces = (b: Uint8Array) => (bytewise ? Array.from(b, (_, i) => b.subarray(i, i + 1)) : [b]);
  let serverErr = "";
  let clientErr = "";
  server.start();
  for (let round = 0; round < 20 && !(client.ready && server.ready) && !serverErr && !clientErr; round++) {
    for (const b of toClient.splice(0)) for (const p of pieces(b)) clientErr ||= code(() => client.feed(p));
    for (const b of toServer.splice(0)) for (const p of pieces(b)) serverErr ||= code(() => server.feed(p));
  }
  // The last server answer (e.g. a failed SecurityResult) still reaches the client.
  for (const b of toClient.splice(0)) clientErr ||= code(() => client.feed(b));
  return { client, server, toServer, serverErr, clientErr };
}

describe("client and server in memory", () => {
  for (const password of [undefined, "s3cret"]) {
    test(`3.8 with ${password ? "VNC Authentication" : "None"}, every byte separately in both directions`, () => {
      const { client, server, toServer } = pair(
        {
          securityTypes: password ? [SecurityType.VncAuth] : [SecurityType.None],
          width: 320,
          height: 200,
          name: "Ωdesk",
          ...(password ? { password } : {}),
        },
        password,
        true,
      );
      expect(client.ready).toBe(true);
      expect(server.ready).toBe(true);
      expect(client.info).toMatchObject({
        width: 320,
        height: 200,
        name: "Ωdesk",
        version: { major: 3, minor: 8 },
      });
      expect(client.info!.securityType).toBe(password ? SecurityType.VncAuth : SecurityType.None);
      // The client's SetPixelFormat and SetEncodings reach the server.
      for (const b of toServer.splice(0)) server.feed(b);
      expect(server.pixelFormat).toEqual(CANONICAL_FORMAT);
      expect(server.encodings.length).toBeGreaterThan(0);
    });
  }

  test("a wrong password fails on both sides, with a reason in 3.8", () => {
    const { serverErr, clientErr } = pair(
      { securityTypes: [SecurityType.VncAuth], password: "right", width: 8, height: 8, name: "x" },
      "wrong",
      false,
    );
    expect(serverErr).toBe("AUTH_FAILED");
    expect(clientErr).toBe("AUTH_FAILED");
  });

  test("a client without a password is refused by a VncAuth-only server before anything is sent", () => {
    const client = new RfbClient({ send: () => {} });
    client.feed(hex("524642203030332e3030380a")); // "RFB 003.008\n"
    expect(code(() => client.feed(hex("01 02")))).toBe("AUTH_REQUIRED"); // one type offered: VncAuth
  });
});

describe("server role: versions and security (table A)", () => {
  const init = hex("01"); // ClientInit shared=1
  const cases = [
    { v: "RFB 003.003\n", sec: [], result: false },
    { v: "RFB 003.005\n", sec: [], result: false }, // 3.5 is read as 3.3 (RFC 6143 §7.1.1)
    { v: "RFB 003.007\n", sec: [1], result: false },
    { v: "RFB 003.008\n", sec: [1], result: true },
  ];
  for (const c of cases) {
    test(`${JSON.stringify(c.v)} with None, split at every point`, () => {
      const input = cat(new TextEncoder().encode(c.v), c.sec, init);
      let reference: Uint8Array | null = null;
      for (const { chunks } of splits(input)) {
        const { out, ready } = runServer(chunks);
        expect(ready).toBe(true);
        reference ??= out;
        expect(out).toEqual(reference);
      }
      // ServerInit is the last 24 + 4 bytes: 64×32, canonical format, "desk".
      expect(reference!.subarray(reference!.length - 28, reference!.length - 24)).toEqual(hex("0040 0020"));
      const secResult = c.result ? 4 : 0;
      const secList = c.v === "RFB 003.003\n" || c.v === "RFB 003.005\n" ? 4 : 2;
      expect(reference!.length).toBe(12 + secList + secResult + 28);
    });
  }

  test("VncAuth: the right response passes, split at every point", () => {
    for (let split = 0; split < 30; split++) {
      const { s, chunks: out } = runServer([enc38, hex("02")], {
        securityTypes: [SecurityType.VncAuth],
        password: "pw",
      });
      const challenge = out[2]!;
      expect(challenge.length).toBe(16);
      const rest = cat(vncAuthResponse(challenge, "pw"), init);
      const k = Math.min(split, rest.length);
      s.feed(rest.subarray(0, k));
      s.feed(rest.subarray(k));
      expect(s.ready).toBe(true);
      expect(out[3]).toEqual(hex("00000000"));
    }
  });

  test("challenges are random per connection", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const { chunks: out } = runServer(
        [enc38, [2]].map((b) => new Uint8Array(b)),
        {
          securityTypes: [SecurityType.VncAuth],
          password: "pw",
        },
      );
      seen.add(Buffer.from(out[2]!).toString("hex"));
    }
    expect(seen.size).toBe(20);
  });

  test("a security type we did not offer is refused (CVE-2006-2369)", () => {
    const input = cat(new TextEncoder().encode("RFB 003.008\n"), [1]);
    expect(code(() => runServer([input], { securityTypes: [SecurityType.VncAuth], password: "x" }))).toBe(
      "SECURITY_NOT_OFFERED",
    );
    expect(code(() => runServer([cat(new TextEncoder().encode("RFB 003.008\n"), [16])]))).toBe(
      "SECURITY_NOT_OFFERED",
    );
  });

  test("an HTTP request is refused after 4 bytes, before a full version arrives", () => {
    expect(code(() => runServer([new TextEncoder().encode("GET ")]))).toBe("NOT_RFB");
    expect(code(() => runServer([new TextEncoder().encode("GET / HTTP/1.1\r\n")]))).toBe("NOT_RFB");
  });

  for (const v of [
    "RFB 003.889\n",
    "RFB 004.000\n",
    "RFB 003.006\n",
    "RFB 000.000\n",
    "RFB 03.008\n ",
    "RFB 003.008\r",
  ]) {
    test(`client version ${JSON.stringify(v)} is refused`, () => {
      expect(["UNSUPPORTED_VERSION", "BAD_VERSION"]).toContain(
        code(() => runServer([new TextEncoder().encode(v)])),
      );
    });
  }
});

describe("client role: versions, security and ServerInit (table A)", () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  function client(password?: string) {
    const sent: Uint8Array[] = [];
    const c = new RfbClient({ send: (b) => sent.push(b), ...(password ? { password } : {}) });
    return { c, sent };
  }
  const serverInit = (
    w: number,
    h: number,
    nameLen: number,
    pf = hex("20 18 00 01 00ff 00ff 00ff 00 08 10 000000"),
  ) =>
    cat([w >> 8, w & 255, h >> 8, h & 255], pf, [
      nameLen >>> 24,
      (nameLen >>> 16) & 255,
      (nameLen >>> 8) & 255,
      nameLen & 255,
    ]);

  for (const [server, answer] of [
    ["RFB 003.003\n", "RFB 003.003\n"],
    ["RFB 003.005\n", "RFB 003.003\n"],
    ["RFB 003.006\n", "RFB 003.003\n"],
    ["RFB 003.007\n", "RFB 003.007\n"],
    ["RFB 003.008\n", "RFB 003.008\n"],
    ["RFB 003.889\n", "RFB 003.008\n"],
    ["RFB 004.001\n", "RFB 003.008\n"],
    ["RFB 005.000\n", "RFB 003.008\n"],
  ] as const) {
    test(`server ${JSON.stringify(server)} gets ${JSON.stringify(answer)}`, () => {
      const { c, sent } = client();
      c.feed(enc(server));
      expect(new TextDecoder().decode(sent[0])).toBe(answer);
    });
  }

  for (const bad of ["RFB 002.000\n", "RFB 000.000\n", "RFB 003.00a\n", "HTTP/1.1 200", "RFB 003.008 "]) {
    test(`server version ${JSON.stringify(bad)} is refused`, () => {
      const { c } = client();
      expect(["UNSUPPORTED_VERSION", "BAD_VERSION", "NOT_RFB"]).toContain(code(() => c.feed(enc(bad))));
    });
  }

  test("3.3 security None goes straight to ClientInit; full handshake split at every point", () => {
    const stream = cat(enc("RFB 003.003\n"), hex("00000001"), serverInit(100, 50, 4), enc("name"));
    for (const { chunks } of splits(stream)) {
      const { c, sent } = client();
      for (const ch of chunks) c.feed(ch);
      expect(c.ready).toBe(true);
      expect(c.info!.name).toBe("name");
      expect(sent[1]).toEqual(hex("01")); // ClientInit, shared
    }
  });

  test("security type list with count 0 and a 4 GiB reason: refused at once, nothing buffered (CVE-2018-20019)", () => {
    const { c } = client();
    c.feed(enc("RFB 003.008\n"));
    expect(code(() => c.feed(hex("00 ffffffff")))).toBe("LIMIT_EXCEEDED");
  });

  test("security failure with a short reason is reported", () => {
    const { c } = client();
    c.feed(enc("RFB 003.008\n"));
    let err: unknown;
    try {
      c.feed(cat(hex("00 00000005"), enc("nope\x07")));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RfbError);
    expect((err as RfbError).code).toBe("SECURITY_REFUSED");
    expect((err as RfbError).message).toContain("nope?"); // control characters never reach logs
  });

  test("3.3 security type 0 with a huge reason; an unknown 3.3 type", () => {
    let { c } = client();
    c.feed(enc("RFB 003.003\n"));
    expect(code(() => c.feed(hex("00000000 7fffffff")))).toBe("LIMIT_EXCEEDED");
    ({ c } = client());
    c.feed(enc("RFB 003.003\n"));
    expect(code(() => c.feed(hex("00000010")))).toBe("SECURITY_REFUSED");
  });

  test("SecurityResult failure reason of 0xFFFFFFFF is capped", () => {
    const { c } = client("pw");
    c.feed(cat(enc("RFB 003.008\n"), hex("01 02"), new Uint8Array(16)));
    expect(code(() => c.feed(hex("00000001 ffffffff")))).toBe("LIMIT_EXCEEDED");
  });

  test("a refused ExtendedDesktopSize (status 1, 65535×65535) changes nothing and ends nothing", () => {
    const { c } = client();
    c.feed(cat(enc("RFB 003.008\n"), hex("01 01"), hex("00000000"), serverInit(100, 50, 0)));
    const decoder = c.decoder;
    // FramebufferUpdate, 1 rect: ExtendedDesktopSize reason 1 (this client), status 1 (prohibited), no screens
    c.feed(cat(hex("00 00 0001"), hex("0001 0001 ffff ffff fffffecc"), hex("00 000000")));
    expect(c.updates).toBe(1);
    expect(c.decoder).toBe(decoder);
    expect(c.fb!.width).toBe(100);
    expect(c.fb!.height).toBe(50);
  });

  const toInit = () => {
    const { c } = client();
    c.feed(cat(enc("RFB 003.008\n"), hex("01 01"), hex("00000000")));
    return c;
  };
  for (const [what, bytes, want] of [
    ["name-length 0xFFFFFFFF (CVE-2018-15361)", serverInit(640, 480, 0xffffffff), "LIMIT_EXCEEDED"],
    ["width 0", serverInit(0, 480, 1), "BAD_FRAMEBUFFER_SIZE"],
    ["height 0", serverInit(640, 0, 1), "BAD_FRAMEBUFFER_SIZE"],
    ["65535×65535 (CVE-2014-6051)", serverInit(65535, 65535, 1), "BAD_FRAMEBUFFER_SIZE"],
    ["16384×16384, over the pixel budget", serverInit(16384, 16384, 1), "LIMIT_EXCEEDED"],
    ["bpp 24", serverInit(8, 8, 1, hex("18 18 00 01 00ff 00ff 00ff 10 08 00 000000")), "BAD_PIXEL_FORMAT"],
    [
      "depth > bpp",
      serverInit(8, 8, 1, hex("10 18 00 01 001f 003f 001f 0b 05 00 000000")),
      "BAD_PIXEL_FORMAT",
    ],
    [
      "max not 2^n-1",
      serverInit(8, 8, 1, hex("20 18 00 01 00fe 00ff 00ff 10 08 00 000000")),
      "BAD_PIXEL_FORMAT",
    ],
    [
      "shift past bpp",
      serverInit(8, 8, 1, hex("20 18 00 01 00ff 00ff 00ff 1c 08 00 000000")),
      "BAD_PIXEL_FORMAT",
    ],
    [
      "colour map at 16 bpp",
      serverInit(8, 8, 1, hex("10 10 00 00 0000 0000 0000 00 00 00 000000")),
      "BAD_PIXEL_FORMAT",
    ],
  ] as const) {
    test(`ServerInit ${what} is refused before the name is read`, () => {
      const c = toInit();
      expect(code(() => c.feed(bytes))).toBe(want);
    });
  }
});
