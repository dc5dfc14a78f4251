// `shadowrelay connect --direct` (issue #4 "Direct from the viewer's machine"): the viewer's machine asks the
// relay for a grant — POST /api/sessions/:id/direct with the native ticket as the only credential; the relay
// redeems it, signs one request for the device with its TLS key and audits the start — then dials the
// device's agent itself (relay/gateway/direct.ts dialDirect: TLS 1.3, the presented key checked against the
// pin before any byte, the signed request, the consent answer) and hands the RFB stream to the loopback
// proxy (proxy.ts startConnectProxy's openRelay). The relay authorises and audits; it carries no screen data.
// The grant is asked for only once the local viewer authenticated, as the WebSocket path redeems its ticket
// then: a grant lives only as long as the agent's freshness window (60 s), the one-time password 120 s.

import { CONTROL_ERROR_STATUS, ControlError, type ControlErrorCode } from "../control/errors.ts";
import {
  type DirectGrant,
  type DirectSessionOptions,
  dialDirect,
  parseDirectGrant,
} from "../gateway/direct.ts";
import type { ByteChannel } from "../session/channel.ts";
import { log } from "../util/log.ts";

export const CONNECT_DIRECT_DEFAULTS = Object.freeze({
  /** Milliseconds for the grant request to the relay (connection, TLS, redeeming, signing). @default 15000 */
  grantTimeoutMs: 15_000,
  /** Largest grant response body accepted, bytes (a grant is about 700). @default 16384 */
  maxGrantBytes: 16 * 1024,
});

export interface FetchDirectGrantOptions {
  /** The relay's base URL, https://host:port. */
  relayUrl: string;
  /** The session the ticket is for (main.ts reads it from the ticket's payload). */
  sessionId: string;
  /** A native ticket for that session; it is the request's only credential. */
  ticket: string;
  /** PEM of the certificate(s) to trust for the relay (its cert.pem, or the operator's chain). */
  caPem?: string;
  /** Skip the relay's certificate check (a test relay on loopback only; the CLI says so loudly). */
  insecure?: boolean;
  /** @default CONNECT_DIRECT_DEFAULTS.grantTimeoutMs */
  timeoutMs?: number;
  /** @default CONNECT_DIRECT_DEFAULTS.maxGrantBytes */
  maxGrantBytes?: number;
}

/** A relay's error text as shown to the user: bounded, without control characters. */
function shown(text: unknown): string {
  return typeof text === "string" ? text.replace(/\p{Cc}/gu, " ").slice(0, 300) : "";
}

/**
 * Asks the relay for a direct grant. Rejects with ControlError: the relay's own code and message when it
 * refused (a ticket refused, a session that is not waiting, a device that is not direct, a view-only
 * session…); UNAVAILABLE when the relay cannot be reached or answers with something that is not a grant.
 */
export async function fetchDirectGrant(o: FetchDirectGrantOptions): Promise<DirectGrant> {
  const timeoutMs = o.timeoutMs ?? CONNECT_DIRECT_DEFAULTS.grantTimeoutMs;
  const maxBytes = o.maxGrantBytes ?? CONNECT_DIRECT_DEFAULTS.maxGrantBytes;
  const url = `${o.relayUrl.replace(/\/$/, "")}/api/sessions/${encodeURIComponent(o.sessionId)}/direct`;
  const tls = o.insecure ? { rejectUnauthorized: false } : o.caPem ? { ca: o.caPem } : undefined;
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ticket: o.ticket }),
      redirect: "error",
      signal: AbortSignal.timeout(timeoutMs),
      ...(tls ? { tls } : {}),
    });
    const declared = Number(res.headers.get("content-length") ?? "0");
    if (declared > maxBytes) throw new Error(`response of ${declared} bytes`);
    text = await res.text();
  } catch (e) {
    log.info("direct grant: relay unreachable", { url, error: e instanceof Error ? e.message : String(e) });
    throw new ControlError("UNAVAILABLE", "cannot reach the relay for a direct grant");
  }
  if (new TextEncoder().encode(text).byteLength > maxBytes) {
    throw new ControlError("UNAVAILABLE", "the relay's answer is too large");
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const b = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
    const code =
      typeof b.error === "string" && Object.hasOwn(CONTROL_ERROR_STATUS, b.error)
        ? (b.error as ControlErrorCode)
        : "UNAVAILABLE";
    throw new ControlError(code, shown(b.message) || `the relay answered HTTP ${res.status}`);
  }
  const grant = parseDirectGrant(body);
  if (typeof grant === "string") {
    log.info("direct grant: malformed answer", { url, detail: grant });
    throw new ControlError("UNAVAILABLE", "the relay's answer is not a direct grant");
  }
  if (grant.request.sessionId !== o.sessionId) {
    throw new ControlError("UNAVAILABLE", "the relay's grant is for another session");
  }
  return grant;
}

export interface OpenDirectGrantOptions {
  /** Overrides of DIRECT_SESSION_DEFAULTS for the dial (connect, answer = consent, queue). */
  timeouts?: Partial<DirectSessionOptions>;
  signal?: AbortSignal;
}

/**
 * Dials the granted device from this machine and resolves with its RFB stream (security None: the agent
 * answers the device's own VNC password). Rejects as dialDirect does: FORBIDDEN "device key mismatch"
 * before any byte reached a device presenting another key, UNAVAILABLE "the device refused the relay's
 * request: replay" for a grant used twice, FORBIDDEN for consent refused, UNAVAILABLE when unreachable.
 */
export function openDirectGrant(grant: DirectGrant, o: OpenDirectGrantOptions = {}): Promise<ByteChannel> {
  return dialDirect({
    device: { id: grant.deviceId, address: grant.address, spkiSha256: grant.spkiSha256 },
    request: grant.request,
    ...(o.timeouts ? { timeouts: o.timeouts } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
  });
}

/** startConnectProxy's openRelay for `connect --direct`: the grant is asked for, then the device dialled. */
export function directOpener(
  o: FetchDirectGrantOptions & OpenDirectGrantOptions,
): () => Promise<ByteChannel> {
  return async () => {
    const grant = await fetchDirectGrant(o);
    log.info("direct grant received", {
      session: grant.request.sessionId,
      device: grant.deviceId,
      address: grant.address,
    });
    return openDirectGrant(grant, o);
  };
}
