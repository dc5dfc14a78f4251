// Direct mode, the agent's side (DESIGN.md "Direct mode"; issue #4 "Direct mode"; `agent --listen
// HOST:PORT`): a TLS 1.3 listener whose certificate carries the device's own enrolled key, so the relay can
// check the key it pinned before it says anything. Per connection the agent reads one request line, checks
// that the relay signed it with the key of the relay certificate pinned at enrollment, that it is fresh and
// not a replay, applies the consent policy, answers one line, and — only when granted — bridges the rest of
// the stream to the device's VNC server (vnc-bridge.ts: the device's VNC password is answered here, the
// relay sees security None). A refused request gets its answer line and the connection closes: no RFB byte.
// The wire format is relay/gateway/direct.ts's.
//
// Freshness: a request is refused when its issuedAt is more than maxRequestAgeMs in the past or more than
// maxClockSkewMs in the future; each nonce is remembered until issuedAt + maxRequestAgeMs + maxClockSkewMs,
// after which the age check alone refuses it, so a captured request can never be played again.
// Only requests with a valid signature take a place in that memory: an unauthenticated peer cannot fill it.

import type { Socket, TCPSocketListener } from "bun";
import {
  DEVICE_LINK_TLS_OPTIONS,
  type DirectAnswer,
  type DirectRequest,
  LineReader,
  type TlsLinkState,
  channelOver,
  directProofSubject,
  encodeLine,
  parseDirectRequest,
  parseHostPort,
  tlsLinkHandlers,
} from "../gateway/direct.ts";
import { RfbError, toRfbError } from "../rfb/errors.ts";
import { TcpLink } from "../rfb/tcp.ts";
import { log } from "../util/log.ts";
import { pemDecode, parseCertificate } from "../util/x509.ts";
import { AgentError } from "./agent.ts";
import { CONSENT_POLICIES, type ConsentDecision, type ConsentPolicy, decideConsent } from "./consent.ts";
import { type AgentIdentity, loadIdentity, selfSignedCertFor, verifyProof } from "./identity.ts";
import { loadRelayPin, trustFor } from "./relay-trust.ts";
import { type VncBridge, type VncBridgeOptions, bridgeToVnc } from "./vnc-bridge.ts";

export const DIRECT_AGENT_DEFAULTS = Object.freeze({
  /** Milliseconds from the TCP accept to a complete request line (TLS handshake included). @default 10000 */
  requestTimeoutMs: 10_000,
  /** Largest request line, bytes with the newline (ours are about 400). @default 8192 */
  maxRequestBytes: 8 * 1024,
  /** Oldest request accepted, milliseconds before now (the relay's clock against ours). @default 60000 */
  maxRequestAgeMs: 60_000,
  /** Furthest a request's issuedAt may be ahead of our clock, milliseconds. @default 60000 */
  maxClockSkewMs: 60_000,
  /** Nonces remembered at once; a full memory refuses new requests rather than forget one early. @default 10000 */
  maxRememberedNonces: 10_000,
  /** Connections still before their answer at once; more are closed at accept. @default 32 */
  maxPendingConnections: 32,
  /** Sessions at once (asking for consent or bridged); further requests are refused. @default 8 */
  maxSessions: 8,
  /**
   * Milliseconds the device user has to answer a consent prompt; then the answer is no. Below the relay's
   * answer timeout (45 s, relay/gateway/direct.ts) so the "timeout" answer reaches the relay. @default 30000
   */
  consentTimeoutMs: 30_000,
  /** Bytes queued towards the relay before a relay that stops reading is closed. @default 67108864 (64 MiB) */
  maxQueuedBytes: 64 * 1024 * 1024,
});

/** Every field a number (the defaults object is frozen, so its own type has literal types). */
export type DirectAgentLimits = { -readonly [K in keyof typeof DIRECT_AGENT_DEFAULTS]: number };

/** Why the agent refused a request itself (the answer's reason, by "agent"). */
export type DirectRefusal =
  | "malformed"
  | "stale"
  | "bad-signature"
  | "replay"
  | "busy"
  | "duplicate-session"
  | "stopping";

export type DirectAgentEvent =
  | { type: "refused"; remote: string; reason: DirectRefusal; detail?: string }
  | { type: "consent"; sessionId: string; granted: boolean; reason: string }
  | { type: "session-started"; sessionId: string }
  | { type: "session-ended"; sessionId: string; reason: string };

export interface DirectAgentOptions {
  /** Where enrollment stored the identity and the relay's certificate. */
  stateDir: string;
  /** "host:port" or "[v6]:port" to listen on; port 0 picks a free one (see DirectAgentHandle.port). */
  listen: string;
  /** The device's VNC server. */
  vnc: { host: string; port: number };
  /** Its password (--vnc-password-file), answered here and never sent to the relay. */
  vncPassword?: Uint8Array;
  consent: ConsentPolicy;
  /** --consent-command: argv, or a command line (split without a shell). */
  consentCommand?: string | readonly string[];
  /** Overrides of DIRECT_AGENT_DEFAULTS. */
  limits?: Partial<DirectAgentLimits>;
  /** Passed to bridgeToVnc (its connect timeout, RFB limits, another way to reach the VNC server). */
  bridge?: Omit<VncBridgeOptions, "signal">;
  /** The clock (freshness and the nonce memory). @default Date.now */
  now?: () => number;
  /** Called for each event (logging and tests); an exception in it is logged and ignored. */
  onEvent?: (e: DirectAgentEvent) => void;
}

export interface DirectAgentHandle {
  readonly deviceId: string;
  /** The port listened on (the chosen one for port 0). */
  readonly port: number;
  /** SHA-256 of the listener certificate's SPKI: the device's pin. */
  readonly spkiSha256: string;
  /** The device user ends a session (or all): its connection closes. Returns the ids ended. */
  endSession(sessionId?: string): string[];
  /** Sessions asking for consent or bridged. */
  sessions(): string[];
  /** Stops listening, ends every session and connection; resolves when the bridges are down. */
  stop(): Promise<void>;
}

interface Conn {
  sock: Socket<TlsLinkState>;
  remote: string;
  phase: "request" | "checking" | "consent" | "bridging" | "bridged" | "closed";
  lines: LineReader;
  timer: ReturnType<typeof setTimeout> | null;
  sessionId: string | null;
  abort: AbortController;
  bridge: VncBridge | null;
  /** Counted in #pending until answered. */
  pending: boolean;
}

const P256 = { name: "ECDSA", namedCurve: "P-256" } as const;

class DirectAgent implements DirectAgentHandle {
  readonly deviceId: string;
  readonly spkiSha256: string;
  readonly #relaySpki: Uint8Array;
  readonly #o: DirectAgentOptions;
  readonly #l: DirectAgentLimits;
  readonly #now: () => number;
  /** nonce → when it may be forgotten (ms). */
  readonly #nonces = new Map<string, number>();
  readonly #conns = new Set<Conn>();
  readonly #sessions = new Map<string, Conn>();
  readonly #bridges = new Set<Promise<unknown>>();
  #pending = 0;
  #listener: TCPSocketListener<TlsLinkState> | null = null;
  #stopping: Promise<void> | null = null;

  constructor(identity: AgentIdentity, relaySpki: Uint8Array, spkiSha256: string, o: DirectAgentOptions) {
    this.#relaySpki = relaySpki;
    this.#o = o;
    this.#l = { ...DIRECT_AGENT_DEFAULTS, ...o.limits };
    this.#now = o.now ?? Date.now;
    this.deviceId = identity.deviceId;
    this.spkiSha256 = spkiSha256;
  }

  get port(): number {
    return this.#listener?.port ?? 0;
  }

  listen(host: string, port: number, certPem: string, keyPem: string): void {
    this.#listener = Bun.listen<TlsLinkState>({
      hostname: host,
      port,
      tls: { cert: certPem, key: keyPem, secureOptions: DEVICE_LINK_TLS_OPTIONS },
      socket: {
        ...tlsLinkHandlers,
        open: (s) => this.#accept(s),
        // Present so that open fires at the TCP accept: the request deadline then covers the handshake.
        handshake: () => {},
      },
    });
  }

  #emit(e: DirectAgentEvent): void {
    if (!this.#o.onEvent) return;
    try {
      this.#o.onEvent(e);
    } catch (err) {
      log.warn("direct agent event handler failed", { event: e.type, error: err });
    }
  }

  #accept(s: Socket<TlsLinkState>): void {
    const remote = `${s.remoteAddress}`;
    s.data = { link: new TcpLink(s, remote, this.#l.maxQueuedBytes), handler: null };
    if (this.#stopping !== null || this.#pending >= this.#l.maxPendingConnections) {
      log.warn("direct connection closed at accept", { remote, pending: this.#pending });
      s.data.link.abort();
      return;
    }
    const c: Conn = {
      sock: s,
      remote,
      phase: "request",
      lines: new LineReader(this.#l.maxRequestBytes),
      timer: null,
      sessionId: null,
      abort: new AbortController(),
      bridge: null,
      pending: true,
    };
    this.#pending++;
    this.#conns.add(c);
    c.timer = setTimeout(() => this.#drop(c, "no request in time"), this.#l.requestTimeoutMs);
    s.data.handler = {
      data: (bytes) => this.#onData(c, bytes),
      close: () => this.#drop(c, "peer closed"),
    };
  }

  #onData(c: Conn, bytes: Uint8Array): void {
    if (c.phase !== "request") {
      // Nothing may follow the request line before our answer: the relay's RFB starts after it.
      if (c.phase === "checking" || c.phase === "consent")
        this.#refuse(c, "malformed", "bytes before the answer");
      return;
    }
    let got: { line: string; rest: Uint8Array } | undefined;
    try {
      got = c.lines.push(bytes);
    } catch (e) {
      this.#refuse(c, "malformed", (e as Error).message);
      return;
    }
    if (got === undefined) return;
    if (c.timer) clearTimeout(c.timer);
    c.timer = null;
    c.phase = "checking";
    if (got.rest.byteLength > 0) {
      this.#refuse(c, "malformed", "bytes after the request line");
      return;
    }
    void this.#handle(c, got.line).catch((e: unknown) => {
      log.error("direct request failed", { remote: c.remote, error: e });
      this.#drop(c, "internal error");
    });
  }

  async #handle(c: Conn, line: string): Promise<void> {
    const req = parseDirectRequest(line);
    if (typeof req === "string") {
      this.#refuse(c, "malformed", req);
      return;
    }
    const now = this.#now();
    if (req.issuedAt < now - this.#l.maxRequestAgeMs || req.issuedAt > now + this.#l.maxClockSkewMs) {
      this.#refuse(c, "stale", `issued ${now - req.issuedAt} ms ago`);
      return;
    }
    const ok = await verifyProof(
      this.#relaySpki,
      directProofSubject(req),
      this.deviceId,
      req.signature,
      "relay",
    );
    if (c.phase !== "checking") return; // closed while we verified
    if (!ok) {
      this.#refuse(c, "bad-signature");
      return;
    }
    const remembered = this.#remember(req, this.#now());
    if (remembered !== true) {
      this.#refuse(c, remembered);
      return;
    }
    if (this.#stopping !== null) {
      this.#refuse(c, "stopping");
      return;
    }
    if (this.#sessions.has(req.sessionId)) {
      this.#refuse(c, "duplicate-session");
      return;
    }
    if (this.#sessions.size >= this.#l.maxSessions) {
      this.#refuse(c, "busy", "too many sessions");
      return;
    }
    c.sessionId = req.sessionId;
    c.phase = "consent";
    this.#sessions.set(req.sessionId, c);
    log.info("direct session requested", {
      sessionId: req.sessionId,
      requester: req.requester.name,
      role: req.requester.role,
      viewOnly: req.viewOnly,
      remote: c.remote,
    });
    await this.#consent(c, req);
  }

  /** Records the nonce (true), or says why not: already seen (replay), or the memory is full (busy). */
  #remember(req: DirectRequest, now: number): true | "replay" | "busy" {
    if (this.#nonces.has(req.nonce)) return "replay";
    if (this.#nonces.size >= this.#l.maxRememberedNonces) {
      for (const [nonce, until] of this.#nonces) if (until <= now) this.#nonces.delete(nonce);
      if (this.#nonces.size >= this.#l.maxRememberedNonces) return "busy";
    }
    this.#nonces.set(req.nonce, req.issuedAt + this.#l.maxRequestAgeMs + this.#l.maxClockSkewMs);
    // Cheap upkeep: the oldest entries are usually the first to expire.
    for (const [nonce, until] of this.#nonces) {
      if (until > now) break;
      this.#nonces.delete(nonce);
    }
    return true;
  }

  async #consent(c: Conn, req: DirectRequest): Promise<void> {
    const o = this.#o;
    let decision: ConsentDecision;
    try {
      decision = await decideConsent({
        policy: o.consent,
        ...(o.consentCommand !== undefined ? { command: o.consentCommand } : {}),
        requester: req.requester,
        timeoutMs: this.#l.consentTimeoutMs,
      });
    } catch {
      decision = { granted: false, reason: "command failed" };
    }
    this.#emit({ type: "consent", sessionId: req.sessionId, ...decision });
    log.info("direct session consent", { sessionId: req.sessionId, ...decision });
    if (c.phase !== "consent") return; // the relay left, or the device user ended it meanwhile
    this.#answer(c, {
      type: "direct-answer",
      granted: decision.granted,
      reason: decision.reason,
      by: "consent",
    });
    if (!decision.granted) {
      this.#drop(c, `consent refused: ${decision.reason}`);
      return;
    }
    c.phase = "bridging";
    const relaySide = channelOver(c.sock, new Uint8Array(0));
    const bridging = this.#bridge(c, req.sessionId, relaySide);
    this.#bridges.add(bridging);
    void bridging.finally(() => this.#bridges.delete(bridging));
  }

  async #bridge(c: Conn, sessionId: string, relaySide: ReturnType<typeof channelOver>): Promise<void> {
    const o = this.#o;
    let bridge: VncBridge;
    try {
      bridge = await bridgeToVnc(
        relaySide,
        { host: o.vnc.host, port: o.vnc.port, ...(o.vncPassword ? { password: o.vncPassword } : {}) },
        { ...o.bridge, signal: c.abort.signal },
      );
    } catch (e) {
      const err = toRfbError(e);
      log.warn("cannot bridge the direct session to the VNC server", {
        sessionId,
        code: err.code,
        error: err.message,
      });
      this.#drop(c, err.reason);
      return;
    }
    if (c.phase !== "bridging") {
      bridge.close("session ended");
      return;
    }
    c.bridge = bridge;
    c.phase = "bridged";
    log.info("direct session bridged", {
      sessionId,
      vncSecurity: bridge.server.securityType,
      width: bridge.server.width,
      height: bridge.server.height,
    });
    this.#emit({ type: "session-started", sessionId });
    const result = await bridge.done;
    log.info("direct session data closed", {
      sessionId,
      reason: result.reason,
      bytesFromVnc: result.aToB,
      bytesToVnc: result.bToA,
    });
    this.#drop(c, result.reason);
  }

  #answer(c: Conn, a: DirectAnswer): void {
    if (c.pending) {
      c.pending = false;
      this.#pending--;
    }
    c.sock.data.link.write(encodeLine(a));
  }

  /** Refuses a request: the answer line (by "agent"), then the connection closes; no RFB byte. */
  #refuse(c: Conn, reason: DirectRefusal, detail?: string): void {
    if (c.phase === "closed") return;
    log.warn("direct request refused", { remote: c.remote, reason, ...(detail ? { detail } : {}) });
    this.#emit({ type: "refused", remote: c.remote, reason, ...(detail ? { detail } : {}) });
    this.#answer(c, {
      type: "direct-answer",
      granted: false,
      reason,
      by: "agent",
    });
    this.#drop(c, `refused: ${reason}`);
  }

  /** Ends a connection once: its session, its timer, its bridge; queued bytes (an answer) are flushed. */
  #drop(c: Conn, reason: string): void {
    const phase = c.phase;
    if (phase === "closed") return;
    const wasSession = c.sessionId !== null && this.#sessions.get(c.sessionId) === c;
    c.phase = "closed";
    if (c.timer) clearTimeout(c.timer);
    c.timer = null;
    if (c.pending) {
      c.pending = false;
      this.#pending--;
    }
    this.#conns.delete(c);
    if (wasSession) this.#sessions.delete(c.sessionId!);
    // A bridge being set up fails on this and closes the relay's side itself (vnc-bridge.ts).
    c.abort.abort(new RfbError("PEER_CLOSED", reason));
    if (c.bridge) {
      c.bridge.close(reason);
    } else if (phase !== "bridging") {
      c.sock.data.handler = null;
      c.sock.data.link.end();
    }
    if (wasSession) {
      log.info("direct session ended", { sessionId: c.sessionId, reason });
      this.#emit({ type: "session-ended", sessionId: c.sessionId!, reason });
    }
  }

  sessions(): string[] {
    return [...this.#sessions.keys()];
  }

  endSession(sessionId?: string): string[] {
    const ended: string[] = [];
    for (const [id, c] of [...this.#sessions]) {
      if (sessionId !== undefined && id !== sessionId) continue;
      this.#drop(c, "ended by the device user");
      ended.push(id);
    }
    return ended;
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#listener?.stop(true);
      for (const c of [...this.#conns]) this.#drop(c, "agent stopping");
      await Promise.allSettled([...this.#bridges]);
      log.info("direct agent stopped", { deviceId: this.deviceId });
    })();
    return this.#stopping;
  }
}

/**
 * Starts direct mode for an enrolled state directory: loads the identity and the pinned relay certificate
 * (whose key must be ECDSA P-256: it verifies the relay's requests), makes a certificate for the device key
 * and listens with TLS 1.3. Throws AgentError NOT_ENROLLED without an identity, BAD_OPTIONS for options that
 * cannot work, and the identity's or the trust's coded errors for unusable state.
 */
export async function startDirectAgent(o: DirectAgentOptions): Promise<DirectAgentHandle> {
  if (!CONSENT_POLICIES.includes(o.consent)) throw new AgentError("BAD_OPTIONS", "unknown consent policy");
  if (!Number.isInteger(o.vnc.port) || o.vnc.port < 1 || o.vnc.port > 65_535) {
    throw new AgentError("BAD_OPTIONS", "VNC port must be 1…65535");
  }
  const where = parseHostPort(o.listen, true);
  if (where === undefined) throw new AgentError("BAD_OPTIONS", "--listen must be HOST:PORT");
  if (o.consent === "ask" && o.consentCommand === undefined) {
    log.warn("consent policy ask without --consent-command: every session will be refused");
  }
  const identity = await loadIdentity(o.stateDir);
  if (!identity) throw new AgentError("NOT_ENROLLED", o.stateDir);
  const pin = await loadRelayPin(o.stateDir, identity);
  trustFor(pin); // the stored certificate must still hash to the pin
  const relaySpki = parseCertificate(pemDecode(pin.certPem, "CERTIFICATE")).spki;
  try {
    await crypto.subtle.importKey("spki", relaySpki as Uint8Array<ArrayBuffer>, P256, false, ["verify"]);
  } catch {
    throw new AgentError(
      "BAD_OPTIONS",
      "the pinned relay certificate's key is not ECDSA P-256: it cannot verify direct-mode requests",
    );
  }
  const cert = await selfSignedCertFor(identity);
  const agent = new DirectAgent(identity, relaySpki, cert.spkiSha256Hex, o);
  agent.listen(where.host, where.port, cert.certPem, cert.keyPem);
  log.info("direct agent listening", {
    deviceId: identity.deviceId,
    listen: `${where.host.includes(":") ? `[${where.host}]` : where.host}:${agent.port}`,
    spkiSha256: cert.spkiSha256Hex,
    relayCertSha256: pin.certSha256,
    consent: o.consent,
    vnc: `${o.vnc.host}:${o.vnc.port}`,
  });
  return agent;
}
