// The relay side of gateway mode (DESIGN.md "Gateway mode"; issue #4): every agent's control connection
// (/ws/agent) — challenge, signed hello checked against the device's pin, welcome, heartbeats — and the
// session requests sent over it. openSession asks the agent for a session with a fresh single-use data
// token, waits for its consent, then for the data WebSocket the agent opens with that token
// (/ws/agent/data/:session), and hands that channel to the caller. Transport-agnostic: the WebSocket
// adapter (relay/serve/ws.ts) gives us TextChannels and ByteChannels.
//
// Everything an agent sends is the peer's word: each message is size-checked before parsing, parsed as
// JSON, and checked field by field against the one shape its `type` allows in the connection's state.
// Anything else closes that agent's connection with a 44xx code (HUB_CLOSE), and nothing else is affected.
//
// Ordering the agent must keep: its ConsentMsg before it opens the data WebSocket. A data token is only
// redeemable once consent was granted, so no data channel exists for a session nobody consented to
// (issue #4 "consent denied or timed out → no data channel").

import { timingSafeEqual } from "node:crypto";
import { randomBytes } from "@noble/hashes/utils.js";
import type { AuditFn, AuditPayload } from "../control/audit.ts";
import type { DeviceRegistry } from "../control/devices.ts";
import { ControlError } from "../control/errors.ts";
import type { ByteChannel } from "../session/channel.ts";
import { log } from "../util/log.ts";
import {
  type AgentToRelay,
  type ChallengeMsg,
  type ConsentMsg,
  type EndMsg,
  type HelloMsg,
  type PingMsg,
  type PongMsg,
  type RelayToAgent,
  type SessionRequestMsg,
  toBase64url,
  type WelcomeMsg,
} from "./protocol.ts";
import type { TextChannel } from "./text-channel.ts";

export const HUB_DEFAULTS = {
  /** Seconds between the relay's pings to each agent (told to the agent in its welcome). @default 15 */
  heartbeatSeconds: 15,
  /** Heartbeat intervals an agent may stay silent (no pong, no message) before it is closed as offline. @default 3 */
  missedHeartbeats: 3,
  /** Time from the challenge until the agent's hello must have arrived, in ms. @default 10000 */
  helloTimeoutMs: 10_000,
  /**
   * Time from a session request until the agent's consent must have arrived, in ms. Longer than the
   * agent's own prompt timeout (TigerVNC's QueryConnectTimeout is 10 s; users need longer to read). @default 45000
   */
  consentTimeoutMs: 45_000,
  /** Time from a granted consent until the agent's data WebSocket must be attached, in ms. @default 15000 */
  dataTimeoutMs: 15_000,
  /** Largest control message an agent may send, in UTF-8 bytes; ours are < 2 KiB. @default 16384 */
  maxMessageBytes: 16 * 1024,
  /** Longest free-text field an agent may send (consent and end reasons), in characters (DESIGN.md "Limits"). @default 1024 */
  maxReasonChars: 1024,
  /**
   * Session ids per agent remembered after the relay ended them (timeout, endSession), so that an agent's
   * consent or end crossing ours on the wire is ignored instead of treated as a protocol error. @default 64
   */
  endedSessionMemory: 64,
};

export type HubOptions = typeof HUB_DEFAULTS;

/** How the hub closes an agent's control channel: WebSocket close code and reason. */
export const HUB_CLOSE = {
  BAD_MESSAGE: { code: 4400, reason: "malformed message" },
  UNEXPECTED: { code: 4400, reason: "unexpected message" },
  REFUSED: { code: 4401, reason: "device refused" },
  HELLO_TIMEOUT: { code: 4408, reason: "no hello in time" },
  HEARTBEAT_TIMEOUT: { code: 4408, reason: "heartbeat timeout" },
  REPLACED: { code: 4409, reason: "replaced by a newer connection of this device" },
  TOO_BIG: { code: 4413, reason: "message too large" },
  INTERNAL: { code: 1011, reason: "internal error" },
  SHUTDOWN: { code: 1001, reason: "relay shutting down" },
} as const;

export type HubCloseKind = keyof typeof HUB_CLOSE;

/** What an online agent said about itself in its hello (for the device list). */
export interface AgentInfo {
  deviceId: string;
  remote: string;
  consent: HelloMsg["consent"];
  version: string;
  /** When it came online (ms since the epoch). */
  since: number;
}

export interface SessionAsk {
  sessionId: string;
  requester: { name: string; role: "admin" | "operator" };
  viewOnly: boolean;
}

/** Session ids travel in the data URL (/ws/agent/data/:session): URL-safe and short. */
const SESSION_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Shape only; DeviceRegistry.verifyProof checks (and audits) the exact id format. */
const MAX_DEVICE_ID_CHARS = 64;
/** A P1363 P-256 signature in base64url is 86 characters; anything much longer is not one. */
const MAX_SIGNATURE_CHARS = 128;
const MAX_VERSION_CHARS = 64;
/** Who ended a session: "device-user", "relay", "viewer", … */
const END_BY = /^[a-z][a-z0-9-]{0,31}$/;
const CONSENTS: readonly HelloMsg["consent"][] = ["none", "notify", "ask"];
const DATA_TOKEN_BYTES = 32;
/** Longest remote address copied into audit records and logs. */
const MAX_REMOTE_CHARS = 128;

type ConnState = "hello" | "verifying" | "online" | "closed";

interface AgentConn {
  ch: TextChannel;
  remote: string;
  state: ConnState;
  nonce: string;
  deviceId: string | null;
  info: AgentInfo | null;
  helloTimer: ReturnType<typeof setTimeout> | null;
  heartbeat: ReturnType<typeof setInterval> | null;
  heardSinceTick: boolean;
  missed: number;
  /** Sessions requested over this connection (pending or live). */
  sessions: Set<string>;
  /** Session ids the relay ended lately, oldest first (HubOptions.endedSessionMemory). */
  ended: string[];
}

interface Pending {
  sessionId: string;
  conn: AgentConn;
  requester: string;
  stage: "consent" | "data";
  /** The outstanding data token (UTF-8 bytes of its base64url text); null once taken. */
  token: Uint8Array | null;
  timer: ReturnType<typeof setTimeout> | null;
  resolve: (ch: ByteChannel) => void;
  reject: (e: ControlError) => void;
}

/** A peer message that does not fit: closes that agent with `kind`; `detail` goes to the log only. */
class AgentFault extends Error {
  constructor(
    readonly kind: HubCloseKind,
    readonly detail: string,
  ) {
    super(detail);
  }
}

const bad = (detail: string): AgentFault => new AgentFault("BAD_MESSAGE", detail);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Exactly these keys (an unknown key is a malformed message: both ends ship from one protocol.ts). */
function checkKeys(m: Record<string, unknown>, keys: readonly string[]): void {
  const present = Object.keys(m);
  if (present.length !== keys.length || !present.every((k) => keys.includes(k))) {
    throw bad(`message ${String(m.type)} must have exactly the fields ${keys.join(", ")}`);
  }
}

/** A printable string of 1…max characters (no control characters: these end up in logs and audit). */
function text(v: unknown, field: string, max: number): string {
  if (typeof v !== "string" || v.length === 0 || v.length > max || /\p{Cc}/u.test(v)) {
    throw bad(`${field} must be 1…${max} printable characters`);
  }
  return v;
}

function sessionIdField(v: unknown): string {
  if (typeof v !== "string" || !SESSION_ID.test(v)) throw bad("sessionId is not a session id");
  return v;
}

export class GatewayHub {
  readonly options: HubOptions;
  /** Set by the node: the agent said the device user (or the agent) ended a live session. */
  onDeviceEnded: (sessionId: string, by: string, reason: string) => void = () => {};
  /** Set by the node: a device came online or went offline (device list, metrics). */
  onOnlineChange: (deviceId: string, online: boolean) => void = () => {};

  readonly #devices: DeviceRegistry;
  readonly #audit: AuditFn;
  readonly #now: () => number;
  /** deviceId → its one proven connection. */
  readonly #online = new Map<string, AgentConn>();
  /** Every open control connection, proven or not (for close()). */
  readonly #conns = new Set<AgentConn>();
  readonly #pending = new Map<string, Pending>();
  /** sessionId → the connection whose data channel carries it. */
  readonly #live = new Map<string, AgentConn>();
  #closed = false;

  constructor(o: { devices: DeviceRegistry; audit: AuditFn; now?: () => number } & Partial<HubOptions>) {
    const { devices, audit, now, ...options } = o;
    this.options = { ...HUB_DEFAULTS, ...options };
    this.#devices = devices;
    this.#audit = audit;
    this.#now = now ?? Date.now;
  }

  // ---------------------------------------------------------------------------- control connections

  /** A new /ws/agent connection (after the upgrade): challenge → hello (verified against the pin) → welcome. */
  acceptAgent(ch: TextChannel, remote: string): void {
    const conn: AgentConn = {
      ch,
      remote: String(remote).slice(0, MAX_REMOTE_CHARS),
      state: "hello",
      nonce: "",
      deviceId: null,
      info: null,
      helloTimer: null,
      heartbeat: null,
      heardSinceTick: false,
      missed: 0,
      sessions: new Set(),
      ended: [],
    };
    ch.onText = (t) => this.#onText(conn, t);
    ch.onClose = (reason) => this.#dropped(conn, reason || "connection closed");
    if (this.#closed) {
      ch.close(HUB_CLOSE.SHUTDOWN.code, HUB_CLOSE.SHUTDOWN.reason);
      return;
    }
    this.#conns.add(conn);
    conn.nonce = this.#devices.createChallenge(this.#now());
    conn.helloTimer = setTimeout(() => this.#close(conn, "HELLO_TIMEOUT"), this.options.helloTimeoutMs);
    conn.helloTimer.unref?.();
    this.#send(conn, { type: "challenge", nonce: conn.nonce } satisfies ChallengeMsg);
  }

  isOnline(deviceId: string): boolean {
    return this.#online.has(deviceId);
  }

  onlineCount(): number {
    return this.#online.size;
  }

  /** What the device's online agent said in its hello, or undefined when it is offline. */
  agentInfo(deviceId: string): AgentInfo | undefined {
    const info = this.#online.get(deviceId)?.info;
    return info ? { ...info } : undefined;
  }

  #send(conn: AgentConn, msg: RelayToAgent): void {
    if (conn.state === "closed") return;
    conn.ch.send(JSON.stringify(msg));
  }

  #onText(conn: AgentConn, raw: string): void {
    if (conn.state === "closed") return;
    try {
      this.#handle(conn, this.#parse(raw));
    } catch (e) {
      // One error boundary per connection: whatever went wrong closes this agent only.
      if (!(e instanceof AgentFault)) {
        log.error("agent message failed", { device: conn.deviceId, remote: conn.remote, error: e });
        this.#close(conn, "INTERNAL");
        return;
      }
      log.warn("agent connection closed: bad message", {
        device: conn.deviceId,
        remote: conn.remote,
        close: e.kind,
        detail: e.detail,
      });
      this.#close(conn, e.kind);
    }
  }

  /** Size, JSON, and the exact shape of one agent message (state is checked by #handle). */
  #parse(raw: string): AgentToRelay {
    const max = this.options.maxMessageBytes;
    // UTF-16 length never exceeds the UTF-8 byte length, so the cheap check rejects first.
    if (typeof raw !== "string" || raw.length > max || Buffer.byteLength(raw, "utf8") > max) {
      throw new AgentFault("TOO_BIG", `message over ${max} bytes`);
    }
    let m: unknown;
    try {
      m = JSON.parse(raw);
    } catch {
      throw bad("not JSON");
    }
    if (!isRecord(m)) throw bad("not a JSON object");
    switch (m.type) {
      case "hello": {
        checkKeys(m, ["type", "deviceId", "signature", "consent", "version"]);
        if (
          typeof m.deviceId !== "string" ||
          m.deviceId.length === 0 ||
          m.deviceId.length > MAX_DEVICE_ID_CHARS
        ) {
          throw bad("deviceId is not a device id");
        }
        if (typeof m.signature !== "string" || m.signature.length > MAX_SIGNATURE_CHARS) {
          throw bad("signature is not a signature");
        }
        if (!CONSENTS.includes(m.consent as HelloMsg["consent"])) throw bad("consent is not a policy");
        text(m.version, "version", MAX_VERSION_CHARS);
        return m as unknown as HelloMsg;
      }
      case "pong":
        checkKeys(m, ["type", "t"]);
        if (typeof m.t !== "number" || !Number.isFinite(m.t)) throw bad("t is not a number");
        return m as unknown as PongMsg;
      case "consent":
        checkKeys(m, ["type", "sessionId", "granted", "reason"]);
        sessionIdField(m.sessionId);
        if (typeof m.granted !== "boolean") throw bad("granted is not a boolean");
        text(m.reason, "reason", this.options.maxReasonChars);
        return m as unknown as ConsentMsg;
      case "end":
        checkKeys(m, ["type", "sessionId", "by", "reason"]);
        sessionIdField(m.sessionId);
        if (typeof m.by !== "string" || !END_BY.test(m.by)) throw bad("by is not a party");
        text(m.reason, "reason", this.options.maxReasonChars);
        return m as unknown as EndMsg;
      default:
        throw bad("unknown message type");
    }
  }

  #handle(conn: AgentConn, m: AgentToRelay): void {
    if (conn.state === "hello") {
      if (m.type !== "hello") throw new AgentFault("UNEXPECTED", `${m.type} before hello`);
      conn.state = "verifying";
      this.#verify(conn, m).catch((e: unknown) => {
        log.error("agent hello failed", { remote: conn.remote, error: e });
        this.#close(conn, "INTERNAL");
      });
      return;
    }
    // One hello per connection, and nothing while it is being verified.
    if (conn.state !== "online") throw new AgentFault("UNEXPECTED", `${m.type} while ${conn.state}`);
    conn.heardSinceTick = true;
    switch (m.type) {
      case "hello":
        throw new AgentFault("UNEXPECTED", "second hello");
      case "pong":
        this.#seen(conn);
        return;
      case "consent":
        this.#consent(conn, m);
        return;
      case "end":
        this.#agentEnded(conn, m);
        return;
    }
  }

  async #verify(conn: AgentConn, hello: HelloMsg): Promise<void> {
    // The registry audits refusals; the record gets where the connection came from.
    const audit: AuditFn = (kind, actor, payload) =>
      this.#audit(kind, actor, { ...payload, remote: conn.remote });
    try {
      await this.#devices.verifyProof(hello.deviceId, conn.nonce, hello.signature, audit, this.#now());
    } catch (e) {
      log.warn("agent refused", {
        remote: conn.remote,
        device: hello.deviceId.slice(0, MAX_DEVICE_ID_CHARS),
        reason: e instanceof Error ? e.message : String(e),
      });
      this.#close(conn, "REFUSED");
      return;
    }
    if (conn.state !== "verifying") return; // closed while we verified
    const deviceId = hello.deviceId;
    const older = this.#online.get(deviceId);
    if (older) {
      // Out of the map first: the device stays online throughout, so no offline notification.
      this.#online.delete(deviceId);
      this.#close(older, "REPLACED");
    }
    const now = this.#now();
    conn.deviceId = deviceId;
    conn.info = { deviceId, remote: conn.remote, consent: hello.consent, version: hello.version, since: now };
    // Fail closed: a device whose coming online cannot be recorded does not come online.
    if (
      !this.#record("device.online", deviceId, {
        deviceId,
        remote: conn.remote,
        consent: hello.consent,
        version: hello.version,
      })
    ) {
      conn.deviceId = null;
      this.#close(conn, "INTERNAL");
      return;
    }
    if (conn.helloTimer) clearTimeout(conn.helloTimer);
    conn.helloTimer = null;
    conn.state = "online";
    this.#online.set(deviceId, conn);
    this.#seen(conn);
    this.#send(conn, {
      type: "welcome",
      deviceId,
      heartbeatSeconds: this.options.heartbeatSeconds,
    } satisfies WelcomeMsg);
    conn.heartbeat = setInterval(() => this.#tick(conn), this.options.heartbeatSeconds * 1000);
    conn.heartbeat.unref?.();
    log.info("device online", { device: deviceId, remote: conn.remote, version: hello.version });
    this.#notifyOnline(deviceId, true);
  }

  /** Counting silent intervals rather than reading a clock: a stalled event loop cannot fake silence. */
  #tick(conn: AgentConn): void {
    if (conn.state !== "online") return;
    conn.missed = conn.heardSinceTick ? 0 : conn.missed + 1;
    conn.heardSinceTick = false;
    if (conn.missed >= this.options.missedHeartbeats) {
      this.#close(conn, "HEARTBEAT_TIMEOUT");
      return;
    }
    this.#send(conn, { type: "ping", t: this.#now() } satisfies PingMsg);
  }

  #seen(conn: AgentConn): void {
    if (conn.deviceId === null) return;
    try {
      this.#devices.setLastSeen(conn.deviceId, this.#now());
    } catch (e) {
      log.warn("could not record last seen", { device: conn.deviceId, error: e });
    }
  }

  #record(kind: string, actor: string, payload: AuditPayload): boolean {
    try {
      this.#audit(kind, actor, payload);
      return true;
    } catch (e) {
      log.error("audit record failed", { kind, actor, error: e });
      return false;
    }
  }

  #notifyOnline(deviceId: string, online: boolean): void {
    try {
      this.onOnlineChange(deviceId, online);
    } catch (e) {
      log.error("onOnlineChange failed", { device: deviceId, error: e });
    }
  }

  /** Closes an agent's control channel with one of ours; its state is dropped at once. */
  #close(conn: AgentConn, kind: HubCloseKind): void {
    if (conn.state === "closed") return;
    const { code, reason } = HUB_CLOSE[kind];
    this.#dropped(conn, reason);
    conn.ch.close(code, reason);
  }

  /** The connection is gone (closed by us or by the peer): offline, its pending requests rejected. */
  #dropped(conn: AgentConn, reason: string): void {
    if (conn.state === "closed") return;
    const wasOnline = conn.state === "online";
    conn.state = "closed";
    this.#conns.delete(conn);
    if (conn.helloTimer) clearTimeout(conn.helloTimer);
    if (conn.heartbeat) clearInterval(conn.heartbeat);
    conn.helloTimer = null;
    conn.heartbeat = null;
    for (const sessionId of conn.sessions) {
      const p = this.#pending.get(sessionId);
      if (p?.conn === conn) this.#settle(p, new ControlError("UNAVAILABLE", "device offline"));
      // Live sessions' data channels are separate sockets and close on their own.
      if (this.#live.get(sessionId) === conn) this.#live.delete(sessionId);
    }
    conn.sessions.clear();
    if (!wasOnline || conn.deviceId === null) return;
    const deviceId = conn.deviceId;
    const current = this.#online.get(deviceId) === conn;
    if (current) this.#online.delete(deviceId);
    this.#record("device.offline", deviceId, { deviceId, remote: conn.remote, reason: reason.slice(0, 256) });
    log.info("device offline", { device: deviceId, remote: conn.remote, reason });
    if (current) this.#notifyOnline(deviceId, false);
  }

  // --------------------------------------------------------------------------------------- sessions

  /**
   * Asks the device's agent for a session and resolves with the agent's data channel for it. Rejects with
   * ControlError: UNAVAILABLE "device offline" (now, or while waiting), UNAVAILABLE "the agent did not
   * answer" (no consent within consentTimeoutMs), FORBIDDEN "the device user refused: <agent's reason>",
   * UNAVAILABLE "the agent's data channel did not arrive" (dataTimeoutMs after consent), CONFLICT when
   * the session id is already in use, BAD_REQUEST for a session id that is not URL-safe.
   */
  openSession(deviceId: string, s: SessionAsk): Promise<ByteChannel> {
    const conn = this.#online.get(deviceId);
    if (!conn || this.#closed) return Promise.reject(new ControlError("UNAVAILABLE", "device offline"));
    if (!SESSION_ID.test(s.sessionId)) {
      return Promise.reject(new ControlError("BAD_REQUEST", "session id must be 1…64 URL-safe characters"));
    }
    if (this.#pending.has(s.sessionId) || this.#live.has(s.sessionId)) {
      return Promise.reject(new ControlError("CONFLICT", "this session was already requested"));
    }
    const dataToken = toBase64url(randomBytes(DATA_TOKEN_BYTES));
    return new Promise<ByteChannel>((resolve, reject) => {
      const p: Pending = {
        sessionId: s.sessionId,
        conn,
        requester: s.requester.name,
        stage: "consent",
        token: new TextEncoder().encode(dataToken),
        timer: null,
        resolve,
        reject,
      };
      this.#pending.set(s.sessionId, p);
      conn.sessions.add(s.sessionId);
      p.timer = setTimeout(() => {
        this.#recordConsent(p, false, "timeout");
        this.#endOnAgent(conn, s.sessionId, "consent timeout");
        this.#settle(p, new ControlError("UNAVAILABLE", "the agent did not answer"));
      }, this.options.consentTimeoutMs);
      p.timer.unref?.();
      this.#send(conn, {
        type: "session",
        sessionId: s.sessionId,
        requester: { name: s.requester.name, role: s.requester.role },
        viewOnly: s.viewOnly,
        dataToken,
      } satisfies SessionRequestMsg);
    });
  }

  #consent(conn: AgentConn, m: ConsentMsg): void {
    const p = this.#pending.get(m.sessionId);
    if (!p || p.conn !== conn || p.stage !== "consent") {
      if (conn.ended.includes(m.sessionId)) return; // crossed our timeout on the wire
      throw new AgentFault("UNEXPECTED", "consent for no session waiting for it");
    }
    this.#recordConsent(p, m.granted, m.reason);
    if (!m.granted) {
      this.#settle(p, new ControlError("FORBIDDEN", `the device user refused: ${m.reason}`));
      return;
    }
    if (p.timer) clearTimeout(p.timer);
    p.stage = "data";
    p.timer = setTimeout(() => {
      this.#endOnAgent(conn, p.sessionId, "data channel timeout");
      this.#settle(p, new ControlError("UNAVAILABLE", "the agent's data channel did not arrive"));
    }, this.options.dataTimeoutMs);
    p.timer.unref?.();
  }

  #recordConsent(p: Pending, granted: boolean, reason: string): void {
    const deviceId = p.conn.deviceId ?? "";
    this.#record("session.consent", deviceId, {
      session: p.sessionId,
      device: deviceId,
      requester: p.requester,
      granted,
      reason,
    });
  }

  #agentEnded(conn: AgentConn, m: EndMsg): void {
    if (this.#live.get(m.sessionId) === conn) {
      this.#live.delete(m.sessionId);
      conn.sessions.delete(m.sessionId);
      this.#forget(conn, m.sessionId);
      try {
        this.onDeviceEnded(m.sessionId, m.by, m.reason);
      } catch (e) {
        log.error("onDeviceEnded failed", { session: m.sessionId, error: e });
      }
      return;
    }
    const p = this.#pending.get(m.sessionId);
    if (p?.conn === conn) {
      // Ended before its data channel arrived: to the requester that is a refusal by the device side.
      this.#forget(conn, m.sessionId);
      this.#settle(
        p,
        m.by === "device-user"
          ? new ControlError("FORBIDDEN", `the device user ended the session: ${m.reason}`)
          : new ControlError("UNAVAILABLE", "the agent ended the session"),
      );
      return;
    }
    if (conn.ended.includes(m.sessionId)) return;
    throw new AgentFault("UNEXPECTED", "end for no session of this device");
  }

  /** Rejects a pending request (its token can no longer be redeemed). */
  #settle(p: Pending, e: ControlError): void {
    if (this.#pending.get(p.sessionId) !== p) return;
    this.#pending.delete(p.sessionId);
    p.conn.sessions.delete(p.sessionId);
    if (p.timer) clearTimeout(p.timer);
    p.timer = null;
    p.token = null;
    p.reject(e);
  }

  /** Tells the agent a session is over and remembers that we did, for messages crossing ours. */
  #endOnAgent(conn: AgentConn, sessionId: string, reason: string): void {
    this.#forget(conn, sessionId);
    this.#send(conn, { type: "end", sessionId, by: "relay", reason } satisfies EndMsg);
  }

  #forget(conn: AgentConn, sessionId: string): void {
    if (conn.ended.includes(sessionId)) return;
    conn.ended.push(sessionId);
    while (conn.ended.length > this.options.endedSessionMemory) conn.ended.shift();
  }

  /**
   * Before upgrading /ws/agent/data/:session: is `token` the outstanding data token of that session, whose
   * consent was granted? Consumes it on success; a wrong token leaves it outstanding (it is 256 random
   * bits: guessing is hopeless, and burning it would let anyone who knows a session id spoil it).
   */
  takeDataToken(sessionId: string, token: string): boolean {
    const p = typeof sessionId === "string" ? this.#pending.get(sessionId) : undefined;
    if (p?.stage !== "data" || p.token === null || typeof token !== "string") return false;
    const presented = new TextEncoder().encode(token);
    if (presented.byteLength !== p.token.byteLength || !timingSafeEqual(presented, p.token)) return false;
    p.token = null;
    return true;
  }

  /** The data WebSocket of a session is open (its token was taken): resolves the waiting openSession. */
  attachData(sessionId: string, ch: ByteChannel): void {
    const p = this.#pending.get(sessionId);
    if (p?.stage !== "data" || p.token !== null || p.conn.state !== "online") {
      ch.close("no session is waiting for this data channel");
      return;
    }
    this.#pending.delete(sessionId);
    if (p.timer) clearTimeout(p.timer);
    p.timer = null;
    this.#live.set(sessionId, p.conn);
    p.resolve(ch);
  }

  /**
   * Tells the agent the session ended (relay side): a live session, or a request still pending (which is
   * then rejected UNAVAILABLE). Unknown sessions are ignored. Call it when every gateway session ends.
   */
  endSession(sessionId: string, reason: string): void {
    const conn = this.#live.get(sessionId);
    if (conn) {
      this.#live.delete(sessionId);
      conn.sessions.delete(sessionId);
      this.#endOnAgent(conn, sessionId, reason);
      return;
    }
    const p = this.#pending.get(sessionId);
    if (p) {
      this.#endOnAgent(p.conn, sessionId, reason);
      this.#settle(p, new ControlError("UNAVAILABLE", "the session ended"));
    }
  }

  /** Closes every agent connection (they reconnect to another node or after the restart). */
  close(): void {
    this.#closed = true;
    for (const conn of [...this.#conns]) this.#close(conn, "SHUTDOWN");
    for (const p of [...this.#pending.values()]) {
      this.#settle(p, new ControlError("UNAVAILABLE", "the relay is shutting down"));
    }
    this.#live.clear();
  }
}
