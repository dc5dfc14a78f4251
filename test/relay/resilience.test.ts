// The relay when things go wrong, with real peers on loopback: the device's VNC server dying mid-session
// (the viewer is closed cleanly, the session ends with a reason in its record and the audit); the relay
// killed and started again on the same port and data directory (the agent reconnects with back-off, its pin
// still holds, and the device can be shadowed again, pixel for pixel); an agent claiming an enrolled device
// while signing with another key (closed with 4401, audited as device.refused, the real agent stays
// online); and two viewers racing to redeem one ticket over real WebSockets (exactly one gets RFB bytes).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type AgentEvent, type AgentHandle, startAgent } from "../../relay/agent/agent.ts";
import { enrollAgent } from "../../relay/agent/enroll.ts";
import { generateDeviceKeys, signProof } from "../../relay/agent/identity.ts";
import { startConnectProxy } from "../../relay/connect/proxy.ts";
import { openWsChannel } from "../../relay/connect/ws-client.ts";
import { HUB_CLOSE } from "../../relay/gateway/hub.ts";
import type { HelloMsg } from "../../relay/gateway/protocol.ts";
import { startDemoDevice } from "../../relay/demo/server.ts";
import { Encoding } from "../../relay/rfb/constants.ts";
import { type RunningServer, startServer } from "../../relay/serve/server.ts";
import { connectClient } from "../helpers/rfb-peer.ts";
import { compareImages, describeStats, EXACT, type RgbaImage } from "../peers/images.ts";
import {
  captureX,
  freePort,
  killAll,
  makeTempDir,
  PAINT_PEERS,
  paint,
  requirePeer,
  startXvnc,
  XVNC_PEERS,
  type Xvnc,
} from "../peers/rig.ts";

/** Bounds of this file's waits and the agent's back-off here (small, so a restart is seen within a second). */
export const RESILIENCE_DEFAULTS = {
  /** Until a device is online (first start, and again after the relay restarted), ms. @default 10000 */
  onlineMs: 10_000,
  /** Until a viewer's connection is closed after the device dropped, ms. @default 10000 */
  viewerClosedMs: 10_000,
  /** Until a session's record says ended, ms. @default 5000 */
  sessionEndedMs: 5_000,
  /** Until a WebSocket has either received its first bytes or been refused, ms. @default 10000 */
  wsSettleMs: 10_000,
  /** How long the relay stays down in the restart test: several of the agent's back-off delays, ms. @default 1500 */
  relayDownMs: 1_500,
  /** The agent's reconnect back-off in these tests. */
  backoff: { baseMs: 100, capMs: 800 },
};

const ok = requirePeer(...XVNC_PEERS, ...PAINT_PEERS);
const ADMIN = "resilience-admin-pw";
const agents: AgentHandle[] = [];
const relays: RunningServer[] = [];

// biome-ignore lint/suspicious/noExplicitAny: response bodies of many shapes, read only by assertions
type Json = any;

/** An admin's view of one relay's HTTP API. */
class Api {
  token = "";
  constructor(readonly relay: RunningServer) {}

  async call(method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
    const res = await fetch(`${this.relay.url}${path}`, {
      method,
      headers: {
        "content-type": "application/json",
        ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      tls: { ca: this.relay.tls.certPem },
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : null };
  }

  static async login(relay: RunningServer): Promise<Api> {
    const api = new Api(relay);
    const r = await api.call("POST", "/api/login", { name: "admin", password: ADMIN });
    expect(r.status).toBe(200);
    api.token = r.json.token;
    return api;
  }

  async waitOnline(deviceId: string): Promise<void> {
    for (const deadline = Date.now() + RESILIENCE_DEFAULTS.onlineMs; ; ) {
      const devices = (await this.call("GET", "/api/devices")).json as { id: string; online: boolean }[];
      if (devices.find((d) => d.id === deviceId)?.online) return;
      if (Date.now() > deadline) throw new Error(`device ${deviceId} is not online on ${this.relay.url}`);
      await Bun.sleep(50);
    }
  }

  async waitEnded(sessionId: string): Promise<Json> {
    for (const deadline = Date.now() + RESILIENCE_DEFAULTS.sessionEndedMs; ; ) {
      const s = (await this.call("GET", `/api/sessions/${sessionId}`)).json;
      if (s.state === "ended" || Date.now() > deadline) return s;
      await Bun.sleep(50);
    }
  }

  /** Audit records of one kind, newest first. */
  async audit(kind: string): Promise<{ kind: string; actor: string; payload: Json }[]> {
    return (await this.call("GET", `/api/audit?kind=${kind}&limit=1000`)).json;
  }

  /** A native session on a device, with the connect proxy in-process in front of it. */
  async nativeSession(deviceId: string) {
    const s = await this.call("POST", `/api/devices/${deviceId}/sessions`, { audience: "native" });
    expect(s.status).toBe(201);
    const wsUrl: string = s.json.wsUrl;
    const caPem = this.relay.tls.certPem;
    const proxy = startConnectProxy({ openRelay: () => openWsChannel(wsUrl, { caPem }) });
    return { id: s.json.id as string, wsUrl, proxy };
  }
}

/** Enrolls a device on `api`'s relay and starts its agent in-process; resolves once it is online. */
async function enrollAndStart(
  api: Api,
  name: string,
  vnc: { host: string; port: number },
  onEvent?: (e: AgentEvent) => void,
): Promise<{ id: string; agent: AgentHandle }> {
  const enrollment = await api.call("POST", "/api/enrollments", { name });
  expect(enrollment.status).toBe(201);
  const stateDir = makeTempDir("shadowrelay-resilience-agent-");
  const enrolled = await enrollAgent({
    relayUrl: api.relay.url,
    token: enrollment.json.token,
    stateDir,
    relayFingerprint: api.relay.tls.certSha256Hex,
  });
  const agent = await startAgent({
    stateDir,
    vnc,
    consent: "none",
    backoff: RESILIENCE_DEFAULTS.backoff,
    ...(onEvent ? { onEvent } : {}),
  });
  agents.push(agent);
  await api.waitOnline(enrolled.device.id);
  return { id: enrolled.device.id, agent };
}

/** Our RFB client through `connect` shows exactly what the X display shows. */
async function shadowShows(api: Api, deviceId: string, xvnc: Xvnc): Promise<string> {
  const s = await api.nativeSession(deviceId);
  const c = await connectClient(s.proxy.port, {
    password: s.proxy.password,
    encodings: [Encoding.ZRLE, Encoding.Raw],
  });
  try {
    await c.until(() => c.client.ready, "handshake");
    await c.update(false);
    const fb = c.client.fb!;
    const got: RgbaImage = { width: fb.width, height: fb.height, rgba: fb.data.slice() };
    for (let i = 3; i < got.rgba.length; i += 4) got.rgba[i] = 255;
    const stats = compareImages(got, await captureX(xvnc), EXACT);
    expect({ ok: stats.ok, stats: describeStats(stats) }).toEqual({ ok: true, stats: expect.any(String) });
  } finally {
    c.close();
    await s.proxy.done;
  }
  return s.id;
}

afterAll(async () => {
  for (const a of agents) await a.stop();
  for (const r of relays) await r.stop();
  await killAll();
});

// Skips only outside CI, loudly: requirePeer() throws when CI=true, so in CI these tests always run.
describe.skipIf(!ok)("resilience", () => {
  let relay: RunningServer;
  let api: Api;

  beforeAll(async () => {
    relay = await startServer({
      listen: "127.0.0.1:0",
      dataDir: makeTempDir("shadowrelay-resilience-"),
      adminPassword: ADMIN,
      demo: {
        start: () => startDemoDevice({ host: "127.0.0.1", port: 0, fps: 0 }),
      },
    });
    relays.push(relay);
    api = await Api.login(relay);
  });

  test("the device's VNC server dies mid-session: the viewer is closed cleanly, the end is recorded and audited", async () => {
    const xvnc = await startXvnc({ width: 320, height: 200 });
    await paint(xvnc, { solid: "#c03070" });
    const { id } = await enrollAndStart(api, "dropper", { host: "127.0.0.1", port: xvnc.port });
    const s = await api.nativeSession(id);
    // Pixel encodings only: with ExtendedDesktopSize, Xvnc's first update carries nothing but that pseudo-rect.
    const c = await connectClient(s.proxy.port, {
      password: s.proxy.password,
      encodings: [Encoding.ZRLE, Encoding.Raw],
    });
    await c.until(() => c.client.ready, "handshake");
    await c.update(false);
    expect(c.client.fb!.data.subarray(0, 3)).toEqual(new Uint8Array([0xc0, 0x30, 0x70]));
    expect((await api.call("GET", `/api/sessions/${s.id}`)).json.state).toBe("active");

    await xvnc.stop();
    await c.until(() => c.closed, "the viewer to be closed", RESILIENCE_DEFAULTS.viewerClosedMs);
    expect(c.error).toBeNull(); // closed, not broken mid-message
    const result = await s.proxy.done;
    expect(result.outcome).toBe("completed");
    expect(result.reason.length).toBeGreaterThan(0);

    const session = await api.waitEnded(s.id);
    expect(session.state).toBe("ended");
    expect(typeof session.endReason).toBe("string");
    expect(session.endReason.length).toBeGreaterThan(0);
    expect(session.bytesFromDevice).toBeGreaterThan(0);
    const end = (await api.audit("session.end")).find((r) => r.payload.session === s.id);
    expect(end?.payload).toMatchObject({ device: id, reason: session.endReason });
    expect(end?.actor).toBe(session.endedBy);
    // Only the session went: the agent's control connection is still up.
    await api.waitOnline(id);
  }, 60_000);

  test("an agent claiming an enrolled device but signing with another key is closed with 4401 and audited", async () => {
    // The real agent for the device is online (its VNC server is the demo device; it is never reached here).
    const victim = await enrollAndStart(api, "victim", relay.demo!);
    const otherKey = await generateDeviceKeys();
    const refusedBefore = (await api.audit("device.refused")).length;

    const BunWebSocket = WebSocket as unknown as new (url: string, o: Bun.WebSocketOptions) => WebSocket;
    const ws = new BunWebSocket(`${relay.url.replace(/^https/, "wss")}/ws/agent`, {
      tls: { ca: relay.tls.certPem },
    });
    const received: string[] = [];
    const closed = new Promise<{ code: number; reason: string }>((resolve) => {
      ws.onclose = (e) => resolve({ code: e.code, reason: e.reason });
    });
    ws.onmessage = async (e) => {
      received.push(String(e.data));
      const m = JSON.parse(String(e.data)) as { type: string; nonce?: string };
      if (m.type !== "challenge" || m.nonce === undefined) return;
      const hello: HelloMsg = {
        type: "hello",
        deviceId: victim.id,
        signature: await signProof(otherKey, m.nonce, victim.id),
        consent: "none",
        version: "0.0.0-impostor",
      };
      ws.send(JSON.stringify(hello));
    };
    const close = await Promise.race([
      closed,
      Bun.sleep(RESILIENCE_DEFAULTS.wsSettleMs).then(() => ({ code: -1, reason: "not closed in time" })),
    ]);
    expect(close).toEqual({ code: HUB_CLOSE.REFUSED.code, reason: HUB_CLOSE.REFUSED.reason });
    expect(close.code).toBe(4401);
    // It got the challenge and nothing after it: no welcome, no session request.
    expect(received.map((t) => JSON.parse(t).type)).toEqual(["challenge"]);

    const refused = await api.audit("device.refused");
    expect(refused.length).toBe(refusedBefore + 1);
    expect(refused[0]?.payload).toMatchObject({ deviceId: victim.id, reason: "bad-signature" });
    // The impostor displaced nothing: the device's own agent is still the online one.
    expect(victim.agent.status().connected).toBe(true);
    await api.waitOnline(victim.id);
  }, 60_000);

  test("two concurrent redemptions of one ticket over real WebSockets: exactly one gets RFB bytes", async () => {
    const s = await api.call("POST", "/api/devices/demo/sessions", { audience: "native" });
    expect(s.status).toBe(201);
    const refusedBefore = (await api.audit("ticket.refused")).length;
    const BunWebSocket = WebSocket as unknown as new (url: string, o: Bun.WebSocketOptions) => WebSocket;
    const race = () =>
      new Promise<{ bytes: Uint8Array; closed: boolean; socket: WebSocket }>((resolve) => {
        const ws = new BunWebSocket(s.json.wsUrl, { tls: { ca: relay.tls.certPem } });
        ws.binaryType = "arraybuffer";
        let bytes = new Uint8Array(0);
        const settle = (closed: boolean) => resolve({ bytes, closed, socket: ws });
        const timer = setTimeout(() => settle(false), RESILIENCE_DEFAULTS.wsSettleMs);
        ws.onmessage = (e) => {
          bytes = new Uint8Array(e.data as ArrayBuffer);
          clearTimeout(timer);
          settle(false);
        };
        ws.onclose = () => {
          clearTimeout(timer);
          settle(true);
        };
      });
    const results = await Promise.all([race(), race()]);
    const decoded = results.map((r) => new TextDecoder().decode(r.bytes.subarray(0, 12)));
    const winners = decoded.filter((t) => t === "RFB 003.008\n");
    const losers = results.filter((r) => r.bytes.length === 0 && r.closed);
    expect({ winners: winners.length, losers: losers.length }).toEqual({ winners: 1, losers: 1 });
    for (const r of results) r.socket.close();
    expect((await api.audit("ticket.refused")).length).toBe(refusedBefore + 1);
    expect((await api.waitEnded(s.json.id)).state).toBe("ended");
  }, 60_000);

  test("a graceful stop tells an online agent 'relay shutting down' (HUB_CLOSE.SHUTDOWN) before closing connections", async () => {
    const other = await startServer({
      listen: "127.0.0.1:0",
      dataDir: makeTempDir("shadowrelay-stop-"),
      adminPassword: ADMIN,
    });
    relays.push(other);
    const events: AgentEvent[] = [];
    // Its VNC server is never reached: no session is opened.
    const { agent } = await enrollAndStart(await Api.login(other), "stopper", relay.demo!, (e) =>
      events.push(e),
    );
    await other.stop();
    for (const deadline = Date.now() + RESILIENCE_DEFAULTS.onlineMs; agent.status().connected; ) {
      if (Date.now() > deadline) break;
      await Bun.sleep(20);
    }
    const firstDrop = events.find((e) => e.type === "disconnected");
    // The hub's SHUTDOWN close is what tells an agent the relay is going away on purpose; a transport cut
    // ("Server closed") looks like a network failure.
    expect(firstDrop?.type === "disconnected" ? firstDrop.reason : "no disconnect").toBe(
      HUB_CLOSE.SHUTDOWN.reason,
    );
  }, 60_000);

  test("the relay is stopped and started again on its port and data dir: the agent reconnects with back-off and the device can be shadowed", async () => {
    const xvnc = await startXvnc({ width: 400, height: 300 });
    await paint(xvnc, { pattern: "test" });
    const port = freePort();
    const dataDir = makeTempDir("shadowrelay-restart-");
    const first = await startServer({ listen: `127.0.0.1:${port}`, dataDir, adminPassword: ADMIN });
    relays.push(first);
    const firstApi = await Api.login(first);
    const events: AgentEvent[] = [];
    const { id } = await enrollAndStart(firstApi, "survivor", { host: "127.0.0.1", port: xvnc.port }, (e) =>
      events.push(e),
    );
    await shadowShows(firstApi, id, xvnc);
    const welcomesBefore = events.filter((e) => e.type === "welcome").length;
    expect(welcomesBefore).toBe(1);

    await first.stop();
    await Bun.sleep(RESILIENCE_DEFAULTS.relayDownMs);
    // While the relay was down the agent kept trying, spaced by its back-off (never above the cap).
    const down = events.slice(events.findIndex((e) => e.type === "disconnected"));
    const retries = down.filter((e) => e.type === "disconnected").map((e) => e.retryInMs);
    expect(retries.length).toBeGreaterThanOrEqual(2);
    expect(retries.every((ms) => ms >= 0 && ms <= RESILIENCE_DEFAULTS.backoff.capMs)).toBe(true);
    expect(down.filter((e) => e.type === "connecting").length).toBeGreaterThanOrEqual(2);
    expect(events.filter((e) => e.type === "welcome").length).toBe(1);

    const second = await startServer({ listen: `127.0.0.1:${port}`, dataDir });
    relays.push(second);
    // The same certificate from the data dir, so the agent's pin holds; the admin was kept, not recreated.
    expect(second.tls.generated).toBe(false);
    expect(second.tls.certSha256Hex).toBe(first.tls.certSha256Hex);
    expect(second.adminPassword).toBeNull();
    const secondApi = await Api.login(second);
    await secondApi.waitOnline(id);
    expect(events.filter((e) => e.type === "welcome").length).toBe(2);
    const sessionId = await shadowShows(secondApi, id, xvnc);
    expect((await secondApi.waitEnded(sessionId)).state).toBe("ended");
    // The audit chain spans both runs of the relay.
    expect((await secondApi.call("GET", "/api/audit/verify")).json.ok).toBe(true);
    await second.stop();
    await xvnc.stop();
  }, 60_000);
});
