// Direct mode end to end on loopback: a real Xvnc with a VNC password behind our direct agent (listening
// with TLS 1.3 on a certificate for the device's enrolled key), dialled by the relay side
// (openDirectSession) which checks that key against the device's pin and signs its request with the relay's
// TLS key — the key of the certificate the agent pinned. Our RfbClient over the returned channel sees the
// X display exactly. A device presenting another key gets no byte; requests signed by another key, stale
// or replayed get a refusal line and no RFB byte; consent refused is FORBIDDEN and audited.

import type { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { constants as cryptoConstants } from "node:crypto";
import { type DirectAgentEvent, type DirectAgentHandle, startDirectAgent } from "../../relay/agent/direct.ts";
import { generateDeviceKeys, saveIdentity } from "../../relay/agent/identity.ts";
import { saveRelayCertificate } from "../../relay/agent/relay-trust.ts";
import { AuditLog } from "../../relay/control/audit.ts";
import { openDatabase } from "../../relay/control/db.ts";
import { type Device, DeviceRegistry } from "../../relay/control/devices.ts";
import { ControlError } from "../../relay/control/errors.ts";
import {
  type DirectRequest,
  encodeLine,
  handshakeCompleted,
  importRelaySigningKey,
  openDirectSession,
  parseDirectAnswer,
  signDirectRequest,
} from "../../relay/gateway/direct.ts";
import { RfbClient } from "../../relay/rfb/client.ts";
import { Encoding } from "../../relay/rfb/constants.ts";
import { attach } from "../../relay/rfb/splice.ts";
import type { ByteChannel } from "../../relay/session/channel.ts";
import { generateSelfSigned, type SelfSigned } from "../../relay/util/x509.ts";
import { compareImages, describeStats, EXACT } from "../peers/images.ts";
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

const ok = requirePeer(...XVNC_PEERS, ...PAINT_PEERS);
const VNC_PASSWORD = "devicepw";
const REQUESTER = { name: "alice", role: "operator" } as const;

let xvnc: Xvnc;
let relayCert: SelfSigned;
let db: Database;
let devices: DeviceRegistry;
let audit: AuditLog;
const agents: DirectAgentHandle[] = [];
const fakes: { stop(closeActive?: boolean): void }[] = [];
let sessionCounter = 0;

interface DirectDevice {
  device: Device;
  agent: DirectAgentHandle;
  events: DirectAgentEvent[];
}

/** Enrols a device with an address (as `agent --enroll` would) and starts its direct agent there. */
async function directDevice(consent: "none" | "ask", consentCommand?: string): Promise<DirectDevice> {
  const keys = await generateDeviceKeys();
  const port = freePort();
  const { token } = devices.createEnrollment({ name: `direct-${port}`, createdBy: "admin" });
  const device = await devices.enroll(token, { spkiDer: keys.spki, address: `127.0.0.1:${port}` });
  expect(device.mode).toBe("direct");
  // What enroll.ts stores: the identity (relay URL and the relay certificate's pin) and that certificate.
  const stateDir = makeTempDir("shadowrelay-direct-agent-");
  saveIdentity(stateDir, {
    ...keys,
    deviceId: device.id,
    relayUrl: "https://127.0.0.1:9",
    relayCertSha256: relayCert.certSha256Hex,
  });
  saveRelayCertificate(stateDir, relayCert.certPem);
  const events: DirectAgentEvent[] = [];
  const agent = await startDirectAgent({
    stateDir,
    listen: `127.0.0.1:${port}`,
    vnc: { host: xvnc.host, port: xvnc.port },
    vncPassword: new TextEncoder().encode(VNC_PASSWORD),
    consent,
    ...(consentCommand ? { consentCommand } : {}),
    onEvent: (e) => events.push(e),
  });
  agents.push(agent);
  expect(agent.port).toBe(port);
  expect(agent.spkiSha256).toBe(device.spkiSha256);
  return { device, agent, events };
}

function target(device: Device): { id: string; address: string; spkiSha256: string } {
  return { id: device.id, address: device.address!, spkiSha256: device.spkiSha256 };
}

function nextSession(): string {
  sessionCounter++;
  return `direct-session-${sessionCounter}`;
}

function open(device: Device, o: { signerPem?: string; sessionId?: string } = {}): Promise<ByteChannel> {
  return openDirectSession({
    device: target(device),
    signer: { privateKeyPem: o.signerPem ?? relayCert.keyPem },
    sessionId: o.sessionId ?? nextSession(),
    requester: REQUESTER,
    viewOnly: false,
    audit: audit.record,
  });
}

async function until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await Bun.sleep(20);
  }
}

async function rejection(p: Promise<unknown>): Promise<ControlError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ControlError) return e;
    throw e;
  }
  throw new Error("expected a rejection");
}

/**
 * A raw TLS client: sends `bytes` after the handshake and collects everything until the peer closes, or
 * until `stopWhen` holds (then closes itself). No verification: only what the agent sends is looked at.
 */
async function rawExchange(
  port: number,
  bytes: Uint8Array,
  o: { stopWhen?: (got: Uint8Array) => boolean; secureOptions?: number; ms?: number } = {},
): Promise<{ got: Uint8Array; closedByPeer: boolean; handshake: boolean }> {
  const chunks: Uint8Array[] = [];
  let handshake = false;
  let closed = false;
  let closedByPeer = true;
  const all = (): Uint8Array => new Uint8Array(Buffer.concat(chunks));
  const sock = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    tls: { rejectUnauthorized: false, ...(o.secureOptions ? { secureOptions: o.secureOptions } : {}) },
    socket: {
      handshake(s, _ok, authorizationError) {
        handshake = handshakeCompleted(authorizationError);
        if (handshake) s.write(bytes);
      },
      data(s, d) {
        chunks.push(new Uint8Array(d));
        if (o.stopWhen?.(all())) {
          closedByPeer = false;
          s.end();
        }
      },
      close() {
        closed = true;
      },
      error() {},
    },
  }).catch(() => null);
  if (sock === null) return { got: new Uint8Array(0), closedByPeer: true, handshake: false };
  await until(() => closed, "the agent to close the raw connection", o.ms ?? 10_000).finally(() =>
    sock.end(),
  );
  return { got: all(), closedByPeer, handshake };
}

const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** The answer line and what followed it. */
function splitAnswer(got: Uint8Array): { answer: ReturnType<typeof parseDirectAnswer>; after: Uint8Array } {
  const nl = got.indexOf(0x0a);
  expect(nl).toBeGreaterThan(0);
  return { answer: parseDirectAnswer(text(got.subarray(0, nl))), after: got.subarray(nl + 1) };
}

async function signedRequest(
  device: Device,
  o: { issuedAt?: number; key?: CryptoKey } = {},
): Promise<DirectRequest> {
  const key = o.key ?? (await importRelaySigningKey(relayCert.keyPem));
  return signDirectRequest(
    key,
    device.id,
    { sessionId: nextSession(), requester: REQUESTER, viewOnly: true },
    o.issuedAt ?? Date.now(),
  );
}

// Skips only outside CI, loudly: requirePeer() throws when CI=true, so in CI these tests always run.
describe.skipIf(!ok)("direct mode: relay → TLS → direct agent → Xvnc", () => {
  beforeAll(async () => {
    xvnc = await startXvnc({ width: 640, height: 400, password: VNC_PASSWORD });
    await paint(xvnc, { pattern: "test" });
    relayCert = await generateSelfSigned({
      commonName: "shadowrelay-test-relay",
      ipAddresses: ["127.0.0.1"],
    });
    db = openDatabase(":memory:");
    devices = new DeviceRegistry(db);
    audit = new AuditLog(db);
  }, 60_000);

  afterAll(async () => {
    for (const a of agents) await a.stop();
    for (const f of fakes) f.stop(true);
    db?.close();
    await xvnc?.stop();
    await killAll();
  });

  test("our RfbClient through the direct agent sees exactly the X display; the device user ends it", async () => {
    const { device, agent, events } = await directDevice("none");
    const sessionId = nextSession();
    const ch = await open(device, { sessionId });
    let closedWith: string | null = null;
    let failure: unknown = null;
    const client = new RfbClient({ send: (b) => ch.send(b), encodings: [Encoding.Raw] });
    attach(ch, {
      onData: (b) => {
        try {
          client.feed(b);
        } catch (e) {
          failure = e;
          ch.close("client failed");
        }
      },
      onClose: (reason) => {
        closedWith = reason;
      },
    });
    await until(() => client.ready || failure !== null || closedWith !== null, "the RFB handshake");
    expect({ failure, closedWith, ready: client.ready }).toEqual({
      failure: null,
      closedWith: null,
      ready: true,
    });
    // The agent answered the VNC password itself: towards the relay the security type is None (1).
    expect(client.info?.securityType).toBe(1);
    client.requestUpdate(false);
    await until(() => client.updates > 0, "a full update");
    const fb = client.fb!;
    const rgba = fb.data.slice();
    for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255;
    const exact = compareImages({ width: fb.width, height: fb.height, rgba }, await captureX(xvnc), EXACT);
    expect({ ok: exact.ok, stats: describeStats(exact) }).toEqual({ ok: true, stats: expect.any(String) });

    const consent = audit.list({ kind: "session.consent" }).filter((r) => r.payload.session === sessionId);
    expect(consent.map((r) => [r.actor, r.payload.granted, r.payload.reason])).toEqual([
      [device.id, true, "policy none"],
    ]);
    expect(JSON.stringify(audit.list({ limit: 1000 }))).not.toContain(VNC_PASSWORD);
    expect(events.map((e) => e.type)).toEqual(["consent", "session-started"]);

    // The device user ends it: the relay's channel closes.
    expect(agent.endSession()).toEqual([sessionId]);
    await until(() => closedWith !== null, "the relay's channel to close");
    expect(agent.sessions()).toEqual([]);
    expect(events.at(-1)).toEqual({ type: "session-ended", sessionId, reason: "ended by the device user" });
  }, 60_000);

  test("a device presenting another key is refused before any byte is sent, and audited", async () => {
    const { device } = await directDevice("none");
    // An impostor at the device's address: a TLS server with a certificate for some other key.
    const impostorCert = await generateSelfSigned({ commonName: "impostor" });
    let received = 0;
    let accepted = 0;
    const impostor = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: impostorCert.certPem, key: impostorCert.keyPem },
      socket: {
        open() {
          accepted++;
        },
        // Present so that open fires at the TCP accept, whatever the client does after its handshake.
        handshake() {},
        data(_s, d) {
          received += d.byteLength;
        },
      },
    });
    fakes.push(impostor);
    const sessionId = nextSession();
    const e = await rejection(
      openDirectSession({
        device: { id: device.id, address: `127.0.0.1:${impostor.port}`, spkiSha256: device.spkiSha256 },
        signer: { privateKeyPem: relayCert.keyPem },
        sessionId,
        requester: REQUESTER,
        viewOnly: false,
        audit: audit.record,
      }),
    );
    expect([e.code, e.message]).toEqual(["FORBIDDEN", "device key mismatch"]);
    await Bun.sleep(200);
    expect(accepted).toBe(1);
    expect(received).toBe(0);
    const refused = audit.list({ kind: "device.refused" }).filter((r) => r.payload.session === sessionId);
    expect(
      refused.map((r) => [r.actor, r.payload.reason, r.payload.spkiSha256, r.payload.presentedSpkiSha256]),
    ).toEqual([[device.id, "key-mismatch", device.spkiSha256, impostorCert.spkiSha256Hex]]);
    // No consent was ever asked for that session.
    expect(audit.list({ kind: "session.consent" }).filter((r) => r.payload.session === sessionId)).toEqual(
      [],
    );
  }, 30_000);

  test("a request signed by another key is refused by the agent: a refusal line, no RFB byte", async () => {
    const { device, agent, events } = await directDevice("none");
    const stranger = await generateSelfSigned({ commonName: "not-the-relay" });
    const sessionId = nextSession();
    const e = await rejection(open(device, { signerPem: stranger.keyPem, sessionId }));
    expect(e.code).toBe("UNAVAILABLE");
    expect(e.message).toBe("the device refused the relay's request: bad-signature");
    expect(audit.list({ kind: "direct.refused" }).map((r) => r.payload.session)).toContain(sessionId);
    expect(
      events.filter((x) => x.type === "refused").map((x) => (x.type === "refused" ? x.reason : "")),
    ).toEqual(["bad-signature"]);

    // Byte level: exactly one answer line, then the agent closes; nothing RFB.
    const forged = await signedRequest(device, { key: await importRelaySigningKey(stranger.keyPem) });
    const raw = await rawExchange(agent.port, encodeLine(forged));
    expect(raw.closedByPeer).toBe(true);
    const { answer, after } = splitAnswer(raw.got);
    expect(answer).toEqual({
      type: "direct-answer",
      granted: false,
      reason: "bad-signature",
      by: "agent",
    });
    expect(after.byteLength).toBe(0);
    expect(text(raw.got)).not.toContain("RFB");

    // The relay's own signature no longer holds once a carrier changes what it covers.
    const genuine = await signedRequest(device);
    for (const tampered of [
      { ...genuine, viewOnly: !genuine.viewOnly },
      { ...genuine, requester: { name: "mallory", role: "admin" as const } },
      { ...genuine, sessionId: `${genuine.sessionId}x` },
      { ...genuine, issuedAt: genuine.issuedAt + 1 },
    ]) {
      const r = splitAnswer((await rawExchange(agent.port, encodeLine(tampered))).got);
      expect(r.answer).toMatchObject({ granted: false, reason: "bad-signature" });
      expect(r.after.byteLength).toBe(0);
    }

    // A request for another device, signed by the right key, is just as forged to this agent.
    const other = await directDevice("none");
    const forOther = await signedRequest(other.device);
    const crossed = splitAnswer((await rawExchange(agent.port, encodeLine(forOther))).got);
    expect(crossed.answer).toMatchObject({ granted: false, reason: "bad-signature" });
    expect(agent.sessions()).toEqual([]);
  }, 30_000);

  test("a replayed request is refused; so are stale and future-dated ones", async () => {
    const { device, agent } = await directDevice("none");
    const line = encodeLine(await signedRequest(device));
    // The first use is granted and the bridge starts: the VNC greeting from the agent's RFB server.
    const first = await rawExchange(agent.port, line, {
      stopWhen: (got) => text(got).includes("RFB 003.008\n"),
    });
    expect(first.closedByPeer).toBe(false);
    const granted = splitAnswer(first.got);
    expect(granted.answer).toEqual({
      type: "direct-answer",
      granted: true,
      reason: "policy none",
      by: "consent",
    });
    expect(text(granted.after)).toBe("RFB 003.008\n");

    const second = await rawExchange(agent.port, line);
    const replay = splitAnswer(second.got);
    expect(replay.answer).toMatchObject({ granted: false, reason: "replay", by: "agent" });
    expect(replay.after.byteLength).toBe(0);

    for (const [issuedAt, reason] of [
      [Date.now() - 61_000, "stale"],
      [Date.now() + 61_000, "stale"],
    ] as const) {
      const r = splitAnswer(
        (await rawExchange(agent.port, encodeLine(await signedRequest(device, { issuedAt })))).got,
      );
      expect(r.answer).toMatchObject({ granted: false, reason });
      expect(r.after.byteLength).toBe(0);
    }
    // Malformed and oversized lines: refused, nothing RFB.
    const junk = splitAnswer((await rawExchange(agent.port, new TextEncoder().encode("RFB 003.008\n"))).got);
    expect(junk.answer).toMatchObject({ granted: false, reason: "malformed" });
    const huge = await rawExchange(agent.port, new Uint8Array(16 * 1024).fill(0x41));
    expect(text(huge.got)).not.toContain("RFB");
    await until(() => agent.sessions().length === 0, "the granted session to end");
  }, 30_000);

  test("a TLS 1.2 client gets no connection", async () => {
    const { agent, events } = await directDevice("none");
    const raw = await rawExchange(agent.port, new TextEncoder().encode("hello\n"), {
      secureOptions: cryptoConstants.SSL_OP_NO_TLSv1_3,
    });
    expect(raw.handshake).toBe(false);
    expect(raw.got.byteLength).toBe(0);
    // The same client with TLS 1.3 allowed completes its handshake (and its junk line is refused).
    const tls13 = await rawExchange(agent.port, new TextEncoder().encode("hello\n"));
    expect(tls13.handshake).toBe(true);
    expect(splitAnswer(tls13.got).answer).toMatchObject({
      granted: false,
      reason: "malformed",
    });
    expect(events.map((e) => e.type)).toEqual(["refused"]);
  }, 30_000);

  test("consent asked and refused (/bin/false): FORBIDDEN, audited, no session", async () => {
    const { device, agent } = await directDevice("ask", "/bin/false");
    const sessionId = nextSession();
    const e = await rejection(open(device, { sessionId }));
    expect([e.code, e.message]).toEqual(["FORBIDDEN", "the device user refused: user refused"]);
    const consent = audit.list({ kind: "session.consent" }).filter((r) => r.payload.session === sessionId);
    expect(consent.map((r) => [r.payload.granted, r.payload.reason, r.payload.requester])).toEqual([
      [false, "user refused", "alice"],
    ]);
    expect(agent.sessions()).toEqual([]);
    // And the refusal reached the relay as a line, followed by no RFB byte.
    const raw = await rawExchange(agent.port, encodeLine(await signedRequest(device)));
    const r = splitAnswer(raw.got);
    expect(r.answer).toEqual({
      type: "direct-answer",
      granted: false,
      reason: "user refused",
      by: "consent",
    });
    expect(r.after.byteLength).toBe(0);
  }, 30_000);

  test("an unreachable device, a TLS 1.2 device end and a relay key that cannot sign are UNAVAILABLE", async () => {
    const { device } = await directDevice("none");
    const closed = freePort();
    const e = await rejection(
      openDirectSession({
        device: { ...target(device), address: `127.0.0.1:${closed}` },
        signer: { privateKeyPem: relayCert.keyPem },
        sessionId: nextSession(),
        requester: REQUESTER,
        viewOnly: false,
        audit: audit.record,
      }),
    );
    expect([e.code, e.message]).toEqual(["UNAVAILABLE", "cannot reach the device"]);

    // A device end that only speaks TLS 1.2: the handshake fails, which is not a key mismatch, and nothing
    // is sent.
    const oldTls = await generateSelfSigned({ commonName: "tls12-only" });
    let received = 0;
    const tls12 = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: oldTls.certPem, key: oldTls.keyPem, secureOptions: cryptoConstants.SSL_OP_NO_TLSv1_3 },
      socket: {
        data(_s, d) {
          received += d.byteLength;
        },
      },
    });
    fakes.push(tls12);
    const sessionId = nextSession();
    const old = await rejection(
      openDirectSession({
        device: { ...target(device), address: `127.0.0.1:${tls12.port}` },
        signer: { privateKeyPem: relayCert.keyPem },
        sessionId,
        requester: REQUESTER,
        viewOnly: false,
        audit: audit.record,
      }),
    );
    expect([old.code, old.message]).toEqual(["UNAVAILABLE", "cannot reach the device"]);
    expect(received).toBe(0);
    expect(audit.list({ kind: "device.refused" }).filter((r) => r.payload.session === sessionId)).toEqual([]);

    const rsa = (await crypto.subtle.generateKey(
      {
        name: "RSASSA-PKCS1-v1_5",
        modulusLength: 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: "SHA-256",
      },
      true,
      ["sign", "verify"],
    )) as CryptoKeyPair;
    const pkcs8 = Buffer.from(await crypto.subtle.exportKey("pkcs8", rsa.privateKey)).toString("base64");
    const rsaPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join("\n")}\n-----END PRIVATE KEY-----\n`;
    const bad = await rejection(open(device, { signerPem: rsaPem }));
    expect(bad.code).toBe("UNAVAILABLE");
    expect(bad.message).toContain("ECDSA P-256");
  }, 30_000);
});
