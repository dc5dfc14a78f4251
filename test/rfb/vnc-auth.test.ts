// Tests for relay/rfb/vnc-auth.ts: hand-built key derivation, vectors recorded from TigerVNC's vncpasswd and
// OpenSSL, properties of the verifier, and real peers: vncpasswd -f, Xvnc checking our response, and the
// TigerVNC viewer answering our challenge.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { desEcbEncrypt } from "../../relay/rfb/des.ts";
import {
  randomChallenge,
  readVncPasswordFile,
  VNC_PASSWD_FILE_KEY,
  verifyVncAuthResponse,
  vncAuthResponse,
  vncPasswordBytes,
  writeVncPasswordFile,
} from "../../relay/rfb/vnc-auth.ts";
import { codeOf } from "../helpers/errors.ts";

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, "hex"));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);
const reverseBits = (b: number): number =>
  Number.parseInt(b.toString(2).padStart(8, "0").split("").reverse().join(""), 2);

const CHALLENGE = hex("00112233445566778899aabbccddeeff");

describe("password to key", () => {
  test("short passwords are zero-padded to 8 bytes", () => {
    expect(toHex(vncPasswordBytes("pass"))).toBe("7061737300000000");
  });

  test("only the first 8 bytes count (vncpasswd(1): 'only the first eight characters are significant')", () => {
    expect(vncPasswordBytes("password123")).toEqual(ascii("password"));
    expect(vncAuthResponse(CHALLENGE, "password123")).toEqual(vncAuthResponse(CHALLENGE, "password"));
  });

  test("the empty password is eight zero bytes, so the DES key is zero", () => {
    expect(vncPasswordBytes("")).toEqual(new Uint8Array(8));
    expect(vncAuthResponse(CHALLENGE, "")).toEqual(desEcbEncrypt(new Uint8Array(8), CHALLENGE));
  });

  test("strings are UTF-8 and truncation counts bytes, not characters", () => {
    // p ä(C3 A4) s s w ö(C3 B6) | r d: 8 bytes end after ö.
    expect(toHex(vncPasswordBytes("pässwörd"))).toBe("70c3a4737377c3b6");
  });

  test("a NUL ends the password, as in the C peers (vncpasswd -f 'ab\\0cd' = 'ab')", () => {
    expect(vncPasswordBytes("ab\0cd")).toEqual(vncPasswordBytes("ab"));
    expect(vncPasswordBytes(Uint8Array.of(0x61, 0, 0x62))).toEqual(vncPasswordBytes("a"));
  });

  test("string and byte passwords agree", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 12 }), (p) => {
        expect(vncAuthResponse(CHALLENGE, p)).toEqual(vncAuthResponse(CHALLENGE, ascii(p)));
      }),
    );
  });
});

describe("vncAuthResponse", () => {
  test("hand-built: 'password' becomes the FIPS key 0E86CECEEEF64E26 (each byte bit-reversed)", () => {
    // p=0x70=01110000 → 00001110=0x0E; a=0x61=01100001 → 10000110=0x86; s=0x73 → 0xCE; s → 0xCE;
    // w=0x77 → 0xEE; o=0x6F → 0xF6; r=0x72 → 0x4E; d=0x64 → 0x26.
    expect(vncAuthResponse(CHALLENGE, "password")).toEqual(desEcbEncrypt(hex("0e86ceceeef64e26"), CHALLENGE));
  });

  test("recorded from OpenSSL 3.0.19 (`openssl enc -des-ecb -provider legacy -K 0e86ceceeef64e26 -nopad`)", () => {
    expect(toHex(vncAuthResponse(CHALLENGE, "password"))).toBe("b7b9c87777661a7a2299733209bfdfce");
  });

  test("equals DES-ECB of the challenge under the bit-reversed, padded password, for any password", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.uint8Array({ maxLength: 12 }),
        (c, pw) => {
          const key = vncPasswordBytes(pw).map(reverseBits);
          expect(vncAuthResponse(c, pw)).toEqual(desEcbEncrypt(key, c));
        },
      ),
    );
  });

  test("the two 8-byte halves are encrypted independently (ECB)", () => {
    const r = vncAuthResponse(CHALLENGE, "pass");
    const swapped = new Uint8Array(16);
    swapped.set(CHALLENGE.subarray(8), 0);
    swapped.set(CHALLENGE.subarray(0, 8), 8);
    const rs = vncAuthResponse(swapped, "pass");
    expect(rs.subarray(0, 8)).toEqual(r.subarray(8));
    expect(rs.subarray(8)).toEqual(r.subarray(0, 8));
  });

  test("a challenge that is not 16 bytes is BAD_MESSAGE", () => {
    for (const n of [0, 8, 15, 17, 32]) {
      expect(codeOf(() => vncAuthResponse(new Uint8Array(n), "pass"))).toBe("BAD_MESSAGE");
      expect(codeOf(() => verifyVncAuthResponse(new Uint8Array(n), new Uint8Array(16), "pass"))).toBe(
        "BAD_MESSAGE",
      );
    }
  });
});

describe("verifyVncAuthResponse", () => {
  test("accepts the right response, also from a password longer than 8", () => {
    const c = randomChallenge();
    expect(verifyVncAuthResponse(c, vncAuthResponse(c, "secret12"), "secret12")).toBe(true);
    expect(verifyVncAuthResponse(c, vncAuthResponse(c, "secret12"), "secret12-and-more")).toBe(true);
  });

  test("rejects any single flipped bit", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.integer({ min: 0, max: 127 }),
        (c, bit) => {
          const r = vncAuthResponse(c, "pw");
          r[bit >>> 3]! ^= 1 << (bit & 7);
          expect(verifyVncAuthResponse(c, r, "pw")).toBe(false);
        },
      ),
    );
  });

  test("rejects another password and another challenge", () => {
    const c = randomChallenge();
    expect(verifyVncAuthResponse(c, vncAuthResponse(c, "right"), "wrong")).toBe(false);
    const other = c.slice();
    other[0]! ^= 1;
    expect(verifyVncAuthResponse(other, vncAuthResponse(c, "right"), "right")).toBe(false);
  });

  test("rejects responses of the wrong length, including a correct prefix or the response plus a byte", () => {
    const r = vncAuthResponse(CHALLENGE, "pw");
    expect(verifyVncAuthResponse(CHALLENGE, r.subarray(0, 15), "pw")).toBe(false);
    expect(verifyVncAuthResponse(CHALLENGE, new Uint8Array([...r, 0]), "pw")).toBe(false);
    expect(verifyVncAuthResponse(CHALLENGE, new Uint8Array(0), "pw")).toBe(false);
  });
});

describe("randomChallenge", () => {
  test("16 bytes, fresh each call", () => {
    const a = randomChallenge();
    const b = randomChallenge();
    expect(a).toHaveLength(16);
    // Equal or all-zero by chance has probability 2^-128.
    expect(a).not.toEqual(b);
    expect(a).not.toEqual(new Uint8Array(16));
  });
});

// Recorded from TigerVNC 1.12.0 (Debian 12 tigervnc-tools): `printf '<input>' | vncpasswd -f | xxd -p`.
const VNCPASSWD_RECORDED: readonly [
  input: string,
  password: string,
  viewOnly: string | undefined,
  file: string,
][] = [
  ["pass", "pass", undefined, "2562d2979f13a743"],
  ["\\n", "", undefined, "5ab2cdc0badcaf13"],
  ["a", "a", undefined, "d8d1e367e1d17646"],
  ["1234567", "1234567", undefined, "11615c69cd040545"],
  ["12345678", "12345678", undefined, "f0e43164f6c2e373"],
  ["password123", "password", undefined, "dbd83cfd727a1458"],
  ["pässwörd", "pässwö", undefined, "b2fd172a9c69b143"],
  ["ab\\0cd", "ab", undefined, "f9b845297cb5d3f2"],
  ["a b  c ", "a b  c ", undefined, "dd9c8fad8af08a40"],
  ["pass\\nview", "pass", "view", "2562d2979f13a7438bf749adc043135f"],
  ["\\nview\\n", "", "view", "5ab2cdc0badcaf138bf749adc043135f"],
];

describe("vncpasswd files", () => {
  test("the fixed key is TigerVNC's {23,82,107,6,35,78,88,7}", () => {
    expect([...VNC_PASSWD_FILE_KEY]).toEqual([23, 82, 107, 6, 35, 78, 88, 7]);
  });

  test.each(VNCPASSWD_RECORDED.map((r) => [...r]))(
    "vncpasswd -f <<< '%s' writes the same bytes and reads back",
    (_input, password, viewOnly, file) => {
      expect(toHex(writeVncPasswordFile(password!, viewOnly))).toBe(file!);
      const read = readVncPasswordFile(hex(file!));
      // Truncated to 8 bytes, so compare bytes: "pässwö" is exactly 8 UTF-8 bytes.
      expect(read.password).toEqual(ascii(password!));
      expect(read.viewOnlyPassword).toEqual(viewOnly === undefined ? null : ascii(viewOnly));
    },
  );

  test("a file of 8 zero-padded bytes decrypts to the password without padding", () => {
    expect(readVncPasswordFile(writeVncPasswordFile("abc")).password).toEqual(ascii("abc"));
  });

  test("round trip for any password of up to 8 non-NUL bytes", () => {
    const pw = fc.uint8Array({ min: 1, maxLength: 8 });
    fc.assert(
      fc.property(pw, fc.option(pw, { nil: undefined }), (p, v) => {
        const read = readVncPasswordFile(writeVncPasswordFile(p, v));
        expect(read.password).toEqual(p);
        expect(read.viewOnlyPassword).toEqual(v ?? null);
      }),
    );
  });

  test("a file read back gives the same VNC auth response as the password it was written from", () => {
    const { password } = readVncPasswordFile(writeVncPasswordFile("s3cr3t!!xyz"));
    expect(vncAuthResponse(CHALLENGE, password)).toEqual(vncAuthResponse(CHALLENGE, "s3cr3t!!"));
  });

  test("files that are not 8 or 16 bytes are refused with AUTH_REQUIRED", () => {
    for (const n of [0, 1, 7, 9, 15, 17, 24]) {
      expect(codeOf(() => readVncPasswordFile(new Uint8Array(n)))).toBe("AUTH_REQUIRED");
    }
  });
});

// ---- real peers -------------------------------------------------------------------------------------------

describe("real peer: TigerVNC vncpasswd -f", () => {
  // Printable ASCII and a few non-ASCII letters; no newline (it separates the view-only password) and no NUL.
  const chars = fc.constantFrom(..."abcXYZ019 !#$%&'()*+,-./:;<=>?@[\\]^_`{|}~äö€".split(""));
  const password = fc.string({ unit: chars, maxLength: 11 });

  test("random passwords: our file bytes equal vncpasswd's, and read back", () => {
    // An empty view-only password is no view-only password to vncpasswd ("pass\n" writes 8 bytes).
    const viewOnly = fc.string({ unit: chars, minLength: 1, maxLength: 11 });
    fc.assert(
      fc.property(password, fc.option(viewOnly, { nil: undefined }), (p, v) => {
        // Lines end in a newline: on empty input vncpasswd -f fails at EOF instead of writing the empty password.
        const input = v === undefined ? `${p}\n` : `${p}\n${v}\n`;
        const r = Bun.spawnSync(["vncpasswd", "-f"], { stdin: new TextEncoder().encode(input) });
        expect(r.exitCode).toBe(0);
        const theirs = new Uint8Array(r.stdout);
        expect(writeVncPasswordFile(p, v)).toEqual(theirs);
        const read = readVncPasswordFile(theirs);
        expect(read.password).toEqual(ascii(p).subarray(0, 8));
        expect(vncAuthResponse(CHALLENGE, read.password)).toEqual(vncAuthResponse(CHALLENGE, p));
      }),
      { numRuns: 25 },
    );
  });
});

/** A byte reader over a socket: read(n) resolves with exactly n bytes. */
class SocketReader {
  #buf = new Uint8Array(0);
  #waiters: (() => void)[] = [];
  #closed = false;
  constructor(readonly socket: Socket) {
    socket.on("data", (d: Buffer) => {
      this.#buf = new Uint8Array([...this.#buf, ...d]);
      for (const w of this.#waiters.splice(0)) w();
    });
    socket.on("close", () => {
      this.#closed = true;
      for (const w of this.#waiters.splice(0)) w();
    });
  }
  async read(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n) {
      if (this.#closed) throw new Error(`socket closed with ${this.#buf.length} of ${n} bytes`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

function freeDisplay(): number {
  for (;;) {
    const n = 100 + Math.floor(Math.random() * 800);
    if (!existsSync(`/tmp/.X${n}-lock`) && !existsSync(`/tmp/.X11-unix/X${n}`)) return n;
  }
}

async function connectWithRetry(port: number, deadlineMs: number): Promise<Socket> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const s = connect(port, "127.0.0.1", () => resolve(s));
        s.once("error", reject);
      });
    } catch (e) {
      if (Date.now() > end) throw e;
      await Bun.sleep(50);
    }
  }
}

describe("real peers: TigerVNC Xvnc and vncviewer", () => {
  let dir = "";
  let display = 0;
  let rfbPort = 0;
  let xvnc: ReturnType<typeof Bun.spawn> | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "vnc-auth-test-"));
    // The server reads the password file we wrote: this checks writeVncPasswordFile against Xvnc itself.
    writeFileSync(join(dir, "passwd"), writeVncPasswordFile("Tr3e-fr0g"));
    display = freeDisplay();
    rfbPort = await freePort();
    xvnc = Bun.spawn(
      [
        "Xvnc",
        `:${display}`,
        "-rfbport",
        String(rfbPort),
        "-rfbauth",
        join(dir, "passwd"),
        "-SecurityTypes",
        "VncAuth",
        "-localhost",
        "-nolisten",
        "tcp",
        "-geometry",
        "64x64",
      ],
      { stdout: "ignore", stderr: "ignore" },
    );
  });

  afterAll(() => {
    xvnc?.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** RFB 3.8 handshake up to SecurityResult (rfbproto.rst "Handshake Messages"); returns the result word. */
  async function authenticate(password: string): Promise<number> {
    const socket = await connectWithRetry(rfbPort, 10_000);
    const r = new SocketReader(socket);
    try {
      expect(new TextDecoder().decode(await r.read(12))).toBe("RFB 003.008\n");
      socket.write("RFB 003.008\n");
      const [count] = await r.read(1);
      expect([...(await r.read(count!))]).toEqual([2]); // security types: only VNC Authentication
      socket.write(Uint8Array.of(2));
      const challenge = await r.read(16);
      socket.write(vncAuthResponse(challenge, password));
      return new DataView((await r.read(4)).buffer).getUint32(0);
    } finally {
      socket.destroy();
    }
  }

  test("Xvnc accepts our response for the right password (8 significant bytes)", async () => {
    expect(await authenticate("Tr3e-fr0g")).toBe(0);
    expect(await authenticate("Tr3e-fr0")).toBe(0);
  });

  test("Xvnc refuses our response for a wrong password", async () => {
    expect(await authenticate("Tr3e-fr1g")).toBe(1);
  });

  test("vncviewer's response to our challenge verifies with the password from its -passwd file", async () => {
    // vncviewer reads the file with TigerVNC's own deobfuscation; we play the server.
    writeFileSync(join(dir, "viewer-passwd"), writeVncPasswordFile("v13wer!"));
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    const got = new Promise<{ challenge: Uint8Array; response: Uint8Array }>((resolve, reject) => {
      server.once("connection", (socket: Socket) => {
        const r = new SocketReader(socket);
        (async () => {
          socket.write("RFB 003.008\n");
          await r.read(12);
          socket.write(Uint8Array.of(1, 2));
          expect([...(await r.read(1))]).toEqual([2]);
          const challenge = randomChallenge();
          socket.write(challenge);
          const response = await r.read(16);
          socket.destroy();
          resolve({ challenge, response });
        })().catch(reject);
      });
    });
    // Connect the viewer to the Xvnc display (it needs an X server); wait until Xvnc is up.
    (await connectWithRetry(rfbPort, 10_000)).destroy();
    const viewer = Bun.spawn(["vncviewer", "-passwd", join(dir, "viewer-passwd"), `127.0.0.1::${port}`], {
      env: { ...process.env, DISPLAY: `:${display}` },
      stdout: "ignore",
      stderr: "ignore",
    });
    try {
      const { challenge, response } = await Promise.race([
        got,
        Bun.sleep(20_000).then(() => Promise.reject(new Error("vncviewer did not answer in 20 s"))),
      ]);
      expect(verifyVncAuthResponse(challenge, response, "v13wer!")).toBe(true);
      expect(verifyVncAuthResponse(challenge, response, "v13wer?")).toBe(false);
    } finally {
      viewer.kill();
      server.close();
    }
  });
});
