// Enrollment of a device (DESIGN.md "Identity"; issue #4 "Control plane"): `agent --enroll TOKEN` makes the
// device's key pair, pins the relay's certificate (relay-trust.ts), spends the one-time token with
// POST /api/enroll over a connection that trusts only that certificate, and stores the identity under the
// state directory. An existing identity is never replaced silently: that needs `force` (a re-enrollment is a
// new device on the relay, and the old key is gone).
//
// The relay's HTTP contract: POST /api/enroll {token, spki (base64 DER), name?, address?} → 201
// {device: {id, name, …}, relay: {certSha256}}; refusals are 4xx {error, message}.

import { existsSync } from "node:fs";
import { log } from "../util/log.ts";
import {
  type AgentIdentity,
  generateDeviceKeys,
  identityPath,
  saveIdentity,
  spkiSha256,
} from "./identity.ts";
import {
  type RelayCertificate,
  fingerprintsEqual,
  pinRelay,
  relayEndpoints,
  saveRelayCertificate,
} from "./relay-trust.ts";

export const ENROLL_DEFAULTS = Object.freeze({
  /** Milliseconds for the enrollment request (connect, send, answer). @default 15000 */
  requestTimeoutMs: 15_000,
  /** Largest enrollment answer read, bytes. @default 65536 */
  maxResponseBytes: 64 * 1024,
  /** Largest enrollment token sent (the relay's are 43 characters). @default 1024 */
  maxTokenLength: 1024,
});

export const ENROLL_ERRORS = {
  ALREADY_ENROLLED:
    "this state directory already holds an agent identity (enroll with --force to replace it)",
  BAD_INPUT: "invalid enrollment input",
  REFUSED: "the relay refused the enrollment",
  BAD_RESPONSE: "the relay's answer is not an enrollment response",
  UNREACHABLE: "the enrollment request failed",
} as const;

export type EnrollErrorCode = keyof typeof ENROLL_ERRORS;

export class EnrollError extends Error {
  readonly code: EnrollErrorCode;
  /** REFUSED: the relay's HTTP status and error code (its ControlError code, e.g. "GONE"). */
  readonly status: number | undefined;
  readonly relayError: string | undefined;
  constructor(code: EnrollErrorCode, detail?: string, relay?: { status: number; error?: string }) {
    super(detail ? `${ENROLL_ERRORS[code]}: ${detail}` : ENROLL_ERRORS[code]);
    this.name = "EnrollError";
    this.code = code;
    this.status = relay?.status;
    this.relayError = relay?.error;
  }
}

export interface EnrollOptions {
  /** https://relay[:port][/path] (or wss://). */
  relayUrl: string;
  /** The one-time enrollment token (never logged). */
  token: string;
  stateDir: string;
  /** Device name shown on the relay; default: the token's name. */
  name?: string;
  /** host:port for direct mode (the relay then dials the device). */
  address?: string;
  /** The relay's certificate SHA-256 given out of band; without it: trust on first use, with a warning. */
  relayFingerprint?: string;
  /** Replace an existing identity. @default false */
  force?: boolean;
  /** @default ENROLL_DEFAULTS.requestTimeoutMs (also bounds reading the certificate) */
  timeoutMs?: number;
}

export interface EnrolledDevice {
  id: string;
  name: string;
  /** The rest of the relay's device record, as sent. */
  [field: string]: unknown;
}

export interface EnrollResult {
  identity: AgentIdentity;
  device: EnrolledDevice;
  relayCert: RelayCertificate;
  /** The certificate was not checked against a fingerprint given out of band. */
  trustedOnFirstUse: boolean;
  /** Where the identity was written. */
  identityFile: string;
}

/** A device id as the identity file accepts it: printable ASCII without blanks, 1…256 characters. */
const DEVICE_ID = /^[\x21-\x7e]{1,256}$/;

/** The body, at most `max` bytes, as JSON; undefined when it is not JSON. */
async function readBoundedJson(res: Response, max: number): Promise<unknown> {
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > max) throw new EnrollError("BAD_RESPONSE", `answer larger than ${max} bytes`);
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (res.body) {
    for await (const chunk of res.body) {
      size += chunk.byteLength;
      if (size > max) throw new EnrollError("BAD_RESPONSE", `answer larger than ${max} bytes`);
      chunks.push(chunk);
    }
  }
  try {
    return JSON.parse(new TextDecoder().decode(Buffer.concat(chunks)));
  } catch {
    return undefined;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Short, printable text from the relay for an error message. */
function relayText(v: unknown): string | undefined {
  return typeof v === "string" ? v.replace(/[\p{Cc}\p{Cf}]/gu, "?").slice(0, 200) : undefined;
}

/**
 * Enrolls this device: checks there is no identity yet (before the token is spent), makes the keys, pins
 * the relay's certificate, POSTs /api/enroll trusting only that certificate, then stores the certificate
 * and the identity (the identity last: its presence means "enrolled").
 */
export async function enrollAgent(o: EnrollOptions): Promise<EnrollResult> {
  const endpoints = relayEndpoints(o.relayUrl);
  if (
    typeof o.token !== "string" ||
    o.token.length === 0 ||
    o.token.length > ENROLL_DEFAULTS.maxTokenLength
  ) {
    throw new EnrollError("BAD_INPUT", "the enrollment token is empty or too long");
  }
  if (!o.force && existsSync(identityPath(o.stateDir))) {
    throw new EnrollError("ALREADY_ENROLLED", identityPath(o.stateDir));
  }
  const timeoutMs = o.timeoutMs ?? ENROLL_DEFAULTS.requestTimeoutMs;
  const keys = await generateDeviceKeys();
  const { cert, trustedOnFirstUse } = await pinRelay(o.relayUrl, {
    timeoutMs,
    ...(o.relayFingerprint !== undefined ? { expectedSha256: o.relayFingerprint } : {}),
  });

  const body: Record<string, string> = { token: o.token, spki: Buffer.from(keys.spki).toString("base64") };
  if (o.name !== undefined) body.name = o.name;
  if (o.address !== undefined) body.address = o.address;
  let res: Response;
  try {
    res = await fetch(`${endpoints.httpsBase}/api/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(body),
      // Only the pinned certificate is trusted, and a redirect would carry the token elsewhere.
      tls: { ca: cert.pem },
      redirect: "error",
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    throw new EnrollError("UNREACHABLE", `${endpoints.httpsBase}: ${(e as Error).message}`);
  }
  const answer = await readBoundedJson(res, ENROLL_DEFAULTS.maxResponseBytes);
  if (res.status !== 201) {
    const error = isRecord(answer) ? relayText(answer.error) : undefined;
    const message = isRecord(answer) ? relayText(answer.message) : undefined;
    throw new EnrollError(
      "REFUSED",
      `${res.status}${error ? ` ${error}` : ""}${message ? `: ${message}` : ""}`,
      error !== undefined ? { status: res.status, error } : { status: res.status },
    );
  }
  if (!isRecord(answer) || !isRecord(answer.device) || typeof answer.device.id !== "string") {
    throw new EnrollError("BAD_RESPONSE", "no device id");
  }
  const deviceId = answer.device.id;
  if (!DEVICE_ID.test(deviceId)) throw new EnrollError("BAD_RESPONSE", "malformed device id");
  const device: EnrolledDevice = {
    ...answer.device,
    id: deviceId,
    name: typeof answer.device.name === "string" ? answer.device.name : "",
  };
  // The relay's own idea of its certificate. A TLS-terminating proxy in front of it legitimately differs;
  // the pin is what this connection presented, so a difference is worth a warning, not a refusal.
  const stated = isRecord(answer.relay) ? answer.relay.certSha256 : undefined;
  if (typeof stated === "string" && !fingerprintsEqual(stated, cert.sha256Hex)) {
    log.warn("the relay reports a certificate other than the one it presented (a TLS proxy in front?)", {
      presented: cert.sha256Hex,
      reported: relayText(stated),
    });
  }

  const identity: AgentIdentity = {
    ...keys,
    deviceId,
    relayUrl: endpoints.httpsBase,
    relayCertSha256: cert.sha256Hex,
  };
  saveRelayCertificate(o.stateDir, cert.pem);
  const identityFile = saveIdentity(o.stateDir, identity);
  log.info("agent enrolled", {
    deviceId,
    relay: endpoints.httpsBase,
    relayCertSha256: cert.sha256Hex,
    spkiSha256: spkiSha256(keys),
    trustedOnFirstUse,
  });
  return { identity, device, relayCert: cert, trustedOnFirstUse, identityFile };
}
