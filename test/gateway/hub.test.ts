// Tests for relay/gateway/hub.ts: the relay side of an agent's control connection (challenge, signed hello
// against the pin, welcome, heartbeats, protocol faults) and session requests (consent, single-use data
// tokens, the data channel, timeouts, ends either way). The agent is a fake in this file that signs with
// relay/agent/identity.ts over in-memory channels; timeouts are set to tens of milliseconds.

import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { generateDeviceKeys, type DeviceKeys, signProof } from "../../relay/agent/identity.ts";
import type { AuditFn } from "../../relay/control/audit.ts";
import { openDatabase } from "../../relay/control/db.ts";
import { DeviceRegistry } from "../../relay/control/devices.ts";
import { ControlError } from "../../relay/control/errors.ts";
import { GatewayHub, HUB_CLOSE, HUB_DEFAULTS, type HubOptions } from "../../relay/gateway/hub.ts";
import type { RelayToAgent, SessionRequestMsg } from "../../relay/gateway/protocol.ts";
import { type TextChannel, textChannelPair } from "../../relay/gateway/text-channel.ts";
import { type ByteChannel, channelPair } from "../../relay/session/channel.ts";
import { log } from "../../relay/util/log.ts";

const REMOTE = "192.0.2.7:40000";
const SESSION = "0123456789abcdef0123456789abcdef";
const SESSION_2 = "fedcba9876543210fedcba9876543210";
const REQUESTER = { name: "alice", role: "operator" } as const;
/** Upper bound on waiting for something that should happen within a few short timeouts. */
const WAIT_MS = 2000;

interface AuditEntry {
  kind: string;
  actor: string;
  payload: Record<string, unknown>;
}

interface Rig {
  hub: GatewayHub;
  devices: DeviceRegistry;
  audits: AuditEntry[];
}

const hubs: GatewayHub[] = [];
/** What the hub logged (JSON lines), kept off the test output. */
let logLines: string[] = [];
let restoreSink: ((line: string) => void) | undefined;

beforeAll(() => {
  restoreSink = log.setSink((line) => logLines.push(line));
});

afterAll(() => {
  if (restoreSink) log.setSink(restoreSink);
});

afterEach(() => {
  for (const hub of hubs.splice(0)) hub.close();
  logLines = [];
});

function rig(options: Partial<HubOptions> & { now?: () => number } = {}): Rig {
  const devices = new DeviceRegistry(openDatabase(":memory:"));
  const audits: AuditEntry[] = [];
  const audit: AuditFn = (kind, actor, payload = {}) => {
    audits.push({ kind, actor, payload });
  };
  const hub = new GatewayHub({ devices, audit, ...options });
  hubs.push(hub);
  return { hub, devices, audits };
}

async function enroll(devices: DeviceRegistry): Promise<{ deviceId: string; keys: DeviceKeys }> {
  const keys = await generateDeviceKeys();
  const { token } = devices.createEnrollment({ name: "kiosk", createdBy: "admin" });
  const device = await devices.enroll(token, { spkiDer: keys.spki });
  return { deviceId: device.id, keys };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(2);
  }
}

/** The device side of one control connection, plus the close code the hub used on its end. */
class FakeAgent {
  readonly inbox: RelayToAgent[] = [];
  closedWith: { code: number; reason: string } | null = null;
  peerClosed = false;
  /** Answer every ping (a live agent); off: a silent one. */
  autoPong = true;
  readonly #ch: TextChannel;

  constructor(rig: Rig) {
    const [relaySide, agentSide] = textChannelPair();
    const close = relaySide.close.bind(relaySide);
    relaySide.close = (code, reason) => {
      this.closedWith ??= { code, reason };
      close(code, reason);
    };
    this.#ch = agentSide;
    agentSide.onText = (t) => {
      const m = JSON.parse(t) as RelayToAgent;
      if (m.type === "ping" && this.autoPong) this.send({ type: "pong", t: m.t });
      else this.inbox.push(m);
    };
    agentSide.onClose = () => {
      this.peerClosed = true;
    };
    rig.hub.acceptAgent(relaySide, REMOTE);
  }

  send(msg: unknown): void {
    this.sendRaw(JSON.stringify(msg));
  }

  sendRaw(text: string): void {
    this.#ch.send(text);
  }

  /** The next message of `type` (messages before it are skipped). */
  async next<T extends RelayToAgent["type"]>(type: T): Promise<Extract<RelayToAgent, { type: T }>> {
    await until(() => this.inbox.some((m) => m.type === type), `a ${type} message`);
    const i = this.inbox.findIndex((m) => m.type === type);
    const [m] = this.inbox.splice(0, i + 1).slice(-1);
    return m as Extract<RelayToAgent, { type: T }>;
  }

  async closed(): Promise<{ code: number; reason: string }> {
    await until(() => this.closedWith !== null && this.peerClosed, "the hub to close the agent");
    return this.closedWith!;
  }

  /** challenge → hello signed with `keys` as `deviceId`. */
  async hello(keys: DeviceKeys, deviceId: string): Promise<void> {
    const { nonce } = await this.next("challenge");
    const signature = await signProof(keys, nonce, deviceId);
    this.send({ type: "hello", deviceId, signature, consent: "ask", version: "test-1" });
  }
}

/** An agent through challenge, hello and welcome. */
async function online(r: Rig, dev: { deviceId: string; keys: DeviceKeys }): Promise<FakeAgent> {
  const agent = new FakeAgent(r);
  await agent.hello(dev.keys, dev.deviceId);
  const welcome = await agent.next("welcome");
  expect(welcome.deviceId).toBe(dev.deviceId);
  return agent;
}

const kinds = (r: Rig, kind: string) => r.audits.filter((a) => a.kind === kind);

async function rejection(p: Promise<unknown>): Promise<ControlError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ControlError);
    return e as ControlError;
  }
  throw new Error("expected a rejection");
}

describe("control connection", () => {
  test("challenge, signed hello, welcome: online, audited, last seen recorded", async () => {
    const r = rig();
    const dev = await enroll(r.devices);
    const changes: [string, boolean][] = [];
    r.hub.onOnlineChange = (id, on) => changes.push([id, on]);
    expect(r.hub.isOnline(dev.deviceId)).toBe(false);

    const agent = new FakeAgent(r);
    const challenge = await agent.next("challenge");
    expect(challenge.nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
    agent.send({
      type: "hello",
      deviceId: dev.deviceId,
      signature: await signProof(dev.keys, challenge.nonce, dev.deviceId),
      consent: "notify",
      version: "test-1",
    });
    const welcome = await agent.next("welcome");
    expect(welcome).toEqual({
      type: "welcome",
      deviceId: dev.deviceId,
      heartbeatSeconds: HUB_DEFAULTS.heartbeatSeconds,
    });
    expect(r.hub.isOnline(dev.deviceId)).toBe(true);
    expect(r.hub.onlineCount()).toBe(1);
    expect(r.hub.agentInfo(dev.deviceId)).toMatchObject({
      remote: REMOTE,
      consent: "notify",
      version: "test-1",
    });
    expect(kinds(r, "device.online")).toEqual([
      {
        kind: "device.online",
        actor: dev.deviceId,
        payload: { deviceId: dev.deviceId, remote: REMOTE, consent: "notify", version: "test-1" },
      },
    ]);
    expect(r.devices.get(dev.deviceId)?.lastSeenAt).toBeNumber();
    expect(changes).toEqual([[dev.deviceId, true]]);
    expect(agent.closedWith).toBeNull();
  });

  test("a hello signed with another key is refused, audited with the remote address, and closed", async () => {
    const r = rig();
    const dev = await enroll(r.devices);
    const other = await generateDeviceKeys();
    const agent = new FakeAgent(r);
    await agent.hello(other, dev.deviceId);
    expect(await agent.closed()).toEqual(HUB_CLOSE.REFUSED);
    expect(r.hub.isOnline(dev.deviceId)).toBe(false);
    expect(kinds(r, "device.online")).toHaveLength(0);
    const refused = kinds(r, "device.refused");
    expect(refused).toHaveLength(1);
    expect(refused[0]!.payload).toMatchObject({
      deviceId: dev.deviceId,
      reason: "bad-signature",
      remote: REMOTE,
    });
  });

  test("a hello for a device that is not enrolled is refused and audited", async () => {
    const r = rig();
    const keys = await generateDeviceKeys();
    const agent = new FakeAgent(r);
    await agent.hello(keys, "00112233445566778899aabbccddeeff");
    expect(await agent.closed()).toEqual(HUB_CLOSE.REFUSED);
    expect(r.hub.onlineCount()).toBe(0);
    expect(kinds(r, "device.refused")[0]?.payload).toMatchObject({
      reason: "unknown-device",
      remote: REMOTE,
    });
  });

  test("no hello within helloTimeoutMs closes the connection", async () => {
    const r = rig({ helloTimeoutMs: 30 });
    const agent = new FakeAgent(r);
    await agent.next("challenge");
    expect(await agent.closed()).toEqual(HUB_CLOSE.HELLO_TIMEOUT);
  });

  const malformed: [string, string, (deviceId: string) => string][] = [
    ["not JSON", "BAD_MESSAGE", () => "{type: hello"],
    ["a JSON array", "BAD_MESSAGE", () => "[]"],
    ["JSON null", "BAD_MESSAGE", () => "null"],
    ["an unknown type", "BAD_MESSAGE", () => JSON.stringify({ type: "shell", cmd: "id" })],
    ["a pong before the hello", "UNEXPECTED", () => JSON.stringify({ type: "pong", t: 1 })],
    [
      "a hello with an extra field",
      "BAD_MESSAGE",
      (id) =>
        JSON.stringify({ type: "hello", deviceId: id, signature: "", consent: "ask", version: "1", x: 1 }),
    ],
    [
      "a hello whose deviceId is a number",
      "BAD_MESSAGE",
      () => JSON.stringify({ type: "hello", deviceId: 7, signature: "", consent: "ask", version: "1" }),
    ],
    [
      "a hello with an unknown consent policy",
      "BAD_MESSAGE",
      (id) => JSON.stringify({ type: "hello", deviceId: id, signature: "", consent: "always", version: "1" }),
    ],
    [
      "a hello with a control character in its version",
      "BAD_MESSAGE",
      (id) => JSON.stringify({ type: "hello", deviceId: id, signature: "", consent: "ask", version: "1\n2" }),
    ],
  ];
  for (const [what, close, make] of malformed) {
    test(`${what} closes the connection (${close})`, async () => {
      const r = rig({ maxMessageBytes: 1024 });
      const dev = await enroll(r.devices);
      const agent = new FakeAgent(r);
      await agent.next("challenge");
      agent.sendRaw(make(dev.deviceId));
      expect(await agent.closed()).toEqual(HUB_CLOSE[close as keyof typeof HUB_CLOSE]);
      expect(r.hub.isOnline(dev.deviceId)).toBe(false);
      const logged = logLines.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(logged).toContainEqual(expect.objectContaining({ level: "warn", remote: REMOTE, close }));
    });
  }

  test("the size limit counts UTF-8 bytes, not characters", async () => {
    // 600 × "é" is 600 characters but 1200 bytes: within 1024 characters, over 1024 bytes.
    const r = rig({ maxMessageBytes: 1024 });
    const agent = new FakeAgent(r);
    await agent.next("challenge");
    agent.sendRaw(JSON.stringify({ type: "pong", t: 1, pad: "é".repeat(600) }));
    expect(await agent.closed()).toEqual(HUB_CLOSE.TOO_BIG);
  });

  test("a malformed message after the welcome closes the connection and takes the device offline", async () => {
    const r = rig();
    const dev = await enroll(r.devices);
    const agent = await online(r, dev);
    agent.send({ type: "pong", t: "soon" });
    expect(await agent.closed()).toEqual(HUB_CLOSE.BAD_MESSAGE);
    expect(r.hub.isOnline(dev.deviceId)).toBe(false);
    expect(kinds(r, "device.offline")[0]?.payload).toMatchObject({ deviceId: dev.deviceId, remote: REMOTE });
  });

  test("a second hello on a proven connection closes it", async () => {
    const r = rig();
    const dev = await enroll(r.devices);
    const agent = await online(r, dev);
    agent.send({ type: "hello", deviceId: dev.deviceId, signature: "x", consent: "ask", version: "1" });
    expect(await agent.closed()).toEqual(HUB_CLOSE.UNEXPECTED);
  });

  test("an agent that answers pings stays online; a silent one is closed as offline", async () => {
    const r = rig({ heartbeatSeconds: 0.02, missedHeartbeats: 3 });
    const dev = await enroll(r.devices);
    const changes: boolean[] = [];
    r.hub.onOnlineChange = (_id, on) => changes.push(on);
    const agent = await online(r, dev);
    const firstSeen = r.devices.get(dev.deviceId)!.lastSeenAt!;
    // Ten intervals of answered pings: still online.
    await Bun.sleep(200);
    expect(r.hub.isOnline(dev.deviceId)).toBe(true);
    expect(agent.closedWith).toBeNull();
    expect(r.devices.get(dev.deviceId)!.lastSeenAt!).toBeGreaterThanOrEqual(firstSeen);

    agent.autoPong = false;
    expect(await agent.closed()).toEqual(HUB_CLOSE.HEARTBEAT_TIMEOUT);
    expect(agent.inbox.filter((m) => m.type === "ping").length).toBeGreaterThanOrEqual(2);
    expect(r.hub.isOnline(dev.deviceId)).toBe(false);
    expect(kinds(r, "device.offline")[0]?.payload).toMatchObject({
      deviceId: dev.deviceId,
      reason: HUB_CLOSE.HEARTBEAT_TIMEOUT.reason,
    });
    expect(changes).toEqual([true, false]);
  });

  test("last seen is updated by pongs", async () => {
    let clock = 1_000_000;
    const r = rig({ heartbeatSeconds: 0.02, now: () => clock });
    const dev = await enroll(r.devices);
    await online(r, dev);
    expect(r.devices.get(dev.deviceId)!.lastSeenAt).toBe(1_000_000);
    clock = 2_000_000;
    await until(() => r.devices.get(dev.deviceId)!.lastSeenAt === 2_000_000, "a pong to update last seen");
  });

  test("the same device proven twice: the newer connection replaces the older", async () => {
    const r = rig();
    const dev = await enroll(r.devices);
    const changes: boolean[] = [];
    r.hub.onOnlineChange = (_id, on) => changes.push(on);
    const first = await online(r, dev);
    const pending = r.hub.openSession(dev.deviceId, {
      sessionId: SESSION,
      requester: REQUESTER,
      viewOnly: true,
    });
    pending.catch(() => {}); // awaited below, after the replacement
    await first.next("session");
    const second = await online(r, dev);
    expect(await first.closed()).toEqual(HUB_CLOSE.REPLACED);
    // The older connection's request cannot be answered by the newer agent, which never saw it.
    expect((await rejection(pending)).code).toBe("UNAVAILABLE");
    expect(second.closedWith).toBeNull();
    expect(r.hub.isOnline(dev.deviceId)).toBe(true);
    expect(r.hub.onlineCount()).toBe(1);
    expect(r.audits.map((a) => a.kind).filter((k) => k.startsWith("device."))).toEqual([
      "device.online",
      "device.offline",
      "device.online",
    ]);
    expect(changes).toEqual([true, true]);
    // And the newer connection works.
    const p2 = r.hub.openSession(dev.deviceId, {
      sessionId: SESSION_2,
      requester: REQUESTER,
      viewOnly: true,
    });
    expect((await second.next("session")).sessionId).toBe(SESSION_2);
    r.hub.endSession(SESSION_2, "test over");
    expect((await rejection(p2)).code).toBe("UNAVAILABLE");
  });

  test("close() closes agents and refuses new ones", async () => {
    const r = rig();
    const dev = await enroll(r.devices);
    const agent = await online(r, dev);
    r.hub.close();
    expect(await agent.closed()).toEqual(HUB_CLOSE.SHUTDOWN);
    expect(r.hub.onlineCount()).toBe(0);
    const late = new FakeAgent(r);
    expect(await late.closed()).toEqual(HUB_CLOSE.SHUTDOWN);
    expect(late.inbox).toHaveLength(0);
  });
});

describe("sessions", () => {
  const ask = { sessionId: SESSION, requester: REQUESTER, viewOnly: false };

  async function requested(options: Partial<HubOptions> = {}): Promise<{
    r: Rig;
    deviceId: string;
    agent: FakeAgent;
    req: SessionRequestMsg;
    session: Promise<ByteChannel>;
  }> {
    const r = rig(options);
    const dev = await enroll(r.devices);
    const agent = await online(r, dev);
    const session = r.hub.openSession(dev.deviceId, ask);
    session.catch(() => {}); // tests that expect a rejection await it themselves
    const req = await agent.next("session");
    return { r, deviceId: dev.deviceId, agent, req, session };
  }

  test("granted: the data channel redeemed with the token is what openSession resolves with; bytes flow", async () => {
    const { r, deviceId, agent, req, session } = await requested();
    expect(req).toEqual({
      type: "session",
      sessionId: SESSION,
      requester: REQUESTER,
      viewOnly: false,
      dataToken: req.dataToken,
    });
    expect(req.dataToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // No data socket before consent.
    expect(r.hub.takeDataToken(SESSION, req.dataToken)).toBe(false);

    agent.send({ type: "consent", sessionId: SESSION, granted: true, reason: "user accepted" });
    await until(() => kinds(r, "session.consent").length === 1, "the consent record");
    expect(kinds(r, "session.consent")[0]!.payload).toEqual({
      session: SESSION,
      device: deviceId,
      requester: "alice",
      granted: true,
      reason: "user accepted",
    });
    expect(r.hub.takeDataToken(SESSION_2, req.dataToken)).toBe(false);
    expect(r.hub.takeDataToken(SESSION, `${req.dataToken.slice(0, -1)}A`)).toBe(false);
    expect(r.hub.takeDataToken(SESSION, req.dataToken.slice(0, -1))).toBe(false);
    expect(r.hub.takeDataToken(SESSION, req.dataToken)).toBe(true);
    expect(r.hub.takeDataToken(SESSION, req.dataToken)).toBe(false);

    const [relayEnd, agentEnd] = channelPair();
    r.hub.attachData(SESSION, relayEnd);
    const ch = await session;
    expect(ch).toBe(relayEnd);

    const atAgent: number[] = [];
    const atRelay: number[] = [];
    agentEnd.onData = (b) => atAgent.push(...b);
    ch.onData = (b) => atRelay.push(...b);
    agentEnd.send(new TextEncoder().encode("RFB 003.008\n"));
    ch.send(Uint8Array.of(1, 2, 3));
    await until(() => atAgent.length === 3 && atRelay.length === 12, "bytes both ways");
    expect(new TextDecoder().decode(Uint8Array.from(atRelay))).toBe("RFB 003.008\n");
    expect(atAgent).toEqual([1, 2, 3]);

    // The token is spent: no second data channel for this session.
    expect(r.hub.takeDataToken(SESSION, req.dataToken)).toBe(false);
    const [stray] = channelPair();
    let strayClosed = "";
    stray.onClose = (reason) => {
      strayClosed = reason;
    };
    r.hub.attachData(SESSION, stray);
    await until(() => strayClosed !== "", "the stray data channel to close");
    expect(agent.closedWith).toBeNull();
  });

  test("refused consent rejects FORBIDDEN with the agent's reason; the token is void", async () => {
    const { r, agent, req, session } = await requested();
    agent.send({ type: "consent", sessionId: SESSION, granted: false, reason: "user refused" });
    const e = await rejection(session);
    expect(e.code).toBe("FORBIDDEN");
    expect(e.message).toBe("the device user refused: user refused");
    expect(r.hub.takeDataToken(SESSION, req.dataToken)).toBe(false);
    expect(kinds(r, "session.consent")[0]!.payload).toMatchObject({ granted: false, reason: "user refused" });
  });

  test("no consent within consentTimeoutMs: rejected, the agent is told, a late consent is ignored", async () => {
    const { r, agent, req, session } = await requested({ consentTimeoutMs: 40 });
    const e = await rejection(session);
    expect(e.code).toBe("UNAVAILABLE");
    expect(e.message).toBe("the agent did not answer");
    const end = await agent.next("end");
    expect(end).toEqual({ type: "end", sessionId: SESSION, by: "relay", reason: "consent timeout" });
    expect(kinds(r, "session.consent")[0]!.payload).toMatchObject({ granted: false, reason: "timeout" });
    // The agent's answer crossed our end on the wire: not a protocol error.
    agent.send({ type: "consent", sessionId: SESSION, granted: true, reason: "user accepted" });
    await Bun.sleep(10);
    expect(agent.closedWith).toBeNull();
    expect(r.hub.takeDataToken(SESSION, req.dataToken)).toBe(false);
  });

  test("no data channel within dataTimeoutMs after consent: rejected and the agent is told", async () => {
    const { r, agent, req, session } = await requested({ dataTimeoutMs: 40 });
    agent.send({ type: "consent", sessionId: SESSION, granted: true, reason: "policy none" });
    const e = await rejection(session);
    expect(e.code).toBe("UNAVAILABLE");
    expect(e.message).toBe("the agent's data channel did not arrive");
    expect((await agent.next("end")).reason).toBe("data channel timeout");
    expect(r.hub.takeDataToken(SESSION, req.dataToken)).toBe(false);
  });

  test("a data channel attached without a taken token is closed and resolves nothing", async () => {
    const { r, agent, session } = await requested({ dataTimeoutMs: 60 });
    agent.send({ type: "consent", sessionId: SESSION, granted: true, reason: "policy none" });
    await until(() => kinds(r, "session.consent").length === 1, "the consent");
    const [relayEnd] = channelPair();
    let closed = "";
    relayEnd.onClose = (reason) => {
      closed = reason;
    };
    r.hub.attachData(SESSION, relayEnd);
    await until(() => closed !== "", "the data channel to close");
    expect((await rejection(session)).code).toBe("UNAVAILABLE");
  });

  test("the device going offline rejects its pending request", async () => {
    const { agent, session } = await requested();
    agent.sendRaw("not json");
    const e = await rejection(session);
    expect(e.code).toBe("UNAVAILABLE");
    expect(e.message).toBe("device offline");
  });

  test("an offline device: openSession rejects at once", async () => {
    const r = rig();
    const dev = await enroll(r.devices);
    const e = await rejection(r.hub.openSession(dev.deviceId, ask));
    expect(e.code).toBe("UNAVAILABLE");
    expect(e.message).toBe("device offline");
  });

  test("a session id already requested, or not URL-safe, is refused", async () => {
    const { r, deviceId } = await requested();
    expect((await rejection(r.hub.openSession(deviceId, ask))).code).toBe("CONFLICT");
    expect((await rejection(r.hub.openSession(deviceId, { ...ask, sessionId: "../x" }))).code).toBe(
      "BAD_REQUEST",
    );
  });

  test("one agent cannot answer another device's session", async () => {
    const { r, session } = await requested({ consentTimeoutMs: 200 });
    const intruder = await online(r, await enroll(r.devices));
    intruder.send({ type: "consent", sessionId: SESSION, granted: true, reason: "user accepted" });
    expect(await intruder.closed()).toEqual(HUB_CLOSE.UNEXPECTED);
    // The real request is untouched: it still times out waiting for its own agent.
    expect((await rejection(session)).message).toBe("the agent did not answer");
  });

  test("consent for a session nobody asked for closes the agent", async () => {
    const r = rig();
    const agent = await online(r, await enroll(r.devices));
    agent.send({ type: "consent", sessionId: SESSION, granted: true, reason: "user accepted" });
    expect(await agent.closed()).toEqual(HUB_CLOSE.UNEXPECTED);
  });

  async function live(): Promise<{ r: Rig; agent: FakeAgent; agentEnd: ByteChannel }> {
    const { r, agent, req, session } = await requested();
    agent.send({ type: "consent", sessionId: SESSION, granted: true, reason: "user accepted" });
    await until(() => r.hub.takeDataToken(SESSION, req.dataToken), "consent to make the token redeemable");
    const [relayEnd, agentEnd] = channelPair();
    r.hub.attachData(SESSION, relayEnd);
    await session;
    return { r, agent, agentEnd };
  }

  test("an end from the agent for a live session calls onDeviceEnded", async () => {
    const { r, agent } = await live();
    const ended: [string, string, string][] = [];
    r.hub.onDeviceEnded = (...args) => ended.push(args);
    agent.send({ type: "end", sessionId: SESSION, by: "device-user", reason: "user ended shadowing" });
    await until(() => ended.length === 1, "onDeviceEnded");
    expect(ended).toEqual([[SESSION, "device-user", "user ended shadowing"]]);
    // Already ended: the relay's own end that crosses it is harmless, and a repeat from the agent too.
    r.hub.endSession(SESSION, "viewer left");
    agent.send({ type: "end", sessionId: SESSION, by: "device-user", reason: "again" });
    await Bun.sleep(10);
    expect(ended).toHaveLength(1);
    expect(agent.closedWith).toBeNull();
  });

  test("an end from the agent for a pending session rejects it", async () => {
    const { agent, session } = await requested();
    agent.send({ type: "end", sessionId: SESSION, by: "device-user", reason: "not now" });
    const e = await rejection(session);
    expect(e.code).toBe("FORBIDDEN");
    expect(e.message).toBe("the device user ended the session: not now");
  });

  test("an end for a session of no one closes the agent", async () => {
    const r = rig();
    const agent = await online(r, await enroll(r.devices));
    agent.send({ type: "end", sessionId: SESSION, by: "device-user", reason: "x" });
    expect(await agent.closed()).toEqual(HUB_CLOSE.UNEXPECTED);
  });

  test("endSession sends the agent an end", async () => {
    const { r, agent } = await live();
    const ended: string[] = [];
    r.hub.onDeviceEnded = (id) => ended.push(id);
    r.hub.endSession(SESSION, "viewer left");
    expect(await agent.next("end")).toEqual({
      type: "end",
      sessionId: SESSION,
      by: "relay",
      reason: "viewer left",
    });
    expect(ended).toHaveLength(0);
    // The session id is free again for the hub.
    r.hub.endSession(SESSION, "twice");
    await Bun.sleep(10);
    expect(agent.inbox.filter((m) => m.type === "end")).toHaveLength(0);
  });

  test("a device going offline with a live session: its data channel is left to close on its own", async () => {
    const { r, agent, agentEnd } = await live();
    const ended: string[] = [];
    r.hub.onDeviceEnded = (id) => ended.push(id);
    let dataClosed = false;
    agentEnd.onClose = () => {
      dataClosed = true;
    };
    agent.sendRaw("{");
    await agent.closed();
    await Bun.sleep(10);
    expect(ended).toHaveLength(0);
    expect(dataClosed).toBe(false);
  });
});
