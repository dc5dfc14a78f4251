// Direct mode, the relay's side and the wire format both ends share (DESIGN.md "Direct mode"; issue #4
// "Direct mode"): the relay dials the device's agent over TLS 1.3 with certificate verification off, and
// before it sends a single byte checks that the certificate the device presented carries the pinned key
// (SHA-256 of its SubjectPublicKeyInfo) — a device presenting another key is refused and audited. Then it
// proves itself with one signed request line, reads the agent's one answer line (the device user's consent),
// and hands the TLS stream on as a ByteChannel: from there on it is RFB, the agent answering the device VNC
// server's own password and offering security None to us (relay/agent/vnc-bridge.ts).
//
// Wire format (one UTF-8 JSON object per line, "\n"-terminated, both lines capped):
//   relay → agent  DirectRequest {type: "direct-session", sessionId, requester: {name, role}, viewOnly, nonce,
//                  issuedAt, signature}
//   agent → relay  DirectAnswer  {type: "direct-answer", granted, reason, by: "consent" | "agent"}
// `signature` is the relay's ECDSA P-256 / SHA-256 signature (r‖s, base64url) with the private key of its
// TLS certificate — the certificate every agent pinned at enrollment — over
// proofPayload("relay", directProofSubject(request), deviceId). The subject covers the nonce, the session,
// the issue time, view-only and the requester, so none of them can be changed by whoever carries the
// request (a viewer's machine, once `connect --direct` hands out such grants). The agent refuses stale,
// future-dated and replayed requests (relay/agent/direct.ts).
//
// The same dial serves `connect --direct` (relay/connect/direct.ts): there the relay only signs a grant
// (issueDirectGrant: address, pin, request) and audits it, and the viewer's machine runs dialDirect itself,
// so the relay carries no screen data.
//
// The TLS plumbing reuses relay/rfb/tcp.ts's TcpLink (bounded write queue) and splice.ts's LinkChannel (held
// until a consumer attaches), with Bun's TLS sockets underneath.

import { constants as cryptoConstants, createPrivateKey, timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";
import { randomBytes } from "@noble/hashes/utils.js";
import type { Socket } from "bun";
import type { AuditFn } from "../control/audit.ts";
import { ControlError } from "../control/errors.ts";
import { LinkChannel } from "../rfb/splice.ts";
import { type LinkHandler, TcpLink } from "../rfb/tcp.ts";
import type { ByteChannel } from "../session/channel.ts";
import { log } from "../util/log.ts";
import { CertificateError, parseCertificate, sha256Hex } from "../util/x509.ts";
import { proofPayload, toBase64url } from "./protocol.ts";

export const DIRECT_SESSION_DEFAULTS = Object.freeze({
  /** Milliseconds for the TCP connection and the TLS handshake with the device's agent. @default 10000 */
  connectTimeoutMs: 10_000,
  /**
   * Milliseconds from the signed request to the agent's answer: the device user's consent. Longer than the
   * agent's own prompt timeout (30 s) so that its "timeout" answer arrives before we give up. @default 45000
   */
  answerTimeoutMs: 45_000,
  /** Largest answer line read from the agent, bytes with the newline (ours are < 200). @default 4096 */
  maxAnswerBytes: 4096,
  /** Bytes queued towards the device before a device that stops reading is closed. @default 67108864 (64 MiB) */
  maxQueuedBytes: 64 * 1024 * 1024,
});

/** Every field a number (the defaults object is frozen, so its own type has literal types). */
export type DirectSessionOptions = { -readonly [K in keyof typeof DIRECT_SESSION_DEFAULTS]: number };

/**
 * TLS 1.3 only on the device link: both ends are ours (bad-inputs.md §c 9). Bun's TLS options have no
 * minVersion; secureOptions takes OpenSSL's SSL_OP_NO_* bits (a TLS 1.2 client gets alert 70).
 */
export const DEVICE_LINK_TLS_OPTIONS: number =
  cryptoConstants.SSL_OP_NO_TLSv1 | cryptoConstants.SSL_OP_NO_TLSv1_1 | cryptoConstants.SSL_OP_NO_TLSv1_2;

// ------------------------------------------------------------------------------------------ wire format

export type DirectRole = "admin" | "operator";

/** Relay → agent: the one request line. */
export interface DirectRequest {
  type: "direct-session";
  sessionId: string;
  requester: { name: string; role: DirectRole };
  viewOnly: boolean;
  /** 32 random bytes, base64url; the agent remembers it until issuedAt + its replay window. */
  nonce: string;
  /** Milliseconds since the epoch, by the relay's clock. */
  issuedAt: number;
  /** base64url r‖s over proofPayload("relay", directProofSubject(this), deviceId). */
  signature: string;
}

/** Agent → relay: the one answer line. */
export interface DirectAnswer {
  type: "direct-answer";
  granted: boolean;
  /** The consent reason (relay/agent/consent.ts ConsentDecision.reason) or why the agent refused the request. */
  reason: string;
  /** "consent": the consent policy decided; "agent": the agent refused the request itself (signature, replay…). */
  by: "consent" | "agent";
}

/** Session ids as the rest of the relay has them (URL-safe). */
export const DIRECT_SESSION_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** At least 128 bits of base64url; ours are 256. */
const NONCE = /^[A-Za-z0-9_-]{22,128}$/;
/** A P1363 P-256 signature, base64url without padding: exactly 86 characters. */
const SIGNATURE = /^[A-Za-z0-9_-]{86}$/;
/** Longest requester name and answer reason, characters (DESIGN.md "Limits": names and reasons ≤ 1 KiB). */
export const DIRECT_MAX_TEXT = 1024;
const NONCE_BYTES = 32;
const REQUEST_KEYS = ["type", "sessionId", "requester", "viewOnly", "nonce", "issuedAt", "signature"];
const ANSWER_KEYS = ["type", "granted", "reason", "by"];

/**
 * What the relay signs besides the device id: nonce, session, issue time, view-only and requester, joined
 * by ":" — no field can hold a ":" (base64url, URL-safe ids, digits, fixed words, the name base64url'd),
 * so the joined text reads back one way only.
 */
export function directProofSubject(r: Omit<DirectRequest, "type" | "signature">): string {
  return [
    r.nonce,
    r.sessionId,
    String(r.issuedAt),
    r.viewOnly ? "view-only" : "control",
    r.requester.role,
    toBase64url(new TextEncoder().encode(r.requester.name)),
  ].join(":");
}

const ECDSA_SHA256 = { name: "ECDSA", hash: "SHA-256" } as const;
const P256 = { name: "ECDSA", namedCurve: "P-256" } as const;

/** A fresh signed request for `deviceId` (the nonce is 32 random bytes unless given, for tests). */
export async function signDirectRequest(
  key: CryptoKey,
  deviceId: string,
  fields: { sessionId: string; requester: { name: string; role: DirectRole }; viewOnly: boolean },
  issuedAt: number = Date.now(),
  nonce: string = toBase64url(randomBytes(NONCE_BYTES)),
): Promise<DirectRequest> {
  const unsigned = {
    sessionId: fields.sessionId,
    requester: { name: fields.requester.name, role: fields.requester.role },
    viewOnly: fields.viewOnly,
    nonce,
    issuedAt,
  };
  const payload = proofPayload("relay", directProofSubject(unsigned), deviceId);
  const sig = await crypto.subtle.sign(ECDSA_SHA256, key, payload as Uint8Array<ArrayBuffer>);
  return { type: "direct-session", ...unsigned, signature: toBase64url(new Uint8Array(sig)) };
}

/**
 * The relay's TLS private key (any PEM form node:crypto reads: PKCS#8, SEC1 "EC PRIVATE KEY") as a P-256
 * signing key. Direct mode needs the key of the certificate agents pinned to be ECDSA P-256: an operator's
 * RSA certificate (--cert/--key) cannot sign direct requests (UNAVAILABLE, saying so).
 */
export async function importRelaySigningKey(privateKeyPem: string): Promise<CryptoKey> {
  const unusable = new ControlError(
    "UNAVAILABLE",
    "direct mode needs the relay's TLS key to be an ECDSA P-256 key (the one of the certificate agents pinned)",
  );
  let pkcs8: Uint8Array;
  try {
    const key = createPrivateKey(privateKeyPem);
    if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1")
      throw unusable;
    pkcs8 = new Uint8Array(key.export({ type: "pkcs8", format: "der" }));
  } catch {
    throw unusable;
  }
  try {
    return await crypto.subtle.importKey("pkcs8", pkcs8 as Uint8Array<ArrayBuffer>, P256, false, ["sign"]);
  } catch {
    throw unusable;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function exactKeys(m: Record<string, unknown>, keys: readonly string[]): boolean {
  const present = Object.keys(m);
  return present.length === keys.length && present.every((k) => keys.includes(k));
}

/** 1…DIRECT_MAX_TEXT characters without control characters (they end up in logs, audit and argv). */
function isText(v: unknown): v is string {
  return typeof v === "string" && v.length > 0 && v.length <= DIRECT_MAX_TEXT && !/\p{Cc}/u.test(v);
}

/** A request line's JSON checked field by field (exact keys, shapes, bounds); a string says what is wrong. */
export function parseDirectRequest(line: string): DirectRequest | string {
  let m: unknown;
  try {
    m = JSON.parse(line);
  } catch {
    return "not JSON";
  }
  if (!isRecord(m) || !exactKeys(m, REQUEST_KEYS) || m.type !== "direct-session")
    return "not a direct request";
  if (typeof m.sessionId !== "string" || !DIRECT_SESSION_ID.test(m.sessionId)) return "bad sessionId";
  const r = m.requester;
  if (!isRecord(r) || !exactKeys(r, ["name", "role"]) || !isText(r.name)) return "bad requester";
  if (r.role !== "admin" && r.role !== "operator") return "bad requester role";
  if (typeof m.viewOnly !== "boolean") return "bad viewOnly";
  if (typeof m.nonce !== "string" || !NONCE.test(m.nonce)) return "bad nonce";
  if (typeof m.issuedAt !== "number" || !Number.isSafeInteger(m.issuedAt) || m.issuedAt < 0)
    return "bad issuedAt";
  if (typeof m.signature !== "string" || !SIGNATURE.test(m.signature)) return "bad signature encoding";
  return {
    type: "direct-session",
    sessionId: m.sessionId,
    requester: { name: r.name, role: r.role },
    viewOnly: m.viewOnly,
    nonce: m.nonce,
    issuedAt: m.issuedAt,
    signature: m.signature,
  };
}

/** An answer line's JSON checked field by field; a string says what is wrong. */
export function parseDirectAnswer(line: string): DirectAnswer | string {
  let m: unknown;
  try {
    m = JSON.parse(line);
  } catch {
    return "not JSON";
  }
  if (!isRecord(m) || !exactKeys(m, ANSWER_KEYS) || m.type !== "direct-answer") return "not a direct answer";
  if (typeof m.granted !== "boolean") return "bad granted";
  if (!isText(m.reason)) return "bad reason";
  if (m.by !== "consent" && m.by !== "agent") return "bad by";
  return { type: "direct-answer", granted: m.granted, reason: m.reason, by: m.by };
}

/** One JSON object as a line. */
export function encodeLine(msg: DirectRequest | DirectAnswer): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(msg)}\n`);
}

export class LineTooLongError extends Error {
  override name = "LineTooLongError";
}

/**
 * Collects bytes up to the first "\n", at most maxBytes including it (checked before buffering more), and
 * returns the line (strict UTF-8, without the newline) and whatever followed it in the same chunk.
 */
export class LineReader {
  #chunks: Uint8Array[] = [];
  #size = 0;

  constructor(private readonly maxBytes: number) {}

  /** undefined: need more. Throws LineTooLongError past maxBytes, TypeError on invalid UTF-8. */
  push(bytes: Uint8Array): { line: string; rest: Uint8Array } | undefined {
    const nl = bytes.indexOf(0x0a);
    const upTo = nl < 0 ? bytes.byteLength : nl + 1;
    if (this.#size + upTo > this.maxBytes)
      throw new LineTooLongError(`line longer than ${this.maxBytes} bytes`);
    if (nl < 0) {
      this.#chunks.push(bytes.slice());
      this.#size += bytes.byteLength;
      return undefined;
    }
    const all = new Uint8Array(this.#size + nl);
    let off = 0;
    for (const c of this.#chunks) {
      all.set(c, off);
      off += c.byteLength;
    }
    all.set(bytes.subarray(0, nl), off);
    this.#chunks = [];
    this.#size = 0;
    return { line: new TextDecoder("utf-8", { fatal: true }).decode(all), rest: bytes.slice(nl + 1) };
  }
}

/** "host:port" or "[v6]:port" → host (no brackets) and port; port 0 only when allowed (a listener's). */
export function parseHostPort(
  text: string,
  allowPortZero = false,
): { host: string; port: number } | undefined {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  if (m === null) return undefined;
  const host = m[1]!;
  const port = Number(m[2]);
  if (port > 65_535 || (port === 0 && !allowPortZero) || (m[2]!.length > 1 && m[2]!.startsWith("0"))) {
    return undefined;
  }
  if (text.startsWith("[") && isIP(host) !== 6) return undefined;
  return { host, port };
}

// ------------------------------------------------------------------------------- Bun TLS sockets glue

/** Per-socket data: the same shape relay/rfb/tcp.ts keeps, so its TcpLink works on these sockets too. */
export interface TlsLinkState {
  link: TcpLink;
  handler: LinkHandler | null;
}

/** Socket handlers that feed a TlsLinkState (as tcp.ts's do for plain TCP). */
export const tlsLinkHandlers = {
  data(s: Socket<TlsLinkState>, data: Uint8Array) {
    s.data?.handler?.data(data);
  },
  drain(s: Socket<TlsLinkState>) {
    if (s.data?.link.flush()) s.data.handler?.drain?.();
  },
  close(s: Socket<TlsLinkState>) {
    if (!s.data) return;
    s.data.link.closed = true;
    const h = s.data.handler;
    s.data.handler = null;
    h?.close();
  },
  error(s: Socket<TlsLinkState>, err: Error) {
    log.debug("device link error", { remote: s.data?.link.remote, err: err.message });
  },
};

/** A LinkChannel over `link` from now on: `leftover` (bytes already read past a line) is delivered first. */
export function channelOver(s: Socket<TlsLinkState>, leftover: Uint8Array): LinkChannel {
  const ch = new LinkChannel(s.data.link);
  s.data.handler = ch.handler;
  if (leftover.byteLength > 0) ch.handler.data(leftover);
  return ch;
}

// -------------------------------------------------------------------------------------- relay side

export interface DirectDevice {
  id: string;
  /** "host:port" or "[v6]:port": where the device's agent listens. */
  address: string;
  /** The pin: SHA-256 of the device's SPKI DER, lowercase hex. */
  spkiSha256: string;
}

export interface OpenDirectSessionOptions {
  device: DirectDevice;
  /** The relay's TLS private key (PEM): the key of the certificate the agents pinned. */
  signer: { privateKeyPem: string };
  sessionId: string;
  requester: { name: string; role: DirectRole };
  viewOnly: boolean;
  /** Records "device.refused" (key-mismatch), "session.consent" and "direct.refused"; a throw fails closed. */
  audit: AuditFn;
  timeouts?: Partial<DirectSessionOptions>;
  /** Aborting (the viewer left) closes the connection and rejects UNAVAILABLE "aborted". */
  signal?: AbortSignal;
  /** The clock for issuedAt. @default Date.now */
  now?: () => number;
}

/** Why a dial failed, for the log (the caller's message stays generic). */
function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The peer certificate's SPKI SHA-256, or undefined when it presented none or something unparsable. */
function presentedSpki(s: Socket<TlsLinkState>): string | undefined {
  let raw: unknown;
  try {
    raw = s.getPeerCertificate()?.raw;
  } catch {
    return undefined;
  }
  if (!(raw instanceof Uint8Array) || raw.byteLength === 0) return undefined;
  try {
    return sha256Hex(parseCertificate(new Uint8Array(raw)).spki);
  } catch (e) {
    if (e instanceof CertificateError) return undefined;
    throw e;
  }
}

/**
 * Bun calls `handshake` for a failed handshake too (a protocol alert: code EPROTO), with the failure in
 * `authorizationError`; a completed handshake whose chain does not verify (ours never does: the certificate
 * is self-signed, the pin decides) carries one of OpenSSL's X509_V_ERR names instead. Anything but those
 * (or no error at all) is a handshake that did not complete: fail closed, send nothing.
 */
const CHAIN_VERIFY_CODES: ReadonlySet<string> = new Set([
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_DECRYPT_CERT_SIGNATURE",
  "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY",
  "CERT_SIGNATURE_FAILURE",
  "CERT_NOT_YET_VALID",
  "CERT_HAS_EXPIRED",
  "ERROR_IN_CERT_NOT_BEFORE_FIELD",
  "ERROR_IN_CERT_NOT_AFTER_FIELD",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "CERT_CHAIN_TOO_LONG",
  "INVALID_CA",
  "PATH_LENGTH_EXCEEDED",
  "INVALID_PURPOSE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "HOSTNAME_MISMATCH",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** Whether Bun's handshake callback reports a completed handshake (see CHAIN_VERIFY_CODES). */
export function handshakeCompleted(authorizationError: Error | null): boolean {
  if (authorizationError === null || authorizationError === undefined) return true;
  const code = (authorizationError as { code?: unknown }).code;
  return typeof code === "string" && CHAIN_VERIFY_CODES.has(code);
}

function sameHex(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  return x.byteLength === y.byteLength && timingSafeEqual(x, y);
}

/** The checks openDirectSession, dialDirect and issueDirectGrant share: a dialable address, a usable pin. */
function checkDevice(device: DirectDevice): { host: string; port: number; pin: string } {
  const where = parseHostPort(device.address);
  if (where === undefined) throw new ControlError("BAD_REQUEST", "the device's address is not host:port");
  const pin = device.spkiSha256.toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(pin)) throw new ControlError("BAD_REQUEST", "the device has no usable key pin");
  return { ...where, pin };
}

/**
 * Dials the device's agent and resolves with the session's RFB stream once the agent granted it. Rejects
 * with ControlError:
 *  - FORBIDDEN "device key mismatch": the device presented another key (audited "device.refused",
 *    reason "key-mismatch"; nothing was sent to it);
 *  - FORBIDDEN "the device user refused: <reason>": consent refused or timed out (audited "session.consent");
 *  - UNAVAILABLE "the device refused the relay's request: <reason>": the agent refused the request itself —
 *    signature, clock, replay, busy (audited "direct.refused");
 *  - UNAVAILABLE "cannot reach the device" / "the device did not answer" / "the device closed the
 *    connection" / "aborted"; BAD_REQUEST for a malformed session id or device address; UNAVAILABLE when the
 *    relay's key cannot sign (importRelaySigningKey); INTERNAL when an audit record cannot be written.
 */
export async function openDirectSession(o: OpenDirectSessionOptions): Promise<ByteChannel> {
  if (!DIRECT_SESSION_ID.test(o.sessionId)) {
    throw new ControlError("BAD_REQUEST", "session id must be 1…64 URL-safe characters");
  }
  checkDevice(o.device);
  if (!isText(o.requester.name)) throw new ControlError("BAD_REQUEST", "bad requester name");
  // Before dialing: a relay key that cannot sign fails here, not half-way through the handshake.
  const key = await importRelaySigningKey(o.signer.privateKeyPem);
  if (o.signal?.aborted) throw new ControlError("UNAVAILABLE", "aborted");
  let request: DirectRequest;
  try {
    request = await signDirectRequest(
      key,
      o.device.id,
      { sessionId: o.sessionId, requester: o.requester, viewOnly: o.viewOnly },
      (o.now ?? Date.now)(),
    );
  } catch (e) {
    log.info("direct session refused", { session: o.sessionId, device: o.device.id, detail: errText(e) });
    throw new ControlError("INTERNAL", "cannot sign the request");
  }
  return dialDirect({
    device: o.device,
    request,
    audit: o.audit,
    ...(o.timeouts ? { timeouts: o.timeouts } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
  });
}

export interface DialDirectOptions {
  device: DirectDevice;
  /** Already signed for device.id (signDirectRequest, or a grant from issueDirectGrant); sent once. */
  request: DirectRequest;
  /**
   * Records "device.refused" (key-mismatch), "session.consent" and "direct.refused"; a throw fails closed.
   * Absent on a viewer's machine (`connect --direct`): the relay audited the grant, the log keeps the rest.
   */
  audit?: AuditFn;
  timeouts?: Partial<DirectSessionOptions>;
  /** Aborting (the viewer left) closes the connection and rejects UNAVAILABLE "aborted". */
  signal?: AbortSignal;
}

/**
 * The dialling half of openDirectSession, shared with the viewer's machine in `connect --direct`: TLS 1.3
 * to device.address, the presented key checked against device.spkiSha256 before a single byte is sent, then
 * the already-signed request line, the agent's answer, and the RFB stream. Rejects as openDirectSession does
 * (BAD_REQUEST for a request that is not well-formed, checked before dialing).
 */
export function dialDirect(o: DialDirectOptions): Promise<ByteChannel> {
  const t = { ...DIRECT_SESSION_DEFAULTS, ...o.timeouts };
  const deviceId = o.device.id;
  let where: { host: string; port: number; pin: string };
  try {
    where = checkDevice(o.device);
  } catch (e) {
    return Promise.reject(e);
  }
  const pin = where.pin;
  const checked = parseDirectRequest(JSON.stringify(o.request));
  if (typeof checked === "string") {
    return Promise.reject(new ControlError("BAD_REQUEST", `the direct request is malformed: ${checked}`));
  }
  const requestLine = encodeLine(checked);
  const sessionId = checked.sessionId;
  if (o.signal?.aborted) return Promise.reject(new ControlError("UNAVAILABLE", "aborted"));

  const record = (kind: string, payload: Record<string, unknown>): boolean => {
    if (o.audit === undefined) return true;
    try {
      o.audit(kind, deviceId, payload);
      return true;
    } catch (e) {
      log.error("audit record failed", { kind, device: deviceId, error: e });
      return false;
    }
  };

  return new Promise<ByteChannel>((resolve, reject) => {
    let phase: "connecting" | "answer" | "done" = "connecting";
    let sock: Socket<TlsLinkState> | null = null;
    const lines = new LineReader(t.maxAnswerBytes);

    const fail = (e: ControlError, detail?: string): void => {
      if (phase === "done") return;
      phase = "done";
      clearTimeout(timer);
      o.signal?.removeEventListener("abort", onAbort);
      if (sock?.data) {
        sock.data.handler = null;
        sock.data.link.abort();
      } else {
        sock?.terminate();
      }
      log.info("direct session refused", {
        session: sessionId,
        device: deviceId,
        address: o.device.address,
        error: e.message,
        ...(detail !== undefined ? { detail } : {}),
      });
      reject(e);
    };
    const onAbort = (): void => fail(new ControlError("UNAVAILABLE", "aborted"));
    o.signal?.addEventListener("abort", onAbort, { once: true });
    let timer = setTimeout(
      () =>
        fail(
          new ControlError("UNAVAILABLE", "cannot reach the device"),
          `no TLS within ${t.connectTimeoutMs} ms`,
        ),
      t.connectTimeoutMs,
    );

    const onAnswer = (s: Socket<TlsLinkState>, bytes: Uint8Array): void => {
      if (phase !== "answer") return;
      let got: { line: string; rest: Uint8Array } | undefined;
      try {
        got = lines.push(bytes);
      } catch (e) {
        fail(new ControlError("UNAVAILABLE", "the device's answer is malformed"), errText(e));
        return;
      }
      if (got === undefined) return;
      const answer = parseDirectAnswer(got.line);
      if (typeof answer === "string") {
        fail(new ControlError("UNAVAILABLE", "the device's answer is malformed"), answer);
        return;
      }
      if (answer.by === "agent") {
        record("direct.refused", { session: sessionId, device: deviceId, reason: answer.reason });
        fail(new ControlError("UNAVAILABLE", `the device refused the relay's request: ${answer.reason}`));
        return;
      }
      const recorded = record("session.consent", {
        session: sessionId,
        device: deviceId,
        requester: checked.requester.name,
        granted: answer.granted,
        reason: answer.reason,
      });
      if (!answer.granted) {
        fail(new ControlError("FORBIDDEN", `the device user refused: ${answer.reason}`));
        return;
      }
      // Fail closed: a session whose consent cannot be recorded does not start.
      if (!recorded) {
        fail(new ControlError("INTERNAL", "the consent could not be recorded"));
        return;
      }
      phase = "done";
      clearTimeout(timer);
      o.signal?.removeEventListener("abort", onAbort);
      resolve(channelOver(s, got.rest));
    };

    const onHandshake = (s: Socket<TlsLinkState>, authorizationError: Error | null): void => {
      if (phase !== "connecting") return;
      if (!handshakeCompleted(authorizationError)) {
        fail(
          new ControlError("UNAVAILABLE", "cannot reach the device"),
          `TLS handshake failed: ${authorizationError?.message ?? "unknown"}`,
        );
        return;
      }
      const presented = presentedSpki(s);
      if (presented === undefined || !sameHex(presented, pin)) {
        record("device.refused", {
          deviceId,
          reason: "key-mismatch",
          spkiSha256: pin,
          presentedSpkiSha256: presented ?? null,
          address: o.device.address,
          session: sessionId,
        });
        fail(new ControlError("FORBIDDEN", "device key mismatch"));
        return;
      }
      phase = "answer";
      clearTimeout(timer);
      timer = setTimeout(
        () => fail(new ControlError("UNAVAILABLE", "the device did not answer")),
        t.answerTimeoutMs,
      );
      s.data.handler = {
        data: (bytes) => onAnswer(s, bytes),
        close: () => fail(new ControlError("UNAVAILABLE", "the device closed the connection")),
      };
      s.data.link.write(requestLine);
    };

    Bun.connect<TlsLinkState>({
      hostname: where.host,
      port: where.port,
      tls: {
        // The pin decides, not a CA: the device's certificate is self-signed for its enrolled key.
        rejectUnauthorized: false,
        secureOptions: DEVICE_LINK_TLS_OPTIONS,
        // SNI names a host, never an address (RFC 6066 §3).
        ...(isIP(where.host) === 0 ? { serverName: where.host } : {}),
      },
      socket: {
        ...tlsLinkHandlers,
        open(s) {
          sock = s;
          s.data = { link: new TcpLink(s, o.device.address, t.maxQueuedBytes), handler: null };
          if (phase === "done") {
            s.terminate();
            return;
          }
          s.data.handler = {
            data: () => {},
            close: () =>
              fail(
                new ControlError("UNAVAILABLE", "cannot reach the device"),
                "closed during the TLS handshake",
              ),
          };
        },
        handshake(s, _success, authorizationError) {
          onHandshake(s, authorizationError);
        },
        connectError(_s, e) {
          fail(new ControlError("UNAVAILABLE", "cannot reach the device"), e.message);
        },
      },
    }).catch((e: unknown) => fail(new ControlError("UNAVAILABLE", "cannot reach the device"), errText(e)));
  });
}

// ------------------------------------------------------------------ grants for the viewer's machine

/**
 * What the relay hands `connect --direct` (POST /api/sessions/:id/direct): where the device's agent listens,
 * the key it must present, and one signed request the viewer's machine sends it. Holding a grant gives no
 * more than the request it carries: one session (the agent refuses the nonce a second time), on that device
 * (the signature covers its id), within the agent's freshness window (60 s by default).
 */
export interface DirectGrant {
  deviceId: string;
  /** "host:port" or "[v6]:port", as enrolled. */
  address: string;
  /** The device's pin: SHA-256 of its SPKI DER, lowercase hex. */
  spkiSha256: string;
  request: DirectRequest;
}

export interface IssueDirectGrantOptions {
  device: DirectDevice;
  /** The relay's TLS private key (PEM): the key of the certificate the agents pinned. */
  signer: { privateKeyPem: string };
  sessionId: string;
  requester: { name: string; role: DirectRole };
  /**
   * Must be false: on the viewer's machine nothing between the viewer and the device parses what the viewer
   * sends (only the relay's pipe drops a view-only viewer's input), so a view-only session is FORBIDDEN here.
   */
  viewOnly: boolean;
  /** issuedAt, milliseconds since the epoch. @default Date.now() */
  now?: number;
}

/**
 * Signs a grant for `connect --direct`. The caller has redeemed the session's ticket and audits the
 * session start. Throws ControlError: FORBIDDEN for a view-only session; BAD_REQUEST for a malformed session
 * id, requester name, device address or pin; UNAVAILABLE when the relay's key cannot sign.
 */
export async function issueDirectGrant(o: IssueDirectGrantOptions): Promise<DirectGrant> {
  if (o.viewOnly) {
    throw new ControlError(
      "FORBIDDEN",
      "a view-only session cannot be direct from the viewer's machine: only the relay enforces view-only",
    );
  }
  if (!DIRECT_SESSION_ID.test(o.sessionId)) {
    throw new ControlError("BAD_REQUEST", "session id must be 1…64 URL-safe characters");
  }
  const { pin } = checkDevice(o.device);
  if (!isText(o.requester.name)) throw new ControlError("BAD_REQUEST", "bad requester name");
  const key = await importRelaySigningKey(o.signer.privateKeyPem);
  const request = await signDirectRequest(
    key,
    o.device.id,
    { sessionId: o.sessionId, requester: o.requester, viewOnly: false },
    o.now ?? Date.now(),
  );
  return { deviceId: o.device.id, address: o.device.address, spkiSha256: pin, request };
}

const GRANT_KEYS = ["deviceId", "address", "spkiSha256", "request"];

/** A grant as received from the relay (JSON), checked field by field; a string says what is wrong. */
export function parseDirectGrant(body: unknown): DirectGrant | string {
  if (!isRecord(body) || !exactKeys(body, GRANT_KEYS)) return "not a direct grant";
  if (!isText(body.deviceId) || body.deviceId.length > 128) return "bad deviceId";
  if (typeof body.address !== "string" || parseHostPort(body.address) === undefined) return "bad address";
  if (typeof body.spkiSha256 !== "string" || !/^[0-9a-f]{64}$/.test(body.spkiSha256)) return "bad spkiSha256";
  const request = parseDirectRequest(JSON.stringify(body.request ?? null));
  if (typeof request === "string") return `bad request: ${request}`;
  return { deviceId: body.deviceId, address: body.address, spkiSha256: body.spkiSha256, request };
}
