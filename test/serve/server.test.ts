// Tests for `shadowrelay serve`'s listener (relay/serve/server.ts), its HTTP app (app.ts) and its data
// directory (data-dir.ts): real TLS over loopback, the generated certificate verified as a CA, its reuse on
// the next start, operator-supplied certificates, plain HTTP refused, and a stop that frees the port.

import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { createApp, escapeHtml, formatHostPort } from "../../relay/serve/app.ts";
import { DataDirError, openDataDir } from "../../relay/serve/data-dir.ts";
import {
  type DemoDependency,
  parseListen,
  type RunningServer,
  ServeError,
  startServer,
} from "../../relay/serve/server.ts";
import { formatLine, Logger, log } from "../../relay/util/log.ts";
import { generateSelfSigned } from "../../relay/util/x509.ts";

const INSECURE = { tls: { rejectUnauthorized: false } };

let root: string;
const running: RunningServer[] = [];
const logLines: string[] = [];
let restoreSink: ((line: string) => void) | undefined;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "shadowrelay-serve-"));
  // Keep the test output readable, and let the tests read what the relay logged.
  restoreSink = log.setSink((line) => logLines.push(line));
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

afterAll(() => {
  if (restoreSink !== undefined) log.setSink(restoreSink);
  rmSync(root, { recursive: true, force: true });
});

let dirCount = 0;
function freshDir(): string {
  return join(root, `data-${++dirCount}`);
}

async function start(options: Parameters<typeof startServer>[0]): Promise<RunningServer> {
  const s = await startServer({ listen: "127.0.0.1:0", stopGraceMs: 500, ...options });
  running.push(s);
  return s;
}

/** SHA-256 of the certificate the listener actually presents, read with node:tls (no verification). */
function servedCertSha256(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host, port, rejectUnauthorized: false, servername: "localhost" }, () => {
      const raw = sock.getPeerCertificate().raw;
      sock.destroy();
      resolve(new Bun.CryptoHasher("sha256").update(raw).digest("hex"));
    });
    sock.on("error", reject);
  });
}

/** Sends `text` over plain TCP and collects whatever comes back until the peer closes (or 3 s pass). */
function plainExchange(port: number, text: string): Promise<{ reply: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const sock = net.connect(port, "127.0.0.1", () => sock.write(text));
    const done = (closed: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ reply: Buffer.concat(chunks), closed });
    };
    const timer = setTimeout(() => done(false), 3000);
    sock.on("data", (d: Buffer) => chunks.push(d));
    sock.on("error", () => done(true));
    sock.on("close", () => done(true));
  });
}

function connectRefused(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, host);
    sock.on("connect", () => {
      sock.destroy();
      resolve(false);
    });
    sock.on("error", (err: NodeJS.ErrnoException) => resolve(err.code === "ECONNREFUSED"));
  });
}

describe("parseListen", () => {
  test("host:port and [ipv6]:port", () => {
    expect(parseListen("0.0.0.0:8443")).toEqual({ hostname: "0.0.0.0", port: 8443 });
    expect(parseListen("127.0.0.1:0")).toEqual({ hostname: "127.0.0.1", port: 0 });
    expect(parseListen("[::1]:8443")).toEqual({ hostname: "::1", port: 8443 });
    expect(parseListen("[::]:443")).toEqual({ hostname: "::", port: 443 });
    expect(parseListen("relay.example.test:65535")).toEqual({ hostname: "relay.example.test", port: 65535 });
  });

  test("refuses ambiguous or malformed addresses", () => {
    for (const bad of [
      "::1:8443",
      "8443",
      "host",
      "host:",
      ":8443",
      "host:65536",
      "[relay]:1",
      "[::1]",
      "a b:1",
      "h:-1",
    ]) {
      expect(() => parseListen(bad)).toThrow(ServeError);
    }
  });
});

describe("the app", () => {
  test("/healthz reports status, version, uptime and the demo flag", async () => {
    let now = 10_000;
    const app = createApp({ version: "9.9.9", startedAt: 0, now: () => now });
    const res = await app.request("/healthz");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("application/json");
    expect(await res.json()).toEqual({ status: "ok", version: "9.9.9", uptimeSeconds: 10, demo: false });
    now = 72_999;
    expect(((await (await app.request("/healthz")).json()) as { uptimeSeconds: number }).uptimeSeconds).toBe(
      72,
    );
  });

  test("/ escapes what it shows and carries no script", async () => {
    const app = createApp({
      version: "<b>1</b>",
      startedAt: 0,
      demo: () => ({ host: '<script>alert("x")</script>', port: 5900 }),
    });
    const res = await app.request("/");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    const html = await res.text();
    expect(html).not.toContain("<script");
    expect(html).not.toContain("<b>1</b>");
    expect(html).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;:5900");
    expect(html).toContain("later release");
  });

  test("escapeHtml and formatHostPort", () => {
    expect(escapeHtml(`<a href="x">&'</a>`)).toBe("&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
    expect(formatHostPort("::1", 5900)).toBe("[::1]:5900");
    expect(formatHostPort("127.0.0.1", 5900)).toBe("127.0.0.1:5900");
  });

  test("unknown paths are 404", async () => {
    expect((await createApp({ version: "1", startedAt: 0 }).request("/nope")).status).toBe(404);
  });
});

describe("startServer", () => {
  test("first start creates the data dir and the certificate; /healthz answers over TLS", async () => {
    const dataDir = freshDir();
    const s = await start({ dataDir });
    expect(s.url).toBe(`https://127.0.0.1:${s.port}`);
    expect(s.port).toBeGreaterThan(0);
    expect(s.tls.generated).toBe(true);

    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dataDir, "tls")).mode & 0o777).toBe(0o700);
    expect(statSync(join(dataDir, "tls", "key.pem")).mode & 0o777).toBe(0o600);
    expect(existsSync(join(dataDir, "tls", "cert.pem"))).toBe(true);

    const res = await fetch(`${s.url}/healthz`, INSECURE);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ status: "ok", demo: false });
    expect(typeof body.version).toBe("string");
    expect(body.uptimeSeconds).toBeGreaterThanOrEqual(0);

    expect(await servedCertSha256("127.0.0.1", s.port)).toBe(s.tls.certSha256Hex);
  });

  test("the generated certificate verifies as its own CA, by IP and by localhost", async () => {
    const s = await start({ dataDir: freshDir() });
    const byIp = await fetch(`${s.url}/healthz`, { tls: { ca: s.tls.certPem } });
    expect(byIp.status).toBe(200);
    const byName = await fetch(`https://localhost:${s.port}/healthz`, { tls: { ca: s.tls.certPem } });
    expect(byName.status).toBe(200);
    // Verification is really on: without the CA the same request fails.
    await expect(fetch(`${s.url}/healthz`)).rejects.toThrow();
  });

  test("the public URL's host goes into a generated certificate", async () => {
    const s = await start({ dataDir: freshDir(), publicUrl: "https://relay.example.test:9443/" });
    expect(s.publicUrl).toBe("https://relay.example.test:9443");
    const ok = await new Promise<boolean>((resolve, reject) => {
      const sock = tls.connect(
        { host: "127.0.0.1", port: s.port, ca: s.tls.certPem, servername: "relay.example.test" },
        () => {
          sock.destroy();
          resolve(sock.authorized);
        },
      );
      sock.on("error", reject);
    });
    expect(ok).toBe(true);
  });

  test("plain HTTP to the TLS port does not get the page", async () => {
    const s = await start({ dataDir: freshDir() });
    const { reply } = await plainExchange(
      s.port,
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    const text = reply.toString("latin1");
    expect(text).not.toContain("HTTP/1.1 200");
    expect(text).not.toContain("shadowrelay");
    await expect(fetch(`http://127.0.0.1:${s.port}/healthz`)).rejects.toThrow();
  });

  test("the second start reuses the certificate", async () => {
    const dataDir = freshDir();
    const first = await start({ dataDir });
    const fingerprint = first.tls.certSha256Hex;
    const spki = first.tls.spkiSha256Hex;
    await first.stop();

    const second = await start({ dataDir });
    expect(second.tls.generated).toBe(false);
    expect(second.tls.certSha256Hex).toBe(fingerprint);
    expect(second.tls.spkiSha256Hex).toBe(spki);
    expect(await servedCertSha256("127.0.0.1", second.port)).toBe(fingerprint);
  });

  test("--cert/--key are used as given", async () => {
    const own = await generateSelfSigned({
      commonName: "operator",
      dnsNames: ["localhost"],
      ipAddresses: ["127.0.0.1"],
    });
    const certFile = join(root, "operator-cert.pem");
    const keyFile = join(root, "operator-key.pem");
    writeFileSync(certFile, own.certPem);
    writeFileSync(keyFile, own.keyPem, { mode: 0o600 });
    const dataDir = freshDir();

    const s = await start({ dataDir, certFile, keyFile });
    expect(s.tls.generated).toBe(false);
    expect(s.tls.certFile).toBe(certFile);
    expect(s.tls.certSha256Hex).toBe(own.certSha256Hex);
    expect(s.tls.spkiSha256Hex).toBe(own.spkiSha256Hex);
    expect(await servedCertSha256("127.0.0.1", s.port)).toBe(own.certSha256Hex);
    expect((await fetch(`${s.url}/healthz`, { tls: { ca: own.certPem } })).status).toBe(200);
    expect(existsSync(join(dataDir, "tls", "cert.pem"))).toBe(false); // nothing generated beside it
  });

  test("a key that does not belong to the certificate is refused at start", async () => {
    const a = await generateSelfSigned({ commonName: "a", ipAddresses: ["127.0.0.1"] });
    const b = await generateSelfSigned({ commonName: "b", ipAddresses: ["127.0.0.1"] });
    const certFile = join(root, "mismatch-cert.pem");
    const keyFile = join(root, "mismatch-key.pem");
    writeFileSync(certFile, a.certPem);
    writeFileSync(keyFile, b.keyPem, { mode: 0o600 });
    await expect(start({ dataDir: freshDir(), certFile, keyFile })).rejects.toThrow(/KEY_VALUES_MISMATCH/);
  });

  test("stop() frees the port, refuses new connections at once, and is idempotent", async () => {
    const s = await start({ dataDir: freshDir() });
    expect((await fetch(`${s.url}/healthz`, INSECURE)).status).toBe(200);
    await Promise.all([s.stop(), s.stop()]);
    expect(await connectRefused("127.0.0.1", s.port)).toBe(true);
    // The same port can be bound again.
    const again = Bun.serve({ hostname: "127.0.0.1", port: s.port, fetch: () => new Response("x") });
    expect(again.port).toBe(s.port);
    await again.stop(true);
  });

  test("stop() closes a connection that never finishes its request once the grace period ends", async () => {
    const s = await start({ dataDir: freshDir(), stopGraceMs: 200 });
    const sock = tls.connect({ host: "127.0.0.1", port: s.port, rejectUnauthorized: false });
    await new Promise((resolve) => sock.once("secureConnect", resolve));
    const closed = new Promise<void>((resolve) => sock.once("close", () => resolve()));
    sock.on("error", () => {});
    sock.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"); // headers never end

    const stopping = s.stop();
    expect(await connectRefused("127.0.0.1", s.port)).toBe(true); // listener closed while draining
    await stopping; // without the forced close this would never resolve: Bun waits for the socket
    await closed;
    expect(logLines.some((l) => l.includes("closing them"))).toBe(true);
  });

  test("the injected demo device is started, shown, and stopped with the relay", async () => {
    const calls: string[] = [];
    const demo: DemoDependency = {
      start: async () => {
        calls.push("start");
        return {
          host: "127.0.0.1",
          port: 5999,
          stop: async () => {
            calls.push("stop");
          },
        };
      },
    };
    const s = await start({ dataDir: freshDir(), demo });
    expect(calls).toEqual(["start"]);
    expect(s.demo).toEqual({ host: "127.0.0.1", port: 5999 });
    expect(await (await fetch(`${s.url}/healthz`, INSECURE)).json()).toMatchObject({ demo: true });
    expect(await (await fetch(`${s.url}/`, INSECURE)).text()).toContain("<code>127.0.0.1:5999</code>");
    await s.stop();
    await s.stop();
    expect(calls).toEqual(["start", "stop"]);
  });

  test("the demo device is stopped again when the relay cannot listen", async () => {
    const blocker = await start({ dataDir: freshDir() });
    let stopped = 0;
    const demo: DemoDependency = {
      start: async () => ({ host: "127.0.0.1", port: 1, stop: async () => void stopped++ }),
    };
    await expect(start({ dataDir: freshDir(), listen: `127.0.0.1:${blocker.port}`, demo })).rejects.toThrow(
      /in use/,
    );
    expect(stopped).toBe(1);
  });

  test("an IPv6 listen address", async () => {
    let s: RunningServer;
    try {
      s = await start({ dataDir: freshDir(), listen: "[::1]:0" });
    } catch (err) {
      // Some containers have no IPv6 loopback; that is the machine, not the relay. Say so loudly.
      console.warn(
        `\n*** IPv6 loopback unavailable, [::1] listen not tested: ${(err as Error).message} ***\n`,
      );
      if (process.env.CI) throw err;
      return;
    }
    expect(s.url).toBe(`https://[::1]:${s.port}`);
    expect((await fetch(`${s.url}/healthz`, { tls: { ca: s.tls.certPem } })).status).toBe(200);
  });

  test("the startup line is one JSON object with the fingerprint", async () => {
    const s = await start({ dataDir: freshDir() });
    const line = logLines.findLast((l) => l.includes('"relay listening"'));
    expect(line).toBeDefined();
    const record = JSON.parse(line ?? "{}") as Record<string, unknown>;
    expect(record).toMatchObject({
      level: "info",
      msg: "relay listening",
      url: s.url,
      certSha256: s.tls.certSha256Hex,
    });
    expect(typeof record.t).toBe("string");
  });
});

describe("openDataDir", () => {
  test("--cert without --key is refused", async () => {
    await expect(openDataDir(freshDir(), { certFile: "/nonexistent" })).rejects.toThrow(DataDirError);
  });

  test("a certificate whose key went missing is not silently replaced", async () => {
    const dir = freshDir();
    const first = await openDataDir(dir);
    rmSync(first.keyFile);
    await expect(openDataDir(dir)).rejects.toThrow(/key\.pem is missing/);
  });

  test("unreadable --cert is a clear error", async () => {
    await expect(
      openDataDir(freshDir(), { certFile: join(root, "absent.pem"), keyFile: join(root, "absent-key.pem") }),
    ).rejects.toThrow(DataDirError);
  });
});

describe("log", () => {
  test("lines are JSON with t, level and msg first; fields cannot overwrite them; levels gate", () => {
    const lines: string[] = [];
    const logger = new Logger({ level: "info", sink: (l) => lines.push(l), now: () => 0 });
    logger.debug("hidden", { x: 1 });
    logger.info("shown", { msg: "spoof", n: 1n, err: new Error("boom") });
    expect(logger.enabled("debug")).toBe(false);
    expect(lines).toHaveLength(1);
    expect(lines[0]?.endsWith("\n")).toBe(true);
    const rec = JSON.parse(lines[0] ?? "") as Record<string, unknown>;
    expect(Object.keys(rec).slice(0, 3)).toEqual(["t", "level", "msg"]);
    expect(rec).toMatchObject({
      t: "1970-01-01T00:00:00.000Z",
      level: "info",
      msg: "shown",
      field_msg: "spoof",
      n: "1",
    });
    expect((rec.err as Record<string, unknown>).message).toBe("boom");
    logger.setLevel("debug");
    logger.debug("now shown");
    expect(lines).toHaveLength(2);
  });

  test("never throws: cycles and failing sinks are absorbed", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(JSON.parse(formatLine("warn", "m", { cyclic }, 0))).toMatchObject({ msg: "m", level: "warn" });
    const logger = new Logger({
      level: "debug",
      sink: () => {
        throw new Error("stderr closed");
      },
    });
    expect(() => logger.error("x")).not.toThrow();
  });
});
