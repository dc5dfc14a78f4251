// Direct mode through the whole relay: a device enrolled with the address its agent listens on (TLS 1.3 with
// a certificate of the device key), a real Xvnc with a VNC password behind it, a session opened through the
// API and watched through `connect`: the relay dials the agent, checks the key against its pin, signs its
// request; our client's picture equals the X display exactly, vncsnapshot's a direct vncsnapshot.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DirectAgentHandle, startDirectAgent } from "../../relay/agent/direct.ts";
import { enrollAgent } from "../../relay/agent/enroll.ts";
import { directOpener } from "../../relay/connect/direct.ts";
import { startConnectProxy } from "../../relay/connect/proxy.ts";
import { openWsChannel } from "../../relay/connect/ws-client.ts";
import { Encoding } from "../../relay/rfb/constants.ts";
import { type RunningServer, startServer } from "../../relay/serve/server.ts";
import { connectClient } from "../helpers/rfb-peer.ts";
import { compareImages, describeStats, EXACT } from "../peers/images.ts";
import {
  captureX,
  freePort,
  killAll,
  PAINT_PEERS,
  paint,
  requirePeer,
  SNAPSHOT_PEERS,
  startXvnc,
  VNCSNAPSHOT_TOLERANCE,
  vncsnapshot,
  XVNC_PEERS,
  type Xvnc,
} from "../peers/rig.ts";

const ok = requirePeer(...XVNC_PEERS, ...PAINT_PEERS, ...SNAPSHOT_PEERS);
const ADMIN = "direct-admin-pw";
const VNC_PASSWORD = "directpw";
let relay: RunningServer;
let xvnc: Xvnc;
let agent: DirectAgentHandle;
let token = "";
let deviceId = "";

async function api(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${relay.url}${path}`, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    tls: { ca: relay.tls.certPem },
  });
  return (await res.json()) as Record<string, unknown>;
}

async function watch() {
  const s = await api("POST", `/api/devices/${deviceId}/sessions`, { audience: "native" });
  const wsUrl = s.wsUrl as string;
  return startConnectProxy({ openRelay: () => openWsChannel(wsUrl, { caPem: relay.tls.certPem }) });
}

// Skips only outside CI, loudly: requirePeer() throws when CI=true, so in CI these tests always run.
describe.skipIf(!ok)("direct mode: relay → (TLS, pinned key) → agent → Xvnc", () => {
  beforeAll(async () => {
    xvnc = await startXvnc({ width: 640, height: 400, password: VNC_PASSWORD });
    await paint(xvnc, { pattern: "test" });
    relay = await startServer({
      listen: "127.0.0.1:0",
      dataDir: mkdtempSync(join(tmpdir(), "shadowrelay-direct-")),
      adminPassword: ADMIN,
    });
    token = (await api("POST", "/api/login", { name: "admin", password: ADMIN })).token as string;
    const enrollment = await api("POST", "/api/enrollments", { name: "direct-pc" });
    const stateDir = mkdtempSync(join(tmpdir(), "shadowrelay-direct-agent-"));
    const port = await freePort();
    const enrolled = await enrollAgent({
      relayUrl: relay.url,
      token: enrollment.token as string,
      stateDir,
      relayFingerprint: relay.tls.certSha256Hex,
      address: `127.0.0.1:${port}`,
    });
    deviceId = enrolled.device.id;
    agent = await startDirectAgent({
      stateDir,
      listen: `127.0.0.1:${port}`,
      vnc: { host: "127.0.0.1", port: xvnc.port },
      vncPassword: new TextEncoder().encode(VNC_PASSWORD),
      consent: "none",
    });
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    await relay?.stop();
    await xvnc?.stop();
    await killAll();
  });

  test("the device is listed as direct and online; our client through connect sees the X display exactly", async () => {
    const devices = (await api("GET", "/api/devices")) as unknown as {
      id: string;
      mode: string;
      online: boolean;
    }[];
    expect(devices.find((d) => d.id === deviceId)).toMatchObject({ mode: "direct", online: true });
    const proxy = await watch();
    const c = await connectClient(proxy.port, {
      password: proxy.password,
      encodings: [Encoding.ZRLE, Encoding.Raw],
    });
    await c.until(() => c.client.ready, "handshake");
    await c.update(false);
    const fb = c.client.fb!;
    const rgba = fb.data.slice();
    for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255;
    const exact = compareImages({ width: fb.width, height: fb.height, rgba }, await captureX(xvnc), EXACT);
    expect({ ok: exact.ok, stats: describeStats(exact) }).toEqual({ ok: true, stats: expect.any(String) });
    c.close();
    await proxy.done;
  }, 60_000);

  test("vncsnapshot through the relay equals a direct vncsnapshot; the session start is audited with consent", async () => {
    const direct = await vncsnapshot(xvnc);
    const proxy = await watch();
    const relayed = await vncsnapshot(proxy.port, {
      password: proxy.password,
      encodings: "zrle hextile raw",
    });
    const stats = compareImages(relayed, direct, VNCSNAPSHOT_TOLERANCE);
    expect({ ok: stats.ok, stats: describeStats(stats) }).toEqual({ ok: true, stats: expect.any(String) });
    await proxy.done;
    const audit = JSON.stringify(await api("GET", "/api/audit?kind=session.start&limit=10"));
    expect(audit).toContain(deviceId);
    expect(audit).toContain('"consent":"granted"');
    expect(audit).not.toContain(VNC_PASSWORD);
  }, 60_000);

  test("connect --direct: the viewer's machine dials the device with a relay-signed grant; the relay carries no bytes", async () => {
    const s = await api("POST", `/api/devices/${deviceId}/sessions`, { audience: "native" });
    const proxy = startConnectProxy({
      openRelay: directOpener({
        relayUrl: relay.url,
        sessionId: s.id as string,
        ticket: s.ticket as string,
        caPem: relay.tls.certPem,
      }),
    });
    const c = await connectClient(proxy.port, {
      password: proxy.password,
      encodings: [Encoding.ZRLE, Encoding.Raw],
    });
    await c.until(() => c.client.ready, "handshake");
    await c.update(false);
    const fb = c.client.fb!;
    const rgba = fb.data.slice();
    for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255;
    const exact = compareImages({ width: fb.width, height: fb.height, rgba }, await captureX(xvnc), EXACT);
    expect({ ok: exact.ok, stats: describeStats(exact) }).toEqual({ ok: true, stats: expect.any(String) });
    c.close();
    await proxy.done;
    const session = await api("GET", `/api/sessions/${s.id}`);
    expect(session).toMatchObject({ state: "ended", bytesFromDevice: 0, bytesToDevice: 0 });
    expect(JSON.stringify(await api("GET", "/api/audit?kind=session.start&limit=10"))).toContain(
      "direct-viewer",
    );
  }, 60_000);
});
