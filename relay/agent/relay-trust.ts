// How the agent trusts the relay (DESIGN.md "Identity": "the agent pins the relay's certificate fingerprint
// given at enrollment"; bad-inputs.md §c 1 and 9). At enrollment the agent reads the certificate the relay
// presents (verification off for that one read: it is only looked at, nothing is sent) and pins the SHA-256
// of its DER — checked against --relay-fingerprint when the operator gave one, trusted on first use with a
// loud warning otherwise. From then on every connection trusts that one certificate as its only CA (so TLS
// itself refuses any other chain), and before each connection the presented leaf is read again and compared
// with the pin, so a relay whose certificate changed is refused with a message that says what to do.

import { timingSafeEqual } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import tls from "node:tls";
import { log } from "../util/log.ts";
import { CertificateError, certFingerprint, parseCertificate, pemEncode, sha256Hex } from "../util/x509.ts";

export const RELAY_TRUST_DEFAULTS = Object.freeze({
  /** Milliseconds for the TLS connection that reads the relay's certificate. @default 10000 */
  fetchTimeoutMs: 10_000,
  /** The pinned relay certificate's file inside the agent's state directory. @default "relay-cert.pem" */
  certFileName: "relay-cert.pem",
  /** Largest certificate file read back, bytes (a P-256 self-signed certificate is about 600). @default 65536 */
  maxCertFileBytes: 64 * 1024,
});

export const RELAY_TRUST_ERRORS = {
  BAD_URL: "the relay URL must be https://host[:port][/path] (or wss://)",
  BAD_FINGERPRINT: "the relay fingerprint must be a SHA-256 in hex (64 digits, colons allowed)",
  UNREACHABLE: "cannot read the relay's certificate",
  MISMATCH: "the relay's certificate does not match the pinned fingerprint",
  CERT_FILE: "the stored relay certificate is unusable",
} as const;

export type RelayTrustErrorCode = keyof typeof RELAY_TRUST_ERRORS;

export class RelayTrustError extends Error {
  readonly code: RelayTrustErrorCode;
  constructor(code: RelayTrustErrorCode, detail?: string) {
    super(detail ? `${RELAY_TRUST_ERRORS[code]}: ${detail}` : RELAY_TRUST_ERRORS[code]);
    this.name = "RelayTrustError";
    this.code = code;
  }
}

/** Where the relay is, from one base URL. */
export interface RelayEndpoints {
  /** Host name or IP address, without IPv6 brackets. */
  host: string;
  port: number;
  /** https://host:port[/path], no trailing slash: prefix of the HTTP API. */
  httpsBase: string;
  /** wss://host:port[/path], no trailing slash: prefix of the WebSockets. */
  wssBase: string;
}

/** Parses the relay's base URL (https:// or wss://; http is refused: the agent only talks TLS). */
export function relayEndpoints(relayUrl: string): RelayEndpoints {
  let url: URL;
  try {
    url = new URL(relayUrl);
  } catch {
    throw new RelayTrustError("BAD_URL", JSON.stringify(relayUrl.slice(0, 200)));
  }
  if (url.protocol !== "https:" && url.protocol !== "wss:")
    throw new RelayTrustError("BAD_URL", url.protocol);
  if (url.username !== "" || url.password !== "" || url.search !== "" || url.hash !== "") {
    throw new RelayTrustError("BAD_URL", "no credentials, query or fragment");
  }
  const port = url.port === "" ? 443 : Number(url.port);
  const path = url.pathname.replace(/\/+$/, "");
  const authority = `${url.hostname}:${port}`;
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port,
    httpsBase: `https://${authority}${path}`,
    wssBase: `wss://${authority}${path}`,
  };
}

/** "AB:CD:…", "abcd…" or "sha256:…" → 64 lowercase hex digits, or BAD_FINGERPRINT. */
export function parseFingerprint(text: string): string {
  const hex = text
    .trim()
    .replace(/^sha-?256[:=]/i, "")
    .replace(/[:\s]/g, "")
    .toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new RelayTrustError("BAD_FINGERPRINT");
  return hex;
}

/** Constant-time equality of two fingerprints (bad-inputs.md §c 3). */
export function fingerprintsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a.toLowerCase());
  const y = Buffer.from(b.toLowerCase());
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The certificate a relay presented. */
export interface RelayCertificate {
  /** The leaf certificate, PEM. */
  pem: string;
  /** SHA-256 of its DER, lowercase hex. */
  sha256Hex: string;
}

export interface FetchCertificateOptions {
  /** @default RELAY_TRUST_DEFAULTS.fetchTimeoutMs */
  timeoutMs?: number;
  /** Gives up at once (UNREACHABLE "aborted") when aborted: the agent stopping. */
  signal?: AbortSignal;
}

/**
 * Opens a TLS connection to the relay, takes the leaf certificate it presents and closes again; nothing is
 * sent over it. Verification is off for this read on purpose: the caller decides from the fingerprint.
 */
export function fetchRelayCertificate(
  relayUrl: string,
  o: FetchCertificateOptions = {},
): Promise<RelayCertificate> {
  const { host, port } = relayEndpoints(relayUrl);
  const timeoutMs = o.timeoutMs ?? RELAY_TRUST_DEFAULTS.fetchTimeoutMs;
  const where = `${host}:${port}`;
  return new Promise((resolve, reject) => {
    let settled = false;
    const socket = tls.connect({
      host,
      port,
      // SNI names a host, never an address (RFC 6066 §3).
      ...(isIP(host) === 0 ? { servername: host } : {}),
      rejectUnauthorized: false,
    });
    const finish = (result: RelayCertificate | RelayTrustError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener("abort", onAbort);
      socket.destroy();
      if (result instanceof RelayTrustError) reject(result);
      else resolve(result);
    };
    const timer = setTimeout(
      () => finish(new RelayTrustError("UNREACHABLE", `${where}: no TLS handshake within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onAbort = (): void => finish(new RelayTrustError("UNREACHABLE", `${where}: aborted`));
    if (o.signal?.aborted) onAbort();
    o.signal?.addEventListener("abort", onAbort, { once: true });
    socket.once("secureConnect", () => {
      const raw: unknown = socket.getPeerCertificate().raw;
      if (!(raw instanceof Uint8Array) || raw.byteLength === 0) {
        finish(new RelayTrustError("UNREACHABLE", `${where} presented no certificate`));
        return;
      }
      const der = new Uint8Array(raw);
      try {
        parseCertificate(der);
      } catch (e) {
        const why = e instanceof CertificateError ? e.message : "unreadable";
        finish(new RelayTrustError("UNREACHABLE", `${where}: ${why}`));
        return;
      }
      finish({ pem: pemEncode("CERTIFICATE", der), sha256Hex: sha256Hex(der) });
    });
    socket.once("error", (e: Error) => finish(new RelayTrustError("UNREACHABLE", `${where}: ${e.message}`)));
    socket.once("close", () => finish(new RelayTrustError("UNREACHABLE", `${where} closed the connection`)));
  });
}

export interface PinRelayOptions extends FetchCertificateOptions {
  /** The fingerprint the operator got out of band (--relay-fingerprint); any format parseFingerprint takes. */
  expectedSha256?: string;
}

export interface PinnedRelay {
  cert: RelayCertificate;
  /** No expected fingerprint was given: the certificate was taken on trust (and a warning logged). */
  trustedOnFirstUse: boolean;
}

/**
 * Reads the relay's certificate for enrollment: with an expected fingerprint a mismatch is MISMATCH; without
 * one the certificate is trusted on first use and a warning with its fingerprint is logged, so the operator
 * can compare it with the relay's (shadowrelay serve prints it).
 */
export async function pinRelay(relayUrl: string, o: PinRelayOptions = {}): Promise<PinnedRelay> {
  const expected = o.expectedSha256 === undefined ? undefined : parseFingerprint(o.expectedSha256);
  const cert = await fetchRelayCertificate(relayUrl, o);
  if (expected !== undefined) {
    if (!fingerprintsEqual(cert.sha256Hex, expected)) {
      throw new RelayTrustError(
        "MISMATCH",
        `${relayEndpoints(relayUrl).host} presents sha256 ${cert.sha256Hex}, expected ${expected}`,
      );
    }
    return { cert, trustedOnFirstUse: false };
  }
  log.warn(
    "TRUST ON FIRST USE: the relay's certificate was not checked against a known fingerprint; compare it " +
      "with the relay's own (shadowrelay serve prints it) or enroll with --relay-fingerprint",
    { relay: relayEndpoints(relayUrl).httpsBase, relayCertSha256: cert.sha256Hex },
  );
  return { cert, trustedOnFirstUse: true };
}

/** What the agent keeps about its relay. */
export interface RelayPin {
  relayUrl: string;
  /** The pinned certificate, PEM. */
  certPem: string;
  /** SHA-256 of its DER, lowercase hex. */
  certSha256: string;
}

export interface RelayTrust {
  endpoints: RelayEndpoints;
  /** The pinned certificate as the only CA: give it to openWsChannel / fetch (`tls: { ca }`). */
  caPem: string;
  sha256Hex: string;
  /**
   * Reads the relay's certificate again and refuses (MISMATCH, with what to do) when it is no longer the
   * pinned one; call it before each connection.
   */
  check(signal?: AbortSignal): Promise<void>;
}

/** The trust for a pin: the stored certificate must itself hash to the pin, else CERT_FILE. */
export function trustFor(pin: RelayPin, o: FetchCertificateOptions = {}): RelayTrust {
  const endpoints = relayEndpoints(pin.relayUrl);
  let stored: string;
  try {
    stored = certFingerprint(pin.certPem);
  } catch (e) {
    throw new RelayTrustError("CERT_FILE", (e as Error).message);
  }
  if (!fingerprintsEqual(stored, pin.certSha256)) {
    throw new RelayTrustError("CERT_FILE", "the stored certificate does not hash to the pinned fingerprint");
  }
  return {
    endpoints,
    caPem: pin.certPem,
    sha256Hex: pin.certSha256,
    check: async (signal) => {
      const now = await fetchRelayCertificate(pin.relayUrl, signal ? { ...o, signal } : o);
      if (!fingerprintsEqual(now.sha256Hex, pin.certSha256)) {
        throw new RelayTrustError(
          "MISMATCH",
          `${endpoints.host}:${endpoints.port} presents sha256 ${now.sha256Hex}, pinned ${pin.certSha256}; ` +
            "if the relay's certificate was replaced on purpose, enroll again with --force and its new " +
            "--relay-fingerprint",
        );
      }
    },
  };
}

/** The certificate file's path. */
export function relayCertPath(stateDir: string): string {
  return join(stateDir, RELAY_TRUST_DEFAULTS.certFileName);
}

/** Writes the pinned certificate next to the identity (directory created 0700, file 0600, atomically). */
export function saveRelayCertificate(stateDir: string, pem: string): string {
  if (!existsSync(stateDir)) mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const path = relayCertPath(stateDir);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, pem, { mode: 0o600 });
  renameSync(tmp, path);
  return path;
}

/**
 * The pin for an enrolled identity: the stored certificate when it hashes to the pin; when the file is
 * missing, the relay's presented certificate if (and only if) it matches the pin, stored again.
 */
export async function loadRelayPin(
  stateDir: string,
  identity: { relayUrl: string; relayCertSha256: string },
  o: FetchCertificateOptions = {},
): Promise<RelayPin> {
  const path = relayCertPath(stateDir);
  if (existsSync(path)) {
    const st = statSync(path);
    if (!st.isFile() || st.size > RELAY_TRUST_DEFAULTS.maxCertFileBytes) {
      throw new RelayTrustError("CERT_FILE", path);
    }
    const pin = {
      relayUrl: identity.relayUrl,
      certPem: readFileSync(path, "utf8"),
      certSha256: identity.relayCertSha256,
    };
    trustFor(pin); // throws CERT_FILE when the file is not the pinned certificate
    return pin;
  }
  const cert = await fetchRelayCertificate(identity.relayUrl, o);
  if (!fingerprintsEqual(cert.sha256Hex, identity.relayCertSha256)) {
    throw new RelayTrustError(
      "MISMATCH",
      `no stored certificate, and the relay presents sha256 ${cert.sha256Hex}, pinned ${identity.relayCertSha256}`,
    );
  }
  saveRelayCertificate(stateDir, cert.pem);
  log.info("relay certificate file restored from the relay (it matches the pin)", { path });
  return { relayUrl: identity.relayUrl, certPem: cert.pem, certSha256: identity.relayCertSha256 };
}
