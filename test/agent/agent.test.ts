// The agent runtime against a fake relay that implements only the contract (POST /api/enroll, /ws/agent with
// challenge → hello → welcome, pings, session requests, /ws/agent/data/:session behind a bearer token), over
// TLS on loopback with its own self-signed certificate: enrollment pins that certificate (or refuses another),
// the agent proves its key and is welcomed, reconnects after drops, answers consent, and bridges a data
// channel to a real Xvnc with a VNC password — the fake relay sees a server offering only None and the
// Xvnc's own ServerInit.

import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync } from "node:fs";
import type { Server, ServerWebSocket } from "bun";
import { AGENT_CLOSE, type AgentEvent, type AgentHandle, startAgent } from "../../relay/agent/agent.ts";
import { EnrollError, enrollAgent } from "../../relay/agent/enroll.ts";
import { identityPath, loadIdentity, saveIdentity, verifyProof } from "../../relay/agent/identity.ts";
import {
  RelayTrustError,
  fetchRelayCertificate,
  parseFingerprint,
  relayCertPath,
  relayEndpoints,
  trustFor,
} from "../../relay/agent/relay-trust.ts";
import { toBase64url } from "../../relay/gateway/protocol.ts";
import { log } from "../../relay/util/log.ts";
import { type SelfSigned, certFingerprint, generateSelfSigned } from "../../relay/util/x509.ts";
import { XVNC_PEERS, type Xvnc, killAll, makeTempDir, requirePeer, startXvnc } from "../peers/rig.ts";

// ---------------------------------------------------------------------------------------------------------
// The fake relay

type Msg = Record<string, unknown>;

interface ControlConn {
  ws: ServerWebSocket<WsData>;
  nonce: string;
  deviceId: string | null;
  welcomed: boolean;
  received: Msg[];
  closed: { code: number; reason: string } | null;
}

interface DataConn {
  ws: ServerWebSocket<WsData>;
  sessionId: string;
  authorization: string | null;
  buf: Uint8Array;
  closed: { code: number; reason: string } | null;
}

type WsData =
  | { kind: "control"; conn?: ControlConn }
  | { kind: "data"; conn?: DataConn; sessionId: string; auth: string };

interface FakeRelay {
  server: Server<WsData>;
  url: string;
  port: number;
  cert: SelfSigned;
  tokens: Set<string>;
  enrollCalls: number;
  /** deviceId → SPKI the relay pinned (tests may replace it). */
  devices: Map<string, Uint8Array>;
  controls: ControlConn[];
  data: DataConn[];
  /** sessionId → the data token the relay handed out. */
  dataTokens: Map<string, string>;
  dataRefused: number;
  heartbeatSeconds: number;
  stop(): Promise<void>;
}

const relays: FakeRelay[] = [];

async function startFakeRelay(o: { cert?: SelfSigned; port?: number } = {}): Promise<FakeRelay> {
  const cert = o.cert ?? (await generateSelfSigned({ commonName: "fake-relay", ipAddresses: ["127.0.0.1"] }));
  const relay = {
    cert,
    tokens: new Set<string>(),
    enrollCalls: 0,
    devices: new Map<string, Uint8Array>(),
    controls: [] as ControlConn[],
    data: [] as DataConn[],
    dataTokens: new Map<string, string>(),
    dataRefused: 0,
    heartbeatSeconds: 30,
  } as FakeRelay;
  const json = (status: number, body: unknown) => Response.json(body, { status });

  relay.server = Bun.serve<WsData>({
    hostname: "127.0.0.1",
    port: o.port ?? 0,
    tls: { cert: cert.certPem, key: cert.keyPem },
    async fetch(req, srv) {
      const path = new URL(req.url).pathname;
      if (path === "/api/enroll" && req.method === "POST") {
        relay.enrollCalls++;
        const body = (await req.json()) as { token?: string; spki?: string; name?: string };
        if (typeof body.token !== "string" || !relay.tokens.delete(body.token)) {
          return json(401, { error: "UNAUTHORIZED", message: "unknown enrollment token" });
        }
        const spki = new Uint8Array(Buffer.from(String(body.spki), "base64"));
        const id = toBase64url(crypto.getRandomValues(new Uint8Array(12)));
        relay.devices.set(id, spki);
        return json(201, {
          device: { id, name: body.name ?? "token-name", mode: "gateway" },
          relay: { certSha256: cert.certSha256Hex },
        });
      }
      if (path === "/ws/agent") {
        return srv.upgrade(req, { data: { kind: "control" } })
          ? undefined
          : new Response("upgrade", { status: 426 });
      }
      const m = /^\/ws\/agent\/data\/([^/]+)$/.exec(path);
      if (m) {
        const sessionId = decodeURIComponent(m[1]!);
        const auth = req.headers.get("authorization");
        const token = relay.dataTokens.get(sessionId);
        if (token === undefined || auth !== `Bearer ${token}`) {
          relay.dataRefused++;
          return new Response("bad data token", { status: 401 });
        }
        relay.dataTokens.delete(sessionId); // single use
        return srv.upgrade(req, { data: { kind: "data", sessionId, auth } })
          ? undefined
          : new Response("upgrade", { status: 426 });
      }
      return new Response("not found", { status: 404 });
    },
    websocket: {
      open(ws) {
        if (ws.data.kind === "control") {
          const conn: ControlConn = {
            ws,
            nonce: toBase64url(crypto.getRandomValues(new Uint8Array(32))),
            deviceId: null,
            welcomed: false,
            received: [],
            closed: null,
          };
          ws.data.conn = conn;
          relay.controls.push(conn);
          ws.send(JSON.stringify({ type: "challenge", nonce: conn.nonce }));
        } else {
          const conn: DataConn = {
            ws,
            sessionId: ws.data.sessionId,
            authorization: ws.data.auth,
            buf: new Uint8Array(0),
            closed: null,
          };
          ws.data.conn = conn;
          relay.data.push(conn);
        }
      },
      async message(ws, message) {
        if (ws.data.kind === "data") {
          const conn = ws.data.conn!;
          const bytes = typeof message === "string" ? new TextEncoder().encode(message) : message;
          conn.buf = new Uint8Array(Buffer.concat([conn.buf, bytes]));
          return;
        }
        const conn = ws.data.conn!;
        const msg = JSON.parse(String(message)) as Msg;
        conn.received.push(msg);
        if (msg.type === "hello") {
          const deviceId = String(msg.deviceId);
          const spki = relay.devices.get(deviceId);
          const ok =
            spki !== undefined && (await verifyProof(spki, conn.nonce, deviceId, String(msg.signature)));
          if (!ok) {
            ws.close(4401, "device refused");
            return;
          }
          conn.deviceId = deviceId;
          conn.welcomed = true;
          ws.send(JSON.stringify({ type: "welcome", deviceId, heartbeatSeconds: relay.heartbeatSeconds }));
        }
      },
      close(ws, code, reason) {
        if (ws.data.conn) ws.data.conn.closed = { code, reason };
      },
    },
  });
  relay.port = relay.server.port!;
  relay.url = `https://127.0.0.1:${relay.port}`;
  relay.stop = async () => {
    await relay.server.stop(true);
  };
  relays.push(relay);
  return relay;
}

/** A session request from the relay, with a fresh data token it will accept once. */
function requestSession(relay: FakeRelay, conn: ControlConn, sessionId: string, viewOnly = false): string {
  const dataToken = toBase64url(crypto.getRandomValues(new Uint8Array(32)));
  relay.dataTokens.set(sessionId, dataToken);
  conn.ws.send(
    JSON.stringify({
      type: "session",
      sessionId,
      requester: { name: "Olga Operator", role: "operator" },
      viewOnly,
      dataToken,
    }),
  );
  return dataToken;
}

// ---------------------------------------------------------------------------------------------------------
// Helpers

async function until(pred: () => boolean, what: string, ms = 8_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

const sleep = (ms: number) => Bun.sleep(ms);

/** Bytes arriving on a fake-relay data connection, read in order. */
function dataReader(conn: DataConn) {
  let pos = 0;
  return async (n: number, what: string): Promise<Uint8Array> => {
    await until(() => conn.buf.length >= pos + n, what);
    const out = conn.buf.slice(pos, pos + n);
    pos += n;
    return out;
  };
}

const logLines: string[] = [];
let previousSink: ((line: string) => void) | null = null;
const previousLevel = log.level;
const secrets: string[] = [];

const agents: AgentHandle[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop()));
});

beforeAll(() => {
  previousSink = log.setSink((line) => logLines.push(line));
  log.setLevel("debug");
});

afterAll(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop()));
  await Promise.all(relays.splice(0).map((r) => r.stop()));
  await killAll();
  if (previousSink) log.setSink(previousSink);
  log.setLevel(previousLevel);
});

function newToken(relay: FakeRelay): string {
  const token = toBase64url(crypto.getRandomValues(new Uint8Array(32)));
  relay.tokens.add(token);
  secrets.push(token);
  return token;
}

async function enrolled(relay: FakeRelay, name = "kiosk") {
  const stateDir = makeTempDir("shadowrelay-agent-");
  const r = await enrollAgent({ relayUrl: relay.url, token: newToken(relay), stateDir, name });
  return { stateDir, deviceId: r.identity.deviceId };
}

const FAST_BACKOFF = { baseMs: 20, capMs: 60 };

async function agentFor(
  stateDir: string,
  o: Partial<Parameters<typeof startAgent>[0]> = {},
): Promise<{ agent: AgentHandle; events: AgentEvent[] }> {
  const events: AgentEvent[] = [];
  const agent = await startAgent({
    stateDir,
    vnc: { host: "127.0.0.1", port: 1 },
    consent: "none",
    backoff: FAST_BACKOFF,
    onEvent: (e) => events.push(e),
    ...o,
  });
  agents.push(agent);
  return { agent, events };
}

const welcomed = (relay: FakeRelay) => relay.controls.filter((c) => c.welcomed);

// ---------------------------------------------------------------------------------------------------------

describe("relay trust", () => {
  test("fingerprints: colons, case and a sha256: prefix are accepted; anything else is not", () => {
    const hex = "ab".repeat(32);
    expect(parseFingerprint(hex.toUpperCase().match(/../g)!.join(":"))).toBe(hex);
    expect(parseFingerprint(`sha256:${hex}`)).toBe(hex);
    expect(() => parseFingerprint(hex.slice(2))).toThrow(RelayTrustError);
    expect(() => parseFingerprint(`${hex.slice(2)}zz`)).toThrow(RelayTrustError);
  });

  test("relay URLs: https or wss only, default port 443, path kept", () => {
    expect(relayEndpoints("https://relay.example:8443/sr/")).toEqual({
      host: "relay.example",
      port: 8443,
      httpsBase: "https://relay.example:8443/sr",
      wssBase: "wss://relay.example:8443/sr",
    });
    expect(relayEndpoints("wss://[::1]").host).toBe("::1");
    expect(relayEndpoints("wss://[::1]").port).toBe(443);
    expect(() => relayEndpoints("http://relay.example")).toThrow(RelayTrustError);
    expect(() => relayEndpoints("https://u:p@relay.example")).toThrow(RelayTrustError);
  });

  test("fetchRelayCertificate reads the presented leaf; check() refuses another one", async () => {
    const relay = await startFakeRelay();
    const got = await fetchRelayCertificate(relay.url);
    expect(got.sha256Hex).toBe(relay.cert.certSha256Hex);
    expect(certFingerprint(got.pem)).toBe(relay.cert.certSha256Hex);
    const good = trustFor({ relayUrl: relay.url, certPem: got.pem, certSha256: got.sha256Hex });
    await good.check();
    const other = await generateSelfSigned({ commonName: "other", ipAddresses: ["127.0.0.1"] });
    const bad = trustFor({ relayUrl: relay.url, certPem: other.certPem, certSha256: other.certSha256Hex });
    await expect(bad.check()).rejects.toMatchObject({ code: "MISMATCH" });
    // A pin whose stored certificate does not hash to it is refused before any connection.
    expect(() =>
      trustFor({ relayUrl: relay.url, certPem: other.certPem, certSha256: got.sha256Hex }),
    ).toThrow(RelayTrustError);
  });
});

describe("enrollment", () => {
  let relay: FakeRelay;
  beforeAll(async () => {
    relay = await startFakeRelay();
  });

  test("trust on first use: pins the relay's certificate, saves the identity, warns loudly", async () => {
    const stateDir = makeTempDir("shadowrelay-agent-");
    const before = logLines.length;
    const r = await enrollAgent({ relayUrl: relay.url, token: newToken(relay), stateDir, name: "kiosk-1" });
    expect(r.trustedOnFirstUse).toBe(true);
    expect(r.device).toMatchObject({ id: r.identity.deviceId, name: "kiosk-1" });
    expect(r.relayCert.sha256Hex).toBe(relay.cert.certSha256Hex);
    const saved = await loadIdentity(stateDir);
    expect(saved).not.toBeNull();
    expect(saved!.deviceId).toBe(r.identity.deviceId);
    expect(saved!.relayCertSha256).toBe(relay.cert.certSha256Hex);
    expect(saved!.relayUrl).toBe(relay.url);
    // The relay pinned exactly the key the agent keeps.
    expect(Buffer.from(relay.devices.get(saved!.deviceId)!)).toEqual(Buffer.from(saved!.spki));
    const pemFile = relayCertPath(stateDir);
    expect(certFingerprint(readFileSync(pemFile, "utf8"))).toBe(relay.cert.certSha256Hex);
    expect(statSync(pemFile).mode & 0o777).toBe(0o600);
    expect(statSync(identityPath(stateDir)).mode & 0o777).toBe(0o600);
    const warning = logLines.slice(before).find((l) => l.includes("TRUST ON FIRST USE"));
    expect(warning).toBeDefined();
    expect(warning).toContain(relay.cert.certSha256Hex);
  });

  test("with the right --relay-fingerprint (any spelling) it is not trust on first use", async () => {
    const stateDir = makeTempDir("shadowrelay-agent-");
    const spelled = relay.cert.certSha256Hex.toUpperCase().match(/../g)!.join(":");
    const r = await enrollAgent({
      relayUrl: relay.url,
      token: newToken(relay),
      stateDir,
      relayFingerprint: spelled,
    });
    expect(r.trustedOnFirstUse).toBe(false);
    expect((await loadIdentity(stateDir))!.relayCertSha256).toBe(relay.cert.certSha256Hex);
  });

  test("a fingerprint mismatch is refused before the token is sent", async () => {
    const stateDir = makeTempDir("shadowrelay-agent-");
    const other = await generateSelfSigned({ commonName: "impostor" });
    const calls = relay.enrollCalls;
    const token = newToken(relay);
    const err = await enrollAgent({
      relayUrl: relay.url,
      token,
      stateDir,
      relayFingerprint: other.certSha256Hex,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RelayTrustError);
    expect((err as RelayTrustError).code).toBe("MISMATCH");
    expect(relay.enrollCalls).toBe(calls);
    expect(relay.tokens.has(token)).toBe(true);
    expect(existsSync(identityPath(stateDir))).toBe(false);
    expect(existsSync(relayCertPath(stateDir))).toBe(false);
  });

  test("an existing identity is kept unless force; force enrolls a new device", async () => {
    const { stateDir, deviceId } = await enrolled(relay);
    const calls = relay.enrollCalls;
    await expect(
      enrollAgent({ relayUrl: relay.url, token: newToken(relay), stateDir }),
    ).rejects.toMatchObject({
      code: "ALREADY_ENROLLED",
    });
    expect(relay.enrollCalls).toBe(calls);
    expect((await loadIdentity(stateDir))!.deviceId).toBe(deviceId);
    const again = await enrollAgent({ relayUrl: relay.url, token: newToken(relay), stateDir, force: true });
    expect(again.identity.deviceId).not.toBe(deviceId);
    expect((await loadIdentity(stateDir))!.deviceId).toBe(again.identity.deviceId);
  });

  test("the relay's refusal is a coded error with its status, and nothing is saved", async () => {
    const stateDir = makeTempDir("shadowrelay-agent-");
    const err = await enrollAgent({ relayUrl: relay.url, token: "not-a-known-token", stateDir }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(EnrollError);
    expect(err).toMatchObject({ code: "REFUSED", status: 401, relayError: "UNAUTHORIZED" });
    expect(existsSync(identityPath(stateDir))).toBe(false);
  });

  test("startAgent without an identity: NOT_ENROLLED", async () => {
    await expect(
      startAgent({ stateDir: makeTempDir(), vnc: { host: "127.0.0.1", port: 5900 }, consent: "none" }),
    ).rejects.toMatchObject({ code: "NOT_ENROLLED" });
  });
});

describe("control connection", () => {
  let relay: FakeRelay;
  beforeAll(async () => {
    relay = await startFakeRelay();
  });

  test("the agent proves its key and is welcomed; pings are answered", async () => {
    const { stateDir, deviceId } = await enrolled(relay);
    const { agent, events } = await agentFor(stateDir, { consent: "notify" });
    await until(() => agent.status().connected, "welcome");
    expect(agent.status()).toEqual({ connected: true, deviceId, sessions: [] });
    const conn = welcomed(relay).find((c) => c.deviceId === deviceId)!;
    expect(conn.received[0]).toMatchObject({ type: "hello", deviceId, consent: "notify" });
    expect(typeof conn.received[0]!.version).toBe("string");
    expect(events.map((e) => e.type)).toContain("welcome");
    conn.ws.send(JSON.stringify({ type: "ping", t: 12345 }));
    await until(() => conn.received.some((m) => m.type === "pong"), "pong");
    expect(conn.received.find((m) => m.type === "pong")).toEqual({ type: "pong", t: 12345 });
  });

  test("a device whose key does not match its pin is refused and keeps retrying, never welcomed", async () => {
    const { stateDir, deviceId } = await enrolled(relay);
    const stranger = await enrolled(relay);
    relay.devices.set(deviceId, relay.devices.get(stranger.deviceId)!); // the relay pins another key
    const { agent, events } = await agentFor(stateDir);
    const refused = () =>
      relay.controls.filter((c) => c.received[0]?.deviceId === deviceId && !c.welcomed && c.closed !== null);
    await until(() => refused().length >= 2, "two refusals");
    expect(refused()[0]!.closed).toEqual({ code: 4401, reason: "device refused" });
    expect(agent.status().connected).toBe(false);
    expect(relay.controls.some((c) => c.deviceId === deviceId)).toBe(false);
    expect(events.some((e) => e.type === "disconnected" && e.reason === "device refused")).toBe(true);
  });

  test("the relay closing the control socket: the agent reconnects with back-off and is welcomed again", async () => {
    const { stateDir, deviceId } = await enrolled(relay);
    // The top of each ceiling: 19 ms after a reset, 39 ms had the back-off not been reset by the welcome.
    const { agent, events } = await agentFor(stateDir, { backoff: { ...FAST_BACKOFF, random: () => 0.99 } });
    const mine = () => welcomed(relay).filter((c) => c.deviceId === deviceId);
    await until(() => mine().length === 1, "first welcome");
    mine()[0]!.ws.close(4000, "relay restarting");
    await until(() => mine().length === 2 && agent.status().connected, "second welcome");
    mine()[1]!.ws.close(4000, "relay restarting");
    await until(() => mine().length === 3 && agent.status().connected, "third welcome");
    const drops = events.filter((e) => e.type === "disconnected");
    expect(drops.length).toBe(2);
    // Reset after each welcome: every delay is within the first ceiling.
    expect(drops.map((d) => (d.type === "disconnected" ? d.retryInMs : -1))).toEqual([19, 19]);
  });

  test("a silent relay (no ping within the heartbeat misses) is dropped and reconnected", async () => {
    const { stateDir, deviceId } = await enrolled(relay);
    relay.heartbeatSeconds = 0.05; // 3 misses: 150 ms of silence
    try {
      const { agent } = await agentFor(stateDir);
      const mine = () => welcomed(relay).filter((c) => c.deviceId === deviceId);
      await until(() => mine().length >= 2, "reconnect after silence");
      await until(() => mine()[0]!.closed !== null, "server saw the close");
      expect(mine()[0]!.closed?.code).toBe(AGENT_CLOSE.Timeout);
      await agent.stop();
    } finally {
      relay.heartbeatSeconds = 30;
    }
  });

  test("a relay presenting another certificate than the pin is never connected to", async () => {
    const { stateDir } = await enrolled(relay);
    const impostor = await startFakeRelay();
    // The identity points at the impostor's port: same host, another certificate.
    const id = (await loadIdentity(stateDir))!;
    saveIdentity(stateDir, { ...id, relayUrl: impostor.url });
    const { agent, events } = await agentFor(stateDir);
    await until(() => events.filter((e) => e.type === "disconnected").length >= 2, "two refusals");
    expect(impostor.controls.length).toBe(0);
    expect(agent.status().connected).toBe(false);
    const drop = events.find((e) => e.type === "disconnected");
    expect(drop && drop.type === "disconnected" && drop.reason).toContain("does not match the pinned");
    await impostor.stop();
  });

  test("stop() closes the control connection and stops reconnecting", async () => {
    const { stateDir, deviceId } = await enrolled(relay);
    const { agent, events } = await agentFor(stateDir);
    await until(() => agent.status().connected, "welcome");
    await agent.stop();
    const mine = relay.controls.filter((c) => c.deviceId === deviceId);
    await until(() => mine[0]!.closed !== null, "server saw the close");
    expect(mine[0]!.closed).toEqual({ code: 1000, reason: "agent stopping" });
    expect(agent.status().connected).toBe(false);
    expect(events.at(-1)).toEqual({ type: "stopped" });
    await sleep(150); // several back-off ceilings: nothing may come back
    expect(relay.controls.filter((c) => c.deviceId === deviceId).length).toBe(1);
  });
});

describe("sessions", () => {
  // The real-Xvnc tests below skip only outside CI, loudly: requirePeer() throws when CI=true.
  const havePeers = requirePeer(...XVNC_PEERS);
  let relay: FakeRelay;
  let xvnc: Xvnc;
  const VNC_PASSWORD = "agentpw1";
  beforeAll(async () => {
    relay = await startFakeRelay();
    if (havePeers) {
      xvnc = await startXvnc({ width: 320, height: 200, password: VNC_PASSWORD, desktopName: "agent-xvnc" });
    }
    secrets.push(VNC_PASSWORD);
  }, 20_000);

  /** The relay's half of the RFB handshake on a data connection: the agent must offer exactly None. */
  async function relayHandshake(conn: DataConn) {
    const read = dataReader(conn);
    expect(new TextDecoder().decode(await read(12, "version"))).toBe("RFB 003.008\n");
    conn.ws.send(new TextEncoder().encode("RFB 003.008\n"));
    expect([...(await read(2, "security list"))]).toEqual([1, 1]); // one type: None
    conn.ws.send(Uint8Array.of(1)); // choose None
    expect([...(await read(4, "SecurityResult"))]).toEqual([0, 0, 0, 0]);
    conn.ws.send(Uint8Array.of(1)); // ClientInit, shared
    const init = await read(24, "ServerInit");
    const view = new DataView(init.buffer, init.byteOffset);
    const name = new TextDecoder().decode(await read(view.getUint32(20), "desktop name"));
    return { width: view.getUint16(0), height: view.getUint16(2), name };
  }

  async function bridgedSession(sessionId: string) {
    const { stateDir, deviceId } = await enrolled(relay);
    const password = new TextEncoder().encode(VNC_PASSWORD);
    const { agent, events } = await agentFor(stateDir, {
      vnc: { host: xvnc.host, port: xvnc.port },
      vncPassword: password,
    });
    await until(() => agent.status().connected, "welcome");
    const conn = welcomed(relay).find((c) => c.deviceId === deviceId)!;
    const token = requestSession(relay, conn, sessionId);
    secrets.push(token);
    await until(() => relay.data.some((d) => d.sessionId === sessionId), "data channel");
    const data = relay.data.find((d) => d.sessionId === sessionId)!;
    return { agent, events, conn, data, token };
  }

  test.skipIf(!havePeers)(
    "consent none: a data channel to a real Xvnc with a VNC password; the relay sees only None",
    async () => {
      const { agent, conn, data, token, events } = await bridgedSession("sess-none");
      expect(conn.received.find((m) => m.type === "consent")).toEqual({
        type: "consent",
        sessionId: "sess-none",
        granted: true,
        reason: "policy none",
      });
      expect(data.authorization).toBe(`Bearer ${token}`);
      const init = await relayHandshake(data);
      expect(init).toEqual({ width: 320, height: 200, name: "agent-xvnc" });
      await until(() => events.some((e) => e.type === "session-started"), "session-started");
      expect(agent.status().sessions).toEqual(["sess-none"]);
      expect(relay.dataRefused).toBe(0);
    },
    20_000,
  );

  test.skipIf(!havePeers)(
    "endSession(): EndMsg by device-user, then the data channel closes",
    async () => {
      const { agent, conn, data } = await bridgedSession("sess-end");
      await relayHandshake(data);
      expect(agent.endSession("no-such-session")).toEqual([]);
      expect(agent.endSession()).toEqual(["sess-end"]);
      await until(() => conn.received.some((m) => m.type === "end"), "EndMsg");
      expect(conn.received.find((m) => m.type === "end")).toEqual({
        type: "end",
        sessionId: "sess-end",
        by: "device-user",
        reason: "ended by the device user",
      });
      await until(() => data.closed !== null, "data channel closed");
      expect(data.closed!.reason).toBe("ended by the device user");
      expect(agent.status().sessions).toEqual([]);
    },
    20_000,
  );

  test.skipIf(!havePeers)(
    "the relay's EndMsg closes the data channel; no EndMsg comes back",
    async () => {
      const { agent, conn, data, events } = await bridgedSession("sess-relay-end");
      await relayHandshake(data);
      conn.ws.send(
        JSON.stringify({ type: "end", sessionId: "sess-relay-end", by: "viewer", reason: "viewer left" }),
      );
      await until(() => data.closed !== null, "data channel closed");
      expect(agent.status().sessions).toEqual([]);
      expect(events).toContainEqual({
        type: "session-ended",
        sessionId: "sess-relay-end",
        by: "viewer",
        reason: "viewer left",
      });
      conn.ws.send(JSON.stringify({ type: "ping", t: 1 }));
      await until(() => conn.received.some((m) => m.type === "pong"), "pong");
      expect(conn.received.some((m) => m.type === "end")).toBe(false);
    },
    20_000,
  );

  test.skipIf(!havePeers)(
    "a VNC password the device's server refuses: the relay gets EndMsg and no RFB byte",
    async () => {
      const { stateDir, deviceId } = await enrolled(relay);
      const { agent } = await agentFor(stateDir, {
        vnc: { host: xvnc.host, port: xvnc.port },
        vncPassword: new TextEncoder().encode("wrongpw!"),
      });
      await until(() => agent.status().connected, "welcome");
      const conn = welcomed(relay).find((c) => c.deviceId === deviceId)!;
      secrets.push(requestSession(relay, conn, "sess-badpw"));
      await until(() => conn.received.some((m) => m.type === "end"), "EndMsg");
      expect(conn.received.find((m) => m.type === "end")).toMatchObject({
        sessionId: "sess-badpw",
        by: "agent",
        reason: "authentication failed",
      });
      const data = relay.data.find((d) => d.sessionId === "sess-badpw")!;
      await until(() => data.closed !== null, "data channel closed");
      expect(data.buf.length).toBe(0);
    },
    20_000,
  );

  test("consent ask with /bin/false: refused, and no data channel is opened", async () => {
    const { stateDir, deviceId } = await enrolled(relay);
    const { agent } = await agentFor(stateDir, { consent: "ask", consentCommand: "/bin/false" });
    await until(() => agent.status().connected, "welcome");
    const conn = welcomed(relay).find((c) => c.deviceId === deviceId)!;
    secrets.push(requestSession(relay, conn, "sess-ask"));
    await until(() => conn.received.some((m) => m.type === "consent"), "ConsentMsg");
    expect(conn.received.find((m) => m.type === "consent")).toEqual({
      type: "consent",
      sessionId: "sess-ask",
      granted: false,
      reason: "user refused",
    });
    await sleep(200); // time enough to open a data channel, were one opened
    expect(relay.data.some((d) => d.sessionId === "sess-ask")).toBe(false);
    expect(relay.dataRefused).toBe(0);
    expect(agent.status().sessions).toEqual([]);
  });

  test("a malformed session request is refused; one with a header-breaking token too", async () => {
    const { stateDir, deviceId } = await enrolled(relay);
    const { agent } = await agentFor(stateDir);
    await until(() => agent.status().connected, "welcome");
    const conn = welcomed(relay).find((c) => c.deviceId === deviceId)!;
    conn.ws.send(
      JSON.stringify({
        type: "session",
        sessionId: "sess-crlf",
        requester: { name: "x", role: "admin" },
        viewOnly: true,
        dataToken: "abc\r\nX-Injected: 1",
      }),
    );
    await until(() => conn.received.some((m) => m.type === "consent"), "ConsentMsg");
    expect(conn.received.find((m) => m.type === "consent")).toEqual({
      type: "consent",
      sessionId: "sess-crlf",
      granted: false,
      reason: "malformed request",
    });
    expect(agent.status().connected).toBe(true);
  });

  test("no token, data token or VNC password ever reaches the log", () => {
    expect(secrets.length).toBeGreaterThan(3);
    const all = logLines.join("");
    expect(all.length).toBeGreaterThan(0);
    for (const s of secrets) expect(all.includes(s)).toBe(false);
  });
});
