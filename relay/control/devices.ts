// Device identity (DESIGN.md "Control plane / Identity"; bad-inputs.md §c 1, 1a, 1b): one-time enrollment
// tokens, the device table with each device's pinned key (SHA-256 of its SPKI), and the key proof every
// agent control connection makes by signing a fresh relay challenge. Whether a device is online is the
// gateway's in-memory business, not stored here.
//
// Tokens are 256-bit random and stored only as their SHA-256: the database alone cannot enroll a device.
// A token is spent by one UPDATE … WHERE used_at IS NULL AND expires_at > now, so two enrollments racing
// with one token (even from two connections or two relay processes on one file) have exactly one winner.

import type { Database } from "bun:sqlite";
import { timingSafeEqual } from "node:crypto";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, randomBytes } from "@noble/hashes/utils.js";
import { proofPayload, toBase64url } from "../gateway/protocol.ts";
import { isDnsName, isIpAddress } from "../util/x509.ts";
import type { AuditFn } from "./audit.ts";
import { ControlError, type ControlErrorBody } from "./errors.ts";

export const DEVICE_DEFAULTS = {
  /** How long an enrollment token can be used, in seconds. @default 900 (15 min) */
  enrollmentTtlSeconds: 15 * 60,
  /** Longest enrollment TTL an admin may ask for, in seconds. @default 604800 (7 days) */
  maxEnrollmentTtlSeconds: 7 * 24 * 3600,
  /** How long a key-proof challenge stays redeemable, in seconds. @default 60 */
  challengeTtlSeconds: 60,
  /**
   * Outstanding challenges kept in memory; beyond it the oldest is forgotten (its agent just reconnects),
   * so a flood of unanswered control connections cannot grow memory. @default 10000
   */
  maxOutstandingChallenges: 10_000,
  /** Longest device name, in characters (names are shown in UIs and audit records). @default 256 */
  maxNameLength: 256,
  /** Largest SPKI accepted before parsing; a P-256 SPKI is 91 bytes. @default 1024 */
  maxSpkiBytes: 1024,
  /** Enrollment tokens spent or expired longer ago than this are deleted by `pruneEnrollments`. @default 86400 (1 day) */
  enrollmentRetentionSeconds: 24 * 3600,
};

export type DeviceOptions = typeof DEVICE_DEFAULTS;

/** gateway: the device dials out to the relay; direct: the relay (or `connect --direct`) dials `address`. */
export type DeviceMode = "gateway" | "direct";

/**
 * The device's consent policy as set by the admin. "default" is DESIGN.md's default: ask for control,
 * notify for view-only.
 */
export type DeviceConsent = "default" | "none" | "notify" | "ask";

const CONSENTS: readonly DeviceConsent[] = ["default", "none", "notify", "ask"];

export interface Device {
  /** 128 random bits, lowercase hex (URL- and shell-safe). */
  id: string;
  name: string;
  /** The pin: SHA-256 of the device's SubjectPublicKeyInfo DER, lowercase hex. */
  spkiSha256: string;
  mode: DeviceMode;
  /** Direct mode only: "host:port" or "[v6]:port". */
  address?: string;
  consent: DeviceConsent;
  /** Who issued the enrollment token. */
  createdBy: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
  lastSeenAt?: number;
}

export interface EnrollmentRequest {
  /** The device name the enrolled device gets (the agent may override it). */
  name: string;
  /** Seconds the token stays valid. @default DEVICE_DEFAULTS.enrollmentTtlSeconds */
  ttlSeconds?: number;
  /** @default "default" */
  consent?: DeviceConsent;
  /** The admin issuing it (for the record). */
  createdBy: string;
}

export interface Enrollment {
  /** The one-time token (32 random bytes, base64url); shown once, never stored. */
  token: string;
  /** A non-secret handle for audit records: the first 16 hex digits of SHA-256(token). */
  id: string;
  expiresAt: number;
}

export interface EnrollRequest {
  /** The device's public key, SubjectPublicKeyInfo DER (WebCrypto exportKey("spki")). */
  spkiDer: Uint8Array;
  name?: string;
  /** Direct mode: where the device's agent listens, "host:port". Absent: gateway mode. */
  address?: string;
}

/** Why a key proof was refused; recorded in the "device.refused" audit record. */
export type ProofRefusal =
  | "malformed" // the device id, nonce or signature is not of the expected shape
  | "unknown-challenge" // never issued, already used, or forgotten
  | "expired-challenge"
  | "unknown-device"
  | "bad-signature"; // the signature does not verify with the pinned key

export class ProofError extends ControlError {
  constructor(readonly reason: ProofRefusal) {
    super("UNAUTHORIZED", `device refused: ${reason}`);
    this.name = "ProofError";
  }

  override toJSON(): ControlErrorBody & { reason: ProofRefusal } {
    return { ...super.toJSON(), reason: this.reason };
  }
}

const P256 = { name: "ECDSA", namedCurve: "P-256" } as const;
/** r || s, 32 bytes each (IEEE P1363, what WebCrypto signs and verifies). */
const P256_SIGNATURE_BYTES = 64;
const TOKEN_BYTES = 32;
const NONCE_BYTES = 32;
const DEVICE_ID = /^[0-9a-f]{32}$/;
/** Longest presented device id copied into an audit record. */
const AUDIT_ID_CHARS = 64;

/** SHA-256 of an SPKI DER, lowercase hex: the pin format used across the relay. */
export function spkiSha256Hex(spkiDer: Uint8Array): string {
  return bytesToHex(sha256(spkiDer));
}

/** Creates the device tables if they do not exist. */
export function ensureDeviceSchema(db: Database): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS enrollment_tokens (
      token_hash TEXT PRIMARY KEY,          -- SHA-256 hex of the token; the token itself is never stored
      name TEXT NOT NULL,
      consent TEXT NOT NULL,
      created_by TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL,
      used_at INTEGER,
      device_id TEXT
    );
    CREATE TABLE IF NOT EXISTS devices (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL,
      spki BLOB NOT NULL,
      spki_sha256 TEXT NOT NULL UNIQUE,
      mode TEXT NOT NULL CHECK (mode IN ('gateway', 'direct')),
      address TEXT,
      consent TEXT NOT NULL,
      created_by TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      last_seen_at INTEGER
    );
  `);
}

interface DeviceRow {
  id: string;
  name: string;
  spki: Uint8Array;
  spki_sha256: string;
  mode: DeviceMode;
  address: string | null;
  consent: DeviceConsent;
  created_by: string;
  created_at: number;
  last_seen_at: number | null;
}

interface TokenRow {
  name: string;
  consent: DeviceConsent;
  created_by: string;
  expires_at: number;
  used_at: number | null;
}

function toDevice(row: DeviceRow): Device {
  const device: Device = {
    id: row.id,
    name: row.name,
    spkiSha256: row.spki_sha256,
    mode: row.mode,
    consent: row.consent,
    createdBy: row.created_by,
    createdAt: row.created_at,
  };
  if (row.address !== null) device.address = row.address;
  if (row.last_seen_at !== null) device.lastSeenAt = row.last_seen_at;
  return device;
}

/** base64url without padding, decoded only if `text` is the one canonical encoding of `bytes` bytes. */
function strictBase64url(text: string, bytes: number): Uint8Array | undefined {
  if (text.length !== Math.ceil((bytes * 4) / 3) || !/^[A-Za-z0-9_-]*$/.test(text)) return undefined;
  const out = new Uint8Array(Buffer.from(text, "base64url"));
  // Buffer ignores the unused low bits of the last character; re-encoding refuses a second spelling.
  return out.byteLength === bytes && toBase64url(out) === text ? out : undefined;
}

/** Imports an SPKI as a P-256 verification key, or throws BAD_REQUEST. */
async function importP256(spkiDer: Uint8Array, maxBytes: number): Promise<CryptoKey> {
  if (spkiDer.byteLength === 0 || spkiDer.byteLength > maxBytes) {
    throw new ControlError("BAD_REQUEST", "public key is not an EC P-256 SubjectPublicKeyInfo");
  }
  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey("spki", spkiDer as Uint8Array<ArrayBuffer>, P256, true, ["verify"]);
  } catch {
    throw new ControlError("BAD_REQUEST", "public key is not an EC P-256 SubjectPublicKeyInfo");
  }
  // The pin is the hash of these exact bytes, so they must be the one encoding the agent's WebCrypto
  // exports (uncompressed point, no trailing bytes), or the agent's idea of its pin would differ.
  const canonical = new Uint8Array(await crypto.subtle.exportKey("spki", key));
  if (canonical.byteLength !== spkiDer.byteLength || !timingSafeEqual(canonical, spkiDer)) {
    throw new ControlError("BAD_REQUEST", "public key is not in canonical SubjectPublicKeyInfo form");
  }
  return key;
}

/** "host:port" with a DNS name or IPv4 host, or "[IPv6]:port"; port 1…65535. */
export function isDeviceAddress(address: string): boolean {
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(address);
  const v4OrName = /^([^:[\]]+):(\d+)$/.exec(address);
  const m = v6 ?? v4OrName;
  if (m === null) return false;
  const host = m[1]!;
  const port = m[2]!;
  if (!/^[1-9]\d{0,4}$/.test(port) || Number(port) > 65535) return false;
  if (v6 !== null) return host.includes(":") && isIpAddress(host);
  return isIpAddress(host) || (isDnsName(host) && !host.startsWith("*"));
}

export class DeviceRegistry {
  readonly options: DeviceOptions;
  /** nonce → expiry (ms); insertion order is issue order, so the first entries are the oldest. */
  private readonly challenges = new Map<string, number>();

  constructor(
    private readonly db: Database,
    options: Partial<DeviceOptions> = {},
  ) {
    this.options = { ...DEVICE_DEFAULTS, ...options };
    ensureDeviceSchema(db);
  }

  private checkName(name: string): string {
    // Names end up in UIs, logs and audit records: no control characters, no blank names.
    if (name.trim().length === 0 || name.length > this.options.maxNameLength || /\p{Cc}/u.test(name)) {
      throw new ControlError(
        "BAD_REQUEST",
        `device name must be 1…${this.options.maxNameLength} printable characters`,
      );
    }
    return name;
  }

  // ------------------------------------------------------------------------------------- enrollment

  createEnrollment(request: EnrollmentRequest, now = Date.now()): Enrollment {
    const ttl = request.ttlSeconds ?? this.options.enrollmentTtlSeconds;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > this.options.maxEnrollmentTtlSeconds) {
      throw new ControlError(
        "BAD_REQUEST",
        `enrollment TTL must be 1…${this.options.maxEnrollmentTtlSeconds} seconds`,
      );
    }
    const consent = request.consent ?? "default";
    if (!CONSENTS.includes(consent)) throw new ControlError("BAD_REQUEST", "unknown consent policy");
    const name = this.checkName(request.name);
    const token = toBase64url(randomBytes(TOKEN_BYTES));
    const hash = bytesToHex(sha256(new TextEncoder().encode(token)));
    const expiresAt = now + ttl * 1000;
    this.db
      .query(
        `INSERT INTO enrollment_tokens (token_hash, name, consent, created_by, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?)`,
      )
      .run(hash, name, consent, request.createdBy, now, expiresAt);
    return { token, id: hash.slice(0, 16), expiresAt };
  }

  /**
   * Spends `token` and pins `request.spkiDer` as a new device. Refusals: UNAUTHORIZED (unknown token),
   * GONE (token used or expired), BAD_REQUEST (not a P-256 key, bad name or address), CONFLICT (this key
   * is already pinned to another device; the token stays unspent).
   */
  async enroll(token: string, request: EnrollRequest, now = Date.now()): Promise<Device> {
    if (strictBase64url(token, TOKEN_BYTES) === undefined) {
      throw new ControlError("UNAUTHORIZED", "unknown enrollment token");
    }
    if (request.spkiDer.byteLength > this.options.maxSpkiBytes) {
      throw new ControlError("BAD_REQUEST", "public key is not an EC P-256 SubjectPublicKeyInfo");
    }
    const spki = new Uint8Array(request.spkiDer); // own copy: the caller's buffer may be reused
    await importP256(spki, this.options.maxSpkiBytes);
    const name = request.name === undefined ? undefined : this.checkName(request.name);
    if (request.address !== undefined && !isDeviceAddress(request.address)) {
      throw new ControlError("BAD_REQUEST", "device address must be host:port");
    }
    const hash = bytesToHex(sha256(new TextEncoder().encode(token)));
    const pin = spkiSha256Hex(spki);
    const id = bytesToHex(randomBytes(16));

    // Synchronous from here on: no other enrollment can interleave on this connection, and IMMEDIATE
    // takes the write lock up front against other connections.
    const claim = this.db.transaction((): Device => {
      const spent = this.db
        .query(
          `UPDATE enrollment_tokens SET used_at = ?, device_id = ?
           WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?`,
        )
        .run(now, id, hash, now);
      const row = this.db
        .query<TokenRow, [string]>(
          "SELECT name, consent, created_by, expires_at, used_at FROM enrollment_tokens WHERE token_hash = ?",
        )
        .get(hash);
      if (spent.changes !== 1 || row === null) {
        if (row === null) throw new ControlError("UNAUTHORIZED", "unknown enrollment token");
        if (row.used_at !== null) throw new ControlError("GONE", "enrollment token already used");
        throw new ControlError("GONE", "enrollment token expired");
      }
      const taken = this.db
        .query<{ id: string }, [string]>("SELECT id FROM devices WHERE spki_sha256 = ?")
        .get(pin);
      // Throwing rolls the token back to unspent: the admin's token is not burnt by an agent mistake.
      if (taken !== null) throw new ControlError("CONFLICT", "this key is already enrolled");
      const address = request.address ?? null;
      this.db
        .query(
          `INSERT INTO devices (id, name, spki, spki_sha256, mode, address, consent, created_by, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          id,
          name ?? row.name,
          spki,
          pin,
          address === null ? "gateway" : "direct",
          address,
          row.consent,
          row.created_by,
          now,
        );
      return this.get(id)!;
    });
    return claim.immediate();
  }

  /** Deletes enrollment tokens that expired or were spent more than `enrollmentRetentionSeconds` ago. */
  pruneEnrollments(now = Date.now()): number {
    const before = now - this.options.enrollmentRetentionSeconds * 1000;
    return this.db
      .query("DELETE FROM enrollment_tokens WHERE expires_at < ? OR (used_at IS NOT NULL AND used_at < ?)")
      .run(before, before).changes;
  }

  // ---------------------------------------------------------------------------------------- devices

  list(): Device[] {
    return this.db.query<DeviceRow, []>("SELECT * FROM devices ORDER BY created_at, id").all().map(toDevice);
  }

  get(id: string): Device | undefined {
    const row = this.db.query<DeviceRow, [string]>("SELECT * FROM devices WHERE id = ?").get(id);
    return row === null ? undefined : toDevice(row);
  }

  /** NOT_FOUND when there is no such device. */
  rename(id: string, name: string): Device {
    const changed = this.db
      .query("UPDATE devices SET name = ? WHERE id = ?")
      .run(this.checkName(name), id).changes;
    if (changed !== 1) throw new ControlError("NOT_FOUND", "no such device");
    return this.get(id)!;
  }

  /** Forgets the device and its pin (re-enrollment needs a new token). NOT_FOUND when there is none. */
  delete(id: string): void {
    if (this.db.query("DELETE FROM devices WHERE id = ?").run(id).changes !== 1) {
      throw new ControlError("NOT_FOUND", "no such device");
    }
  }

  setLastSeen(id: string, now = Date.now()): void {
    this.db.query("UPDATE devices SET last_seen_at = ? WHERE id = ?").run(now, id);
  }

  // -------------------------------------------------------------------------------------- key proof

  /** A fresh nonce for an agent to sign; redeemable once within `challengeTtlSeconds`. */
  createChallenge(now = Date.now()): string {
    // Oldest first: drop what has expired, then whatever exceeds the cap.
    for (const [nonce, expiresAt] of this.challenges) {
      if (expiresAt > now && this.challenges.size < this.options.maxOutstandingChallenges) break;
      this.challenges.delete(nonce);
    }
    const nonce = toBase64url(randomBytes(NONCE_BYTES));
    this.challenges.set(nonce, now + this.options.challengeTtlSeconds * 1000);
    return nonce;
  }

  /** Outstanding challenges (for metrics and tests). */
  get outstandingChallenges(): number {
    return this.challenges.size;
  }

  /**
   * Checks an agent's answer to `nonce`: the nonce is outstanding and unexpired (it is consumed either
   * way), the device exists, and `signatureB64url` (P1363 r||s) verifies over proofPayload("agent", nonce,
   * deviceId) with the pinned key. Every refusal throws ProofError and is audited as "device.refused".
   */
  async verifyProof(
    deviceId: string,
    nonce: string,
    signatureB64url: string,
    audit: AuditFn,
    now = Date.now(),
  ): Promise<Device> {
    // The presented id is the peer's word: bounded before it is recorded, and only ever data.
    const presented = String(deviceId).slice(0, AUDIT_ID_CHARS);
    const refuse = (reason: ProofRefusal, pin?: string): ProofError => {
      const payload: Record<string, unknown> = { deviceId: presented, reason };
      if (pin !== undefined) payload.spkiSha256 = pin;
      audit("device.refused", presented, payload);
      return new ProofError(reason);
    };

    const expiresAt = typeof nonce === "string" ? this.challenges.get(nonce) : undefined;
    if (expiresAt === undefined) throw refuse("unknown-challenge");
    this.challenges.delete(nonce);
    if (expiresAt <= now) throw refuse("expired-challenge");

    if (typeof deviceId !== "string" || !DEVICE_ID.test(deviceId)) throw refuse("malformed");
    const row = this.db.query<DeviceRow, [string]>("SELECT * FROM devices WHERE id = ?").get(deviceId);
    if (row === null) throw refuse("unknown-device");

    const signature =
      typeof signatureB64url === "string"
        ? strictBase64url(signatureB64url, P256_SIGNATURE_BYTES)
        : undefined;
    if (signature === undefined) throw refuse("malformed", row.spki_sha256);

    const spki = new Uint8Array(row.spki);
    // The stored key must still hash to the pin: a row edited behind our back verifies nothing.
    const stored = new TextEncoder().encode(spkiSha256Hex(spki));
    const pinned = new TextEncoder().encode(row.spki_sha256);
    if (stored.byteLength !== pinned.byteLength || !timingSafeEqual(stored, pinned)) {
      throw refuse("bad-signature", row.spki_sha256);
    }
    let ok = false;
    try {
      const key = await crypto.subtle.importKey("spki", spki, P256, false, ["verify"]);
      ok = await crypto.subtle.verify(
        { name: "ECDSA", hash: "SHA-256" },
        key,
        signature as Uint8Array<ArrayBuffer>,
        proofPayload("agent", nonce, deviceId) as Uint8Array<ArrayBuffer>,
      );
    } catch {
      ok = false;
    }
    if (!ok) throw refuse("bad-signature", row.spki_sha256);
    return toDevice(row);
  }
}
