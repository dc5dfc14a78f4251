// The agent's device identity (DESIGN.md "Identity"; issue #4 "Control plane"): an ECDSA P-256 key pair made
// with WebCrypto at enrollment, the device id the relay gave it, the relay's URL and the relay certificate
// fingerprint the agent pins. Stored as one JSON file in the state directory (directory 0700, file 0600,
// written atomically). The private key proves possession on every control connection by signing the relay's
// fresh challenge (relay/gateway/protocol.ts proofPayload), and certifies the TLS listener in direct mode.

import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fromBase64url, proofPayload, toBase64url } from "../gateway/protocol.ts";
import { log } from "../util/log.ts";
import { type SelfSigned, type SelfSignedOptions, generateSelfSigned, sha256Hex } from "../util/x509.ts";

export const IDENTITY_DEFAULTS = Object.freeze({
  /** The identity file's name inside the state directory. @default "identity.json" */
  fileName: "identity.json",
  /** Largest identity file read, bytes (a P-256 identity is about 500). @default 65536 */
  maxFileBytes: 64 * 1024,
});

export const IDENTITY_ERRORS = {
  CORRUPT: "the identity file is not a valid agent identity",
  PERMISSIONS: "the identity file is readable by other users (chmod 600 it)",
  KEY_MISMATCH: "the identity's private and public keys do not belong together",
  CERT_KEY_UNSUPPORTED: "relay/util/x509.ts cannot certify a given key yet",
} as const;

export type IdentityErrorCode = keyof typeof IDENTITY_ERRORS;

export class IdentityError extends Error {
  readonly code: IdentityErrorCode;
  constructor(code: IdentityErrorCode, detail?: string) {
    super(detail ? `${IDENTITY_ERRORS[code]}: ${detail}` : IDENTITY_ERRORS[code]);
    this.name = "IdentityError";
    this.code = code;
  }
}

export interface DeviceKeys {
  /** Non-extractable, for signing. */
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** PKCS#8 DER of the private key (what the state file keeps). */
  pkcs8: Uint8Array;
  /** SubjectPublicKeyInfo DER: what the agent enrolls with and the relay pins the SHA-256 of. */
  spki: Uint8Array;
}

export interface AgentIdentity extends DeviceKeys {
  deviceId: string;
  /** The relay's base URL (https:// or wss://). */
  relayUrl: string;
  /** SHA-256 of the relay's certificate DER, lowercase hex: the pin given at enrollment. */
  relayCertSha256: string;
}

/** The JSON in the state file. */
interface IdentityFile {
  deviceId: string;
  relayUrl: string;
  relayCertSha256: string;
  /** base64 PKCS#8 DER. */
  privateKeyPkcs8: string;
  /** base64 SPKI DER. */
  spki: string;
}

const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256" } as const;
const ECDSA_SHA256 = { name: "ECDSA", hash: "SHA-256" } as const;
const HEX_SHA256 = /^[0-9a-f]{64}$/;

const buf = (b: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(b);

/** A new P-256 key pair; the private key is exported once (for the state file) and used non-extractable. */
export async function generateDeviceKeys(): Promise<DeviceKeys> {
  const pair = (await crypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"])) as CryptoKeyPair;
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
  return importDeviceKeys(pkcs8, spki);
}

/**
 * Imports stored keys and checks that they are one P-256 pair: the private key's public point (from its
 * JWK) must equal the SPKI's, so a file with a swapped public key can never enroll one key and sign with
 * another.
 */
export async function importDeviceKeys(pkcs8: Uint8Array, spki: Uint8Array): Promise<DeviceKeys> {
  let privJwk: JsonWebKey;
  let pubJwk: JsonWebKey;
  let privateKey: CryptoKey;
  let publicKey: CryptoKey;
  try {
    const extractable = await crypto.subtle.importKey("pkcs8", buf(pkcs8), ECDSA_P256, true, ["sign"]);
    privJwk = await crypto.subtle.exportKey("jwk", extractable);
    publicKey = await crypto.subtle.importKey("spki", buf(spki), ECDSA_P256, true, ["verify"]);
    pubJwk = await crypto.subtle.exportKey("jwk", publicKey);
    privateKey = await crypto.subtle.importKey("pkcs8", buf(pkcs8), ECDSA_P256, false, ["sign"]);
  } catch (e) {
    throw new IdentityError("CORRUPT", `not a P-256 key: ${(e as Error).message}`);
  }
  if (privJwk.x !== pubJwk.x || privJwk.y !== pubJwk.y) throw new IdentityError("KEY_MISMATCH");
  return { privateKey, publicKey, pkcs8: pkcs8.slice(), spki: spki.slice() };
}

/** SHA-256 of the SPKI DER, lowercase hex: the device's pin on the relay. */
export function spkiSha256(keys: Pick<DeviceKeys, "spki">): string {
  return sha256Hex(keys.spki);
}

/** The state file's path. */
export function identityPath(stateDir: string): string {
  return join(stateDir, IDENTITY_DEFAULTS.fileName);
}

function ensurePrivateDir(dir: string): void {
  if (existsSync(dir)) {
    const st = statSync(dir);
    if (!st.isDirectory()) throw new IdentityError("CORRUPT", `${dir} is not a directory`);
    // An operator's own directory: say so rather than silently changing it (as relay/serve/data-dir.ts).
    if ((st.mode & 0o077) !== 0) {
      log.warn("agent state directory is accessible to other users", {
        dir,
        mode: (st.mode & 0o777).toString(8),
      });
    }
    return;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700); // mkdir's mode passes through the umask; state it exactly
}

function checkFields(f: IdentityFile): void {
  if (typeof f.deviceId !== "string" || f.deviceId.length === 0 || f.deviceId.length > 256) {
    throw new IdentityError("CORRUPT", "deviceId");
  }
  let url: URL;
  try {
    url = new URL(f.relayUrl);
  } catch {
    throw new IdentityError("CORRUPT", "relayUrl");
  }
  if (!["https:", "wss:"].includes(url.protocol)) throw new IdentityError("CORRUPT", "relayUrl scheme");
  if (typeof f.relayCertSha256 !== "string" || !HEX_SHA256.test(f.relayCertSha256)) {
    throw new IdentityError("CORRUPT", "relayCertSha256");
  }
}

/** Writes the identity to `stateDir`/identity.json (directory 0700, file 0600, via a temporary name). */
export function saveIdentity(stateDir: string, id: AgentIdentity): string {
  const file: IdentityFile = {
    deviceId: id.deviceId,
    relayUrl: id.relayUrl,
    relayCertSha256: id.relayCertSha256,
    privateKeyPkcs8: Buffer.from(id.pkcs8).toString("base64"),
    spki: Buffer.from(id.spki).toString("base64"),
  };
  checkFields(file);
  ensurePrivateDir(stateDir);
  const path = identityPath(stateDir);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: "w" });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  return path;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Reads `stateDir`/identity.json: null when there is none (not enrolled yet). A file other users can read is
 * refused (PERMISSIONS), as ssh refuses a private key with loose modes; malformed content is CORRUPT.
 */
export async function loadIdentity(stateDir: string): Promise<AgentIdentity | null> {
  const path = identityPath(stateDir);
  if (!existsSync(path)) return null;
  const st = statSync(path);
  if (!st.isFile() || st.size > IDENTITY_DEFAULTS.maxFileBytes) throw new IdentityError("CORRUPT", path);
  if ((st.mode & 0o077) !== 0) {
    throw new IdentityError("PERMISSIONS", `${path} has mode ${(st.mode & 0o777).toString(8)}`);
  }
  let f: IdentityFile;
  try {
    f = JSON.parse(readFileSync(path, "utf8")) as IdentityFile;
  } catch {
    throw new IdentityError("CORRUPT", `${path} is not JSON`);
  }
  if (typeof f !== "object" || f === null) throw new IdentityError("CORRUPT", path);
  checkFields(f);
  if (
    typeof f.privateKeyPkcs8 !== "string" ||
    typeof f.spki !== "string" ||
    !BASE64.test(f.privateKeyPkcs8) ||
    !BASE64.test(f.spki)
  ) {
    throw new IdentityError("CORRUPT", "keys are not base64");
  }
  const keys = await importDeviceKeys(
    new Uint8Array(Buffer.from(f.privateKeyPkcs8, "base64")),
    new Uint8Array(Buffer.from(f.spki, "base64")),
  );
  return { ...keys, deviceId: f.deviceId, relayUrl: f.relayUrl, relayCertSha256: f.relayCertSha256 };
}

/** ECDSA P-256 / SHA-256 over proofPayload("agent", nonce, deviceId): r‖s (64 bytes), base64url. */
export async function signProof(
  identity: Pick<DeviceKeys, "privateKey">,
  nonce: string,
  deviceId: string,
): Promise<string> {
  const sig = await crypto.subtle.sign(
    ECDSA_SHA256,
    identity.privateKey,
    buf(proofPayload("agent", nonce, deviceId)),
  );
  return toBase64url(new Uint8Array(sig));
}

/**
 * Checks a proof against an SPKI (what the relay does with the pinned key; "relay" proofs in direct mode the
 * other way round). Malformed keys or signatures are simply false.
 */
export async function verifyProof(
  spki: Uint8Array,
  nonce: string,
  deviceId: string,
  signature: string,
  purpose: "agent" | "relay" = "agent",
): Promise<boolean> {
  try {
    const sig = fromBase64url(signature);
    if (sig.length !== 64 || toBase64url(sig) !== signature) return false;
    const key = await crypto.subtle.importKey("spki", buf(spki), ECDSA_P256, false, ["verify"]);
    return await crypto.subtle.verify(
      ECDSA_SHA256,
      key,
      buf(sig),
      buf(proofPayload(purpose, nonce, deviceId)),
    );
  } catch {
    return false;
  }
}

export interface DeviceCertOptions {
  /** @default `shadowrelay-device-${deviceId}` cut to 64 characters */
  commonName?: string;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  /** @default x509.ts's default */
  days?: number;
}

/**
 * A self-signed certificate for the device key, for the direct-mode TLS listener: the relay checks that
 * the peer's SPKI equals the pin, so the certificate must carry this exact key. Needs x509.ts to accept a
 * given key pair (`keyPair` option, see the report); until it does this throws CERT_KEY_UNSUPPORTED rather
 * than ever returning a certificate for some other key.
 */
export async function selfSignedCertFor(
  identity: AgentIdentity,
  o: DeviceCertOptions = {},
): Promise<SelfSigned> {
  // The certificate's keyPem is exported from the pair, so this one import is extractable.
  const privateKey = await crypto.subtle.importKey("pkcs8", buf(identity.pkcs8), ECDSA_P256, true, ["sign"]);
  const keyPair: CryptoKeyPair = { privateKey, publicKey: identity.publicKey };
  const options: SelfSignedOptions & { keyPair: CryptoKeyPair } = {
    commonName: o.commonName ?? `shadowrelay-device-${identity.deviceId}`.slice(0, 64),
    ...(o.dnsNames ? { dnsNames: o.dnsNames } : {}),
    ...(o.ipAddresses ? { ipAddresses: o.ipAddresses } : {}),
    ...(o.days !== undefined ? { days: o.days } : {}),
    keyPair,
  };
  const cert = await generateSelfSigned(options);
  if (cert.spkiSha256Hex !== spkiSha256(identity)) throw new IdentityError("CERT_KEY_UNSUPPORTED");
  return cert;
}
