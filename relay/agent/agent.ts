// The agent's gateway runtime (DESIGN.md "Gateway mode"; issue #4 "Gateway mode"): one control WebSocket to
// the relay (/ws/agent, JSON text messages of relay/gateway/protocol.ts), kept up with exponential back-off
// and jitter; the key proof on every connection; pongs for the relay's pings and a watchdog for a silent
// relay; for each session request the consent policy, then a data WebSocket (/ws/agent/data/:session,
// Authorization: Bearer <dataToken>) bridged to the device's VNC server (vnc-bridge.ts answers its password
// on the device). The device user can end sessions (endSession), which the relay learns with EndMsg
// {by: "device-user"} before the data channel closes.
//
// Every connection trusts only the pinned relay certificate, and the presented certificate is compared with
// the pin before each one (relay-trust.ts). The client WebSocket adapters for the agent live here (text for
// control; binary with an Authorization header for data) — see the report about folding the binary one into
// relay/connect/ws-client.ts once that takes headers.

import { newClientWebSocket } from "../connect/ws-client.ts";
import packageJson from "../../package.json" with { type: "json" };
import type {
  AgentToRelay,
  ConsentMsg,
  EndMsg,
  HelloMsg,
  PongMsg,
  SessionRequestMsg,
} from "../gateway/protocol.ts";
import type { TextChannel } from "../gateway/text-channel.ts";
import { RfbError, toRfbError } from "../rfb/errors.ts";
import type { ByteChannel } from "../session/channel.ts";
import { log } from "../util/log.ts";
import { Backoff, type BackoffOptions } from "./backoff.ts";
import { CONSENT_POLICIES, type ConsentDecision, type ConsentPolicy, decideConsent } from "./consent.ts";
import { type AgentIdentity, loadIdentity, signProof } from "./identity.ts";
import { type RelayTrust, RelayTrustError, loadRelayPin, trustFor } from "./relay-trust.ts";
import { type VncBridge, type VncBridgeOptions, bridgeToVnc } from "./vnc-bridge.ts";

export const AGENT_DEFAULTS = Object.freeze({
  /** Milliseconds to open a WebSocket (control or data) to the relay. @default 10000 */
  connectTimeoutMs: 10_000,
  /** Milliseconds from the control socket's open to the relay's welcome. @default 30000 */
  handshakeTimeoutMs: 30_000,
  /**
   * Milliseconds the device user has to answer a consent prompt; then the answer is no. Below the relay's
   * consentTimeoutMs (45 s, relay/config.ts) so that "timeout" reaches the relay before it gives up.
   * @default 30000
   */
  consentTimeoutMs: 30_000,
  /** Heartbeat intervals without any message from the relay before the connection is taken as dead. @default 3 */
  heartbeatMisses: 3,
  /** Seconds between the relay's pings, until its welcome names its own. @default 15 */
  heartbeatSeconds: 15,
  /** Largest control message accepted from the relay, characters (ours are well under 1 KiB). @default 65536 */
  maxMessageBytes: 64 * 1024,
  /** Sessions at once (asking, connecting or bridged); further requests are refused. @default 8 */
  maxSessions: 8,
});

/** Close codes the agent uses on its control socket (the 44xx family of relay/rfb/errors.ts). */
export const AGENT_CLOSE = Object.freeze({
  Normal: 1000,
  ProtocolError: 4400,
  Timeout: 4408,
  TooBig: 4413,
});

export const AGENT_ERRORS = {
  NOT_ENROLLED: "this state directory holds no agent identity (enroll first with --enroll TOKEN)",
  BAD_OPTIONS: "invalid agent options",
} as const;

export type AgentErrorCode = keyof typeof AGENT_ERRORS;

export class AgentError extends Error {
  readonly code: AgentErrorCode;
  constructor(code: AgentErrorCode, detail?: string) {
    super(detail ? `${AGENT_ERRORS[code]}: ${detail}` : AGENT_ERRORS[code]);
    this.name = "AgentError";
    this.code = code;
  }
}

/** The agent's version as sent in HelloMsg. */
export const AGENT_VERSION: string = packageJson.version;

export type AgentEvent =
  | { type: "connecting"; attempt: number }
  | { type: "welcome"; deviceId: string; heartbeatSeconds: number }
  | { type: "disconnected"; reason: string; retryInMs: number }
  | {
      type: "session-request";
      sessionId: string;
      requester: SessionRequestMsg["requester"];
      viewOnly: boolean;
    }
  | { type: "consent"; sessionId: string; granted: boolean; reason: string }
  | { type: "session-started"; sessionId: string }
  | { type: "session-ended"; sessionId: string; by: string; reason: string }
  | { type: "stopped" };

export interface AgentOptions {
  /** Where enrollment stored the identity and the relay's certificate. */
  stateDir: string;
  /** The device's VNC server. */
  vnc: { host: string; port: number };
  /** Its password (--vnc-password-file), answered here and never sent to the relay. */
  vncPassword?: Uint8Array;
  consent: ConsentPolicy;
  /** --consent-command: argv, or a command line (split without a shell). */
  consentCommand?: string | readonly string[];
  backoff?: BackoffOptions;
  /** @default AGENT_DEFAULTS.consentTimeoutMs */
  consentTimeoutMs?: number;
  /** @default AGENT_DEFAULTS.connectTimeoutMs */
  connectTimeoutMs?: number;
  /** @default AGENT_DEFAULTS.handshakeTimeoutMs */
  handshakeTimeoutMs?: number;
  /** @default AGENT_DEFAULTS.heartbeatMisses */
  heartbeatMisses?: number;
  /** @default AGENT_DEFAULTS.maxMessageBytes */
  maxMessageBytes?: number;
  /** @default AGENT_DEFAULTS.maxSessions */
  maxSessions?: number;
  /** Passed to bridgeToVnc (its connect timeout, RFB limits, or another way to reach the VNC server). */
  bridge?: Omit<VncBridgeOptions, "signal">;
  /** Called for each event (logging and tests); an exception in it is logged and ignored. */
  onEvent?: (e: AgentEvent) => void;
}

export interface AgentStatus {
  /** The control connection is up and welcomed. */
  connected: boolean;
  deviceId: string;
  /** Sessions being asked for, connecting or bridged. */
  sessions: string[];
}

export interface AgentHandle {
  readonly deviceId: string;
  /** Ends every session, closes the control connection, stops reconnecting; resolves when all is down. */
  stop(): Promise<void>;
  /**
   * The device user ends a session (or all of them): EndMsg {by: "device-user"} to the relay, then the data
   * channel closes. Returns the ids ended.
   */
  endSession(sessionId?: string): string[];
  status(): AgentStatus;
}

// ---------------------------------------------------------------------------------------------------------
// Client WebSockets (Bun's WebSocket: `tls.ca` pins the relay, `headers` carries the data token)

interface ClientSocketOptions {
  /** The only CA trusted: the pinned relay certificate. */
  caPem: string;
  headers?: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
}

interface ClientSocketWrapper {
  /** The socket closed (peer, network or our close); reported once. */
  transportClosed(reason: string): void;
  message(data: unknown): void;
}

/** Opens `url` and resolves with `wrap(ws)` once open; rejects with the reason it did not open. */
function openClientSocket<W extends ClientSocketWrapper>(
  url: string,
  o: ClientSocketOptions,
  binary: boolean,
  wrap: (ws: WebSocket) => W,
): Promise<W> {
  return new Promise((resolve, reject) => {
    const ws = newClientWebSocket(url, {
      tls: { ca: o.caPem },
      ...(o.headers ? { headers: o.headers } : {}),
    });
    if (binary) ws.binaryType = "arraybuffer";
    const wrapper = wrap(ws);
    const where = new URL(url).host;
    let open = false;
    let settled = false;
    let error = "";
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener("abort", onAbort);
      try {
        ws.close();
      } catch {
        // not open yet: closing a connecting socket only cancels it
      }
      reject(new Error(why));
    };
    const onAbort = (): void => fail(`connection to ${where} aborted`);
    const timer = setTimeout(() => fail(`no connection to ${where} within ${o.timeoutMs} ms`), o.timeoutMs);
    if (o.signal?.aborted) onAbort();
    o.signal?.addEventListener("abort", onAbort, { once: true });
    ws.onopen = () => {
      if (settled) return;
      open = true;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener("abort", onAbort);
      resolve(wrapper);
    };
    ws.onmessage = (e) => {
      if (open) wrapper.message(e.data);
    };
    ws.onerror = (e) => {
      // Bun puts the cause (a refused TLS handshake, a refused upgrade) in the error event's message.
      error = (e as ErrorEvent).message ?? "";
    };
    ws.onclose = (e) => {
      if (open) wrapper.transportClosed(e.reason || `websocket closed (${e.code})`);
      else fail(`${where} refused the connection: ${e.reason || error || `closed (${e.code})`}`);
    };
  });
}

/** The control socket as a TextChannel; binary or oversized frames close it. */
class ClientTextChannel implements TextChannel, ClientSocketWrapper {
  onText: (text: string) => void = () => {};
  onClose: (reason: string) => void = () => {};
  #closed = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly maxMessageBytes: number,
  ) {}

  send(text: string): void {
    if (this.#closed) return;
    try {
      this.ws.send(text);
    } catch {
      this.close(AGENT_CLOSE.Normal, "send failed");
    }
  }

  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.ws.close(code, reason.slice(0, 120));
    } catch {
      // already closing
    }
    this.onClose(reason);
  }

  transportClosed(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onClose(reason);
  }

  message(data: unknown): void {
    if (this.#closed) return;
    if (typeof data !== "string") {
      this.close(AGENT_CLOSE.ProtocolError, "binary frame on the control channel");
      return;
    }
    if (data.length > this.maxMessageBytes) {
      this.close(AGENT_CLOSE.TooBig, "control message too large");
      return;
    }
    this.onText(data);
  }
}

/** A data socket as a ByteChannel; text frames close it. */
class ClientByteChannel implements ByteChannel, ClientSocketWrapper {
  onData: (bytes: Uint8Array) => void = () => {};
  onClose: (reason: string) => void = () => {};
  #closed = false;

  constructor(private readonly ws: WebSocket) {}

  get buffered(): number {
    return this.#closed ? 0 : this.ws.bufferedAmount;
  }

  send(bytes: Uint8Array): void {
    if (this.#closed) return;
    try {
      this.ws.send(bytes as Uint8Array<ArrayBuffer>);
    } catch {
      this.close("send failed");
    }
  }

  close(reason = "normal"): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.ws.close(AGENT_CLOSE.Normal, reason.slice(0, 120));
    } catch {
      // already closing
    }
    this.onClose(reason);
  }

  transportClosed(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onClose(reason);
  }

  message(data: unknown): void {
    if (this.#closed) return;
    if (!(data instanceof ArrayBuffer)) {
      this.close("text frame on a binary channel");
      return;
    }
    this.onData(new Uint8Array(data));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Relay → agent messages, checked (the relay is authenticated, but its fields still go into URLs, headers
// and a command line)

const NONCE = /^[A-Za-z0-9_-]{16,256}$/;
/** Session ids go into the data URL's path. */
const SESSION_ID = /^[A-Za-z0-9_-]{1,128}$/;
/** Data tokens go into an HTTP header: visible ASCII only, so never a CR or LF. */
const DATA_TOKEN = /^[\x21-\x7e]{1,2048}$/;
const MAX_TEXT = 1024;

type Json = Record<string, unknown>;

function isRecord(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function shortText(v: unknown): string | undefined {
  return typeof v === "string" && v.length <= MAX_TEXT ? v : undefined;
}

function sessionRequest(m: Json): SessionRequestMsg | undefined {
  const r = m.requester;
  if (
    typeof m.sessionId !== "string" ||
    !SESSION_ID.test(m.sessionId) ||
    typeof m.dataToken !== "string" ||
    !DATA_TOKEN.test(m.dataToken) ||
    typeof m.viewOnly !== "boolean" ||
    !isRecord(r) ||
    shortText(r.name) === undefined ||
    (r.role !== "admin" && r.role !== "operator")
  ) {
    return undefined;
  }
  return {
    type: "session",
    sessionId: m.sessionId,
    dataToken: m.dataToken,
    viewOnly: m.viewOnly,
    requester: { name: r.name as string, role: r.role },
  };
}

// ---------------------------------------------------------------------------------------------------------
// The runtime

interface Session {
  id: string;
  request: SessionRequestMsg;
  /** The control channel the request came on: the consent answer goes there or nowhere. */
  control: TextChannel;
  phase: "consent" | "connecting" | "bridged";
  abort: AbortController;
  data: ByteChannel | null;
  bridge: VncBridge | null;
  ended: boolean;
}

class Agent implements AgentHandle {
  readonly deviceId: string;
  readonly #identity: AgentIdentity;
  readonly #trust: RelayTrust;
  readonly #o: AgentOptions;
  readonly #backoff: Backoff;
  readonly #sessions = new Map<string, Session>();
  readonly #stopAc = new AbortController();
  #control: TextChannel | null = null;
  #connected = false;
  #wake: (() => void) | null = null;
  #loop: Promise<void> = Promise.resolve();
  #stopping: Promise<void> | null = null;

  constructor(identity: AgentIdentity, trust: RelayTrust, o: AgentOptions) {
    this.#identity = identity;
    this.#trust = trust;
    this.#o = o;
    this.deviceId = identity.deviceId;
    this.#backoff = new Backoff(o.backoff);
  }

  start(): void {
    this.#loop = this.#run();
  }

  status(): AgentStatus {
    return { connected: this.#connected, deviceId: this.deviceId, sessions: [...this.#sessions.keys()] };
  }

  endSession(sessionId?: string): string[] {
    const ended: string[] = [];
    for (const s of [...this.#sessions.values()]) {
      if (sessionId !== undefined && s.id !== sessionId) continue;
      this.#finish(s, "ended by the device user", "device-user", true);
      ended.push(s.id);
    }
    return ended;
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#stopAc.abort();
      for (const s of [...this.#sessions.values()]) this.#finish(s, "agent stopping", "agent", true);
      this.#control?.close(AGENT_CLOSE.Normal, "agent stopping");
      this.#wake?.();
      await this.#loop;
      log.info("agent stopped", { deviceId: this.deviceId });
      this.#emit({ type: "stopped" });
    })();
    return this.#stopping;
  }

  get #stopped(): boolean {
    return this.#stopAc.signal.aborted;
  }

  #emit(e: AgentEvent): void {
    if (!this.#o.onEvent) return;
    try {
      this.#o.onEvent(e);
    } catch (err) {
      log.warn("agent event handler failed", { event: e.type, error: err });
    }
  }

  /** Sends on `ch` if it is still the live control channel; false when it is gone. */
  #send(ch: TextChannel | null, msg: AgentToRelay): boolean {
    if (ch === null || ch !== this.#control) return false;
    ch.send(JSON.stringify(msg));
    return true;
  }

  // ----------------------------------------------------------------------------------- control loop

  async #run(): Promise<void> {
    let attempt = 0;
    while (!this.#stopped) {
      attempt++;
      this.#emit({ type: "connecting", attempt });
      let reason: string;
      try {
        await this.#trust.check(this.#stopAc.signal);
        reason = await this.#connectOnce();
      } catch (e) {
        reason = (e as Error).message;
        if (e instanceof RelayTrustError && e.code === "MISMATCH") {
          log.error("refusing to connect: the relay's certificate changed", { error: reason });
        } else if (!this.#stopped) {
          log.warn("cannot connect to the relay", { error: reason });
        }
      }
      if (this.#stopped) break;
      const delay = this.#backoff.next();
      log.info("reconnecting to the relay", { reason, retryInMs: delay, attempt });
      this.#emit({ type: "disconnected", reason, retryInMs: delay });
      await this.#sleep(delay);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  /** One control connection, from open to close; resolves with the close reason. */
  async #connectOnce(): Promise<string> {
    const o = this.#o;
    const maxMessageBytes = o.maxMessageBytes ?? AGENT_DEFAULTS.maxMessageBytes;
    const ch = await openClientSocket(
      `${this.#trust.endpoints.wssBase}/ws/agent`,
      {
        caPem: this.#trust.caPem,
        timeoutMs: o.connectTimeoutMs ?? AGENT_DEFAULTS.connectTimeoutMs,
        signal: this.#stopAc.signal,
      },
      false,
      (ws) => new ClientTextChannel(ws, maxMessageBytes),
    );
    if (this.#stopped) {
      ch.close(AGENT_CLOSE.Normal, "agent stopping");
      return "agent stopping";
    }
    this.#control = ch;
    return new Promise<string>((resolve) => {
      let phase: "challenge" | "hello" | "ready" = "challenge";
      let watchdog: ReturnType<typeof setTimeout> | undefined;
      let silenceMs = 0;
      const handshakeMs = o.handshakeTimeoutMs ?? AGENT_DEFAULTS.handshakeTimeoutMs;
      const handshake = setTimeout(
        () => ch.close(AGENT_CLOSE.Timeout, `no welcome within ${handshakeMs} ms`),
        handshakeMs,
      );
      const fail = (why: string): void => ch.close(AGENT_CLOSE.ProtocolError, why);
      const feedWatchdog = (): void => {
        if (phase !== "ready") return;
        clearTimeout(watchdog);
        watchdog = setTimeout(
          () => ch.close(AGENT_CLOSE.Timeout, `nothing from the relay for ${silenceMs} ms`),
          silenceMs,
        );
      };

      ch.onClose = (reason) => {
        clearTimeout(handshake);
        clearTimeout(watchdog);
        if (this.#control === ch) this.#control = null;
        this.#connected = false;
        resolve(reason);
      };

      ch.onText = (text) => {
        let m: unknown;
        try {
          m = JSON.parse(text);
        } catch {
          fail("malformed control message");
          return;
        }
        if (!isRecord(m) || typeof m.type !== "string") {
          fail("malformed control message");
          return;
        }
        feedWatchdog();
        switch (phase) {
          case "challenge": {
            if (m.type !== "challenge" || typeof m.nonce !== "string" || !NONCE.test(m.nonce)) {
              fail("expected a challenge");
              return;
            }
            phase = "hello";
            void this.#answerChallenge(ch, m.nonce);
            return;
          }
          case "hello": {
            if (m.type !== "welcome") {
              fail("expected a welcome");
              return;
            }
            if (m.deviceId !== this.deviceId) {
              fail("welcome names another device");
              return;
            }
            const hb =
              typeof m.heartbeatSeconds === "number" &&
              Number.isFinite(m.heartbeatSeconds) &&
              m.heartbeatSeconds > 0 &&
              m.heartbeatSeconds <= 86_400
                ? m.heartbeatSeconds
                : AGENT_DEFAULTS.heartbeatSeconds;
            phase = "ready";
            clearTimeout(handshake);
            silenceMs = Math.ceil(hb * 1000 * (o.heartbeatMisses ?? AGENT_DEFAULTS.heartbeatMisses));
            feedWatchdog();
            this.#connected = true;
            // A connection that was accepted: the next drop starts the back-off from the beginning.
            this.#backoff.reset();
            log.info("connected to the relay", { deviceId: this.deviceId, heartbeatSeconds: hb });
            this.#emit({ type: "welcome", deviceId: this.deviceId, heartbeatSeconds: hb });
            return;
          }
          case "ready":
            this.#onMessage(ch, m, fail);
            return;
        }
      };
    });
  }

  async #answerChallenge(ch: TextChannel, nonce: string): Promise<void> {
    let signature: string;
    try {
      signature = await signProof(this.#identity, nonce, this.deviceId);
    } catch (e) {
      log.error("cannot sign the relay's challenge", { error: e });
      ch.close(AGENT_CLOSE.Normal, "signing failed");
      return;
    }
    const hello: HelloMsg = {
      type: "hello",
      deviceId: this.deviceId,
      signature,
      consent: this.#o.consent,
      version: AGENT_VERSION,
    };
    this.#send(ch, hello);
  }

  #onMessage(ch: TextChannel, m: Json, fail: (why: string) => void): void {
    switch (m.type) {
      case "ping": {
        if (typeof m.t !== "number" || !Number.isFinite(m.t)) {
          fail("malformed ping");
          return;
        }
        const pong: PongMsg = { type: "pong", t: m.t };
        this.#send(ch, pong);
        return;
      }
      case "session":
        this.#onSessionRequest(ch, m);
        return;
      case "end": {
        const s = typeof m.sessionId === "string" ? this.#sessions.get(m.sessionId) : undefined;
        if (!s) return; // already over on this side
        const by = shortText(m.by) ?? "relay";
        const reason = shortText(m.reason) ?? "ended by the relay";
        this.#finish(s, reason, by, false);
        return;
      }
      case "challenge":
      case "welcome":
        fail(`unexpected ${m.type}`);
        return;
      default:
        // A newer relay's message: nothing to do with it.
        log.debug("ignoring an unknown control message", { type: String(m.type).slice(0, 64) });
    }
  }

  #onSessionRequest(ch: TextChannel, m: Json): void {
    const req = sessionRequest(m);
    if (!req) {
      // Without a usable id there is nothing to answer; with one, say no.
      if (typeof m.sessionId === "string" && SESSION_ID.test(m.sessionId)) {
        this.#answer(ch, m.sessionId, false, "malformed request");
      }
      log.warn("refused a malformed session request");
      return;
    }
    if (this.#sessions.has(req.sessionId)) {
      log.warn("ignored a repeated session request", { sessionId: req.sessionId });
      return;
    }
    const max = this.#o.maxSessions ?? AGENT_DEFAULTS.maxSessions;
    if (this.#sessions.size >= max) {
      this.#answer(ch, req.sessionId, false, "too many sessions");
      return;
    }
    const s: Session = {
      id: req.sessionId,
      request: req,
      control: ch,
      phase: "consent",
      abort: new AbortController(),
      data: null,
      bridge: null,
      ended: false,
    };
    this.#sessions.set(s.id, s);
    log.info("session requested", {
      sessionId: s.id,
      requester: req.requester.name,
      role: req.requester.role,
      viewOnly: req.viewOnly,
    });
    this.#emit({
      type: "session-request",
      sessionId: s.id,
      requester: req.requester,
      viewOnly: req.viewOnly,
    });
    void this.#runSession(s);
  }

  #answer(ch: TextChannel, sessionId: string, granted: boolean, reason: string): boolean {
    const msg: ConsentMsg = { type: "consent", sessionId, granted, reason };
    this.#emit({ type: "consent", sessionId, granted, reason });
    return this.#send(ch, msg);
  }

  async #runSession(s: Session): Promise<void> {
    const o = this.#o;
    let decision: ConsentDecision;
    try {
      decision = await decideConsent({
        policy: o.consent,
        ...(o.consentCommand !== undefined ? { command: o.consentCommand } : {}),
        requester: s.request.requester,
        timeoutMs: o.consentTimeoutMs ?? AGENT_DEFAULTS.consentTimeoutMs,
      });
    } catch {
      decision = { granted: false, reason: "command failed" };
    }
    if (s.ended) return;
    log.info("consent", { sessionId: s.id, granted: decision.granted, reason: decision.reason });
    if (!this.#answer(s.control, s.id, decision.granted, decision.reason)) {
      // The control connection the request came on is gone; the relay has given up on this session.
      this.#finish(s, "control connection lost", "agent", false);
      return;
    }
    if (!decision.granted) {
      this.#finish(s, `consent refused: ${decision.reason}`, "consent", false);
      return;
    }

    s.phase = "connecting";
    let data: ClientByteChannel;
    try {
      data = await openClientSocket(
        `${this.#trust.endpoints.wssBase}/ws/agent/data/${encodeURIComponent(s.id)}`,
        {
          caPem: this.#trust.caPem,
          headers: { Authorization: `Bearer ${s.request.dataToken}` },
          timeoutMs: o.connectTimeoutMs ?? AGENT_DEFAULTS.connectTimeoutMs,
          signal: s.abort.signal,
        },
        true,
        (ws) => new ClientByteChannel(ws),
      );
    } catch (e) {
      if (!s.ended) {
        log.warn("cannot open the session's data channel", { sessionId: s.id, error: (e as Error).message });
        this.#finish(s, "data channel failed", "agent", true);
      }
      return;
    }
    if (s.ended) {
      data.close("session ended");
      return;
    }
    s.data = data;

    let bridge: VncBridge;
    try {
      bridge = await bridgeToVnc(
        data,
        { host: o.vnc.host, port: o.vnc.port, ...(o.vncPassword ? { password: o.vncPassword } : {}) },
        { ...o.bridge, signal: s.abort.signal },
      );
    } catch (e) {
      const err = toRfbError(e);
      if (!s.ended) {
        log.warn("cannot bridge the session to the VNC server", {
          sessionId: s.id,
          code: err.code,
          error: err.message,
        });
        this.#finish(s, err.reason, "agent", true);
      }
      return;
    }
    if (s.ended) {
      bridge.close("session ended");
      return;
    }
    s.bridge = bridge;
    s.phase = "bridged";
    log.info("session bridged", {
      sessionId: s.id,
      vncSecurity: bridge.server.securityType,
      width: bridge.server.width,
      height: bridge.server.height,
    });
    this.#emit({ type: "session-started", sessionId: s.id });
    const result = await bridge.done;
    log.info("session data closed", {
      sessionId: s.id,
      reason: result.reason,
      bytesFromVnc: result.aToB,
      bytesToVnc: result.bToA,
    });
    // The VNC server ("a") closing is news to the relay; the relay's own side ("b") closing is not.
    if (!s.ended)
      this.#finish(s, result.reason, result.closedBy === "a" ? "agent" : "relay", result.closedBy === "a");
  }

  /**
   * Ends a session once: EndMsg first when `tell` (so the relay records who before the data channel
   * closes), then the handshake is aborted or the bridge and data channel closed with `reason`.
   */
  #finish(s: Session, reason: string, by: string, tell: boolean): void {
    if (s.ended) return;
    s.ended = true;
    this.#sessions.delete(s.id);
    if (tell) {
      const end: EndMsg = { type: "end", sessionId: s.id, by, reason };
      if (!this.#send(this.#control, end)) {
        log.warn("no control connection to report the session's end", { sessionId: s.id });
      }
    }
    s.abort.abort(new RfbError("PEER_CLOSED", reason));
    // The relay's side first, so it sees this reason: the splice then closes the VNC side with it too
    // (closing the VNC side first would show the relay the TCP link's own "peer closed" instead).
    s.data?.close(reason);
    s.bridge?.close(reason);
    log.info("session ended", { sessionId: s.id, by, reason });
    this.#emit({ type: "session-ended", sessionId: s.id, by, reason });
  }
}

/**
 * Starts the agent for an enrolled state directory: loads the identity and the pinned relay certificate,
 * then keeps the control connection up until stop(). Throws NOT_ENROLLED without an identity, BAD_OPTIONS
 * for options that cannot work, and the identity's or the trust's coded errors for unusable state.
 */
export async function startAgent(o: AgentOptions): Promise<AgentHandle> {
  if (!CONSENT_POLICIES.includes(o.consent)) throw new AgentError("BAD_OPTIONS", "unknown consent policy");
  if (!Number.isInteger(o.vnc.port) || o.vnc.port < 1 || o.vnc.port > 65_535) {
    throw new AgentError("BAD_OPTIONS", "VNC port must be 1…65535");
  }
  if (o.consent === "ask" && o.consentCommand === undefined) {
    log.warn("consent policy ask without --consent-command: every session will be refused");
  }
  const identity = await loadIdentity(o.stateDir);
  if (!identity) throw new AgentError("NOT_ENROLLED", o.stateDir);
  const pin = await loadRelayPin(o.stateDir, identity);
  const trust = trustFor(pin);
  const agent = new Agent(identity, trust, o);
  log.info("agent starting", {
    deviceId: identity.deviceId,
    relay: trust.endpoints.httpsBase,
    relayCertSha256: trust.sha256Hex,
    consent: o.consent,
    vnc: `${o.vnc.host}:${o.vnc.port}`,
  });
  agent.start();
  return agent;
}
