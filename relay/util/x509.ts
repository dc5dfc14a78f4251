// Self-signed X.509 v3 certificates for the relay's TLS listener, built with WebCrypto and der.ts — no
// openssl binary, no extra package — plus the fingerprints the rest of the relay pins: SHA-256 of the
// certificate DER (what an agent pins at enrollment) and SHA-256 of the SubjectPublicKeyInfo (what survives
// a re-issue with the same key). Profile: RFC 5280; ECDSA P-256 with SHA-256 per RFC 5758 §3.2.

import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import {
  bitString,
  boolean,
  contentOf,
  DerError,
  type DerNode,
  decodeOid,
  decodeTime,
  encodingOf,
  explicit,
  ia5Content,
  implicitPrimitive,
  integer,
  octetString,
  oid,
  readChildren,
  readNode,
  sequence,
  set,
  TAG,
  utf8String,
  x509Time,
} from "./der.ts";

const OID = {
  ECDSA_WITH_SHA256: "1.2.840.10045.4.3.2",
  COMMON_NAME: "2.5.4.3",
  SUBJECT_KEY_IDENTIFIER: "2.5.29.14",
  KEY_USAGE: "2.5.29.15",
  SUBJECT_ALT_NAME: "2.5.29.17",
  BASIC_CONSTRAINTS: "2.5.29.19",
  EXT_KEY_USAGE: "2.5.29.37",
  SERVER_AUTH: "1.3.6.1.5.5.7.3.1",
} as const;

/** P-256 field size: r and s are 32 bytes each in WebCrypto's IEEE P1363 form. */
const P256_BYTES = 32;

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

export interface SelfSignedOptions {
  /** Subject and issuer CN. */
  commonName: string;
  /** subjectAltName dNSName entries, e.g. "localhost". */
  dnsNames?: readonly string[];
  /** subjectAltName iPAddress entries, IPv4 or IPv6 text, e.g. "127.0.0.1", "::1". */
  ipAddresses?: readonly string[];
  /** Validity after now. @default 825 (the longest a TLS server certificate may live for Apple clients) */
  days?: number;
  /** The clock; notBefore is an hour before it so a peer whose clock lags still accepts the certificate. */
  now?: Date;
  /**
   * Certify this ECDSA P-256 key pair instead of a new one (the agent's device key in direct mode). Both
   * halves must be extractable (the SPKI goes into the certificate, keyPem is the private key's PKCS#8) and
   * belong together; otherwise CertificateError.
   */
  keyPair?: CryptoKeyPair;
}

export interface SelfSigned {
  certPem: string;
  /** PKCS#8 "PRIVATE KEY" PEM. */
  keyPem: string;
  /** SHA-256 of the SubjectPublicKeyInfo DER, lowercase hex. */
  spkiSha256Hex: string;
  /** SHA-256 of the certificate DER, lowercase hex (openssl's -fingerprint -sha256 without colons). */
  certSha256Hex: string;
  notBefore: Date;
  notAfter: Date;
}

/** The parts of a certificate the relay looks at; all views into the DER that was parsed. */
export interface CertificateParts {
  /** The signed bytes (TBSCertificate, whole encoding). */
  tbs: Uint8Array;
  /** signatureAlgorithm OID, dotted. */
  signatureAlgorithm: string;
  /** signatureValue content without the unused-bits octet (for ECDSA: DER SEQUENCE {r, s}). */
  signature: Uint8Array;
  /** SubjectPublicKeyInfo, whole encoding. */
  spki: Uint8Array;
  notBefore: Date;
  notAfter: Date;
}

export class CertificateError extends Error {
  override name = "CertificateError";
}

// ---------------------------------------------------------------------------------------------- PEM

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  // Chunked so String.fromCharCode never sees more arguments than the engine allows.
  for (let i = 0; i < bytes.byteLength; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** PEM (RFC 7468 §2): base64 in 64-character lines between BEGIN/END lines. */
export function pemEncode(label: string, der: Uint8Array): string {
  const b64 = toBase64(der);
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** The DER of the first `label` block in `pem` (a chain file yields its first certificate, the leaf). */
export function pemDecode(pem: string, label: string): Uint8Array {
  const begin = `-----BEGIN ${label}-----`;
  const end = `-----END ${label}-----`;
  const from = pem.indexOf(begin);
  const to = from < 0 ? -1 : pem.indexOf(end, from + begin.length);
  if (from < 0 || to < 0) throw new CertificateError(`no ${label} block in PEM`);
  const b64 = pem.slice(from + begin.length, to).replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw new CertificateError(`${label} block is not base64`);
  let binary: string;
  try {
    binary = atob(b64);
  } catch {
    throw new CertificateError(`${label} block is not base64`);
  }
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

// ------------------------------------------------------------------------------------- ECDSA signature

/**
 * WebCrypto signs ECDSA as r||s (IEEE P1363); X.509 carries Ecdsa-Sig-Value = SEQUENCE { r INTEGER,
 * s INTEGER } (RFC 3279 §2.2.3). Each half becomes a minimal positive INTEGER.
 */
export function ecdsaRawToDer(raw: Uint8Array): Uint8Array {
  if (raw.byteLength === 0 || raw.byteLength % 2 !== 0) {
    throw new CertificateError(`raw ECDSA signature of ${raw.byteLength} bytes`);
  }
  const half = raw.byteLength / 2;
  return sequence(integer(raw.subarray(0, half)), integer(raw.subarray(half)));
}

/** The reverse: DER Ecdsa-Sig-Value to r||s with each half left-padded to `size` bytes (WebCrypto verify). */
export function ecdsaDerToRaw(der: Uint8Array, size = P256_BYTES): Uint8Array {
  const root = readNode(der);
  if (root.tag !== TAG.SEQUENCE || root.end !== der.byteLength)
    throw new CertificateError("bad ECDSA signature");
  const parts = readChildren(der, root);
  if (parts.length !== 2) throw new CertificateError("bad ECDSA signature");
  const out = new Uint8Array(size * 2);
  parts.forEach((node, i) => {
    if (node.tag !== TAG.INTEGER) throw new CertificateError("bad ECDSA signature");
    const content = contentOf(der, node);
    // Only a sign octet may precede the magnitude; anything longer than `size` is not a P-256 value.
    const magnitude = content[0] === 0 && content.byteLength > 1 ? content.subarray(1) : content;
    if (magnitude.byteLength > size || (content[0]! & 0x80) !== 0) {
      throw new CertificateError("bad ECDSA signature");
    }
    out.set(magnitude, i * size + size - magnitude.byteLength);
  });
  return out;
}

// ------------------------------------------------------------------------------------------ addresses

/** The 4 or 16 octets of an IPv4 / IPv6 address (GeneralName iPAddress, RFC 5280 §4.2.1.6). */
export function ipAddressBytes(text: string): Uint8Array {
  const v4 = parseIpv4(text);
  if (v4 !== undefined) return v4;
  const v6 = parseIpv6(text);
  if (v6 !== undefined) return v6;
  throw new CertificateError(`not an IP address: ${JSON.stringify(text)}`);
}

function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    // No leading zeros: "010" is octal to some parsers and decimal to others.
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return undefined;
    out[i] = Number(p);
  }
  return out;
}

function parseIpv6(text: string): Uint8Array | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    const parts = s.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes(".")) {
        const v4 = parseIpv4(p); // ::ffff:192.0.2.1 style tail (RFC 4291 §2.2.3)
        if (v4 === undefined) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) {
        out.push(Number.parseInt(p, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  const filled = head.length + tail.length;
  if (halves.length === 1 ? filled !== 8 : filled > 7) return undefined;
  const all = [...head, ...new Array<number>(8 - filled).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}

// A dNSName is an LDH host name, optionally with a leading "*." wildcard (RFC 5280 §4.2.1.6, RFC 6125 §6.4.3).
const DNS_NAME =
  /^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Whether `name` can be a subjectAltName dNSName. */
export function isDnsName(name: string): boolean {
  return name.length <= 253 && DNS_NAME.test(name);
}

/** Whether `text` is an IPv4 or IPv6 address in the forms `ipAddressBytes` accepts. */
export function isIpAddress(text: string): boolean {
  return parseIpv4(text) !== undefined || parseIpv6(text) !== undefined;
}

// ------------------------------------------------------------------------------------------- building

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  // critical is DEFAULT FALSE, and DER omits a value equal to its default (X.690 §11.5).
  return critical
    ? sequence(oid(id), boolean(true), octetString(value))
    : sequence(oid(id), octetString(value));
}

function commonNameOnly(cn: string): Uint8Array {
  return sequence(set(sequence(oid(OID.COMMON_NAME), utf8String(cn))));
}

/** The BIT STRING content of an SPKI (the EC point), for the key identifier. */
function subjectPublicKeyBits(spki: Uint8Array): Uint8Array {
  const root = readNode(spki);
  const [, key] = readChildren(spki, root);
  if (key === undefined || key.tag !== TAG.BIT_STRING) throw new CertificateError("bad SubjectPublicKeyInfo");
  return contentOf(spki, key).subarray(1);
}

function isP256(key: CryptoKey): boolean {
  const alg = key.algorithm as EcKeyAlgorithm;
  return alg.name === "ECDSA" && alg.namedCurve === "P-256";
}

/**
 * A given key pair must be one ECDSA P-256 pair whose private half can sign and be exported: a certificate
 * that names one key and is signed by another would verify nowhere, and keyPem is the private key's PKCS#8.
 * The halves belong together when the private key's public point (its JWK x, y) is the public key's.
 */
async function checkKeyPair(pair: CryptoKeyPair): Promise<void> {
  if (!isP256(pair.publicKey) || !isP256(pair.privateKey)) {
    throw new CertificateError("keyPair must be ECDSA P-256");
  }
  if (pair.publicKey.type !== "public" || pair.privateKey.type !== "private") {
    throw new CertificateError("keyPair must hold a public and a private key");
  }
  if (!pair.privateKey.extractable || !pair.privateKey.usages.includes("sign")) {
    throw new CertificateError("keyPair's private key must be extractable and allowed to sign");
  }
  if (!pair.publicKey.extractable) throw new CertificateError("keyPair's public key must be extractable");
  const priv = await crypto.subtle.exportKey("jwk", pair.privateKey);
  const pub = await crypto.subtle.exportKey("jwk", pair.publicKey);
  if (priv.x !== pub.x || priv.y !== pub.y) {
    throw new CertificateError("keyPair's private and public keys do not belong together");
  }
}

/** A self-signed certificate for a new P-256 key pair, or for `options.keyPair` when given. */
export async function generateSelfSigned(options: SelfSignedOptions): Promise<SelfSigned> {
  const dnsNames = options.dnsNames ?? [];
  const ipAddresses = options.ipAddresses ?? [];
  const days = options.days ?? 825;
  if (!Number.isInteger(days) || days < 1 || days > 36500)
    throw new CertificateError(`bad validity ${days} days`);
  if (options.commonName.length === 0 || options.commonName.length > 64) {
    throw new CertificateError("commonName must be 1…64 characters (RFC 5280 ub-common-name)");
  }
  for (const name of dnsNames) {
    if (!isDnsName(name)) throw new CertificateError(`not a DNS name: ${JSON.stringify(name)}`);
  }
  const ipBytes = ipAddresses.map(ipAddressBytes);

  const now = options.now ?? new Date();
  // Whole seconds: DER times carry no fractions, and the returned dates should equal what is encoded.
  const nowSec = Math.floor(now.getTime() / 1000) * 1000;
  const notBefore = new Date(nowSec - HOUR_MS);
  const notAfter = new Date(nowSec + days * DAY_MS);

  const keys =
    options.keyPair ??
    ((await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
      "sign",
      "verify",
    ])) as CryptoKeyPair);
  if (options.keyPair) await checkKeyPair(options.keyPair);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keys.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));

  // Serial: 16 random octets, positive and non-zero (RFC 5280 §4.1.2.2); the top bit cleared so no sign
  // octet is needed, the next one set so the length is always 16.
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] = (serial[0]! & 0x7f) | 0x40;

  const sigAlg = sequence(oid(OID.ECDSA_WITH_SHA256)); // parameters absent (RFC 5758 §3.2)
  const name = commonNameOnly(options.commonName);

  const altNames = [
    ...dnsNames.map((n) => implicitPrimitive(2, ia5Content(n))), // dNSName [2] IA5String
    ...ipBytes.map((b) => implicitPrimitive(7, b)), // iPAddress [7] OCTET STRING
  ];
  const extensions = [
    extension(OID.BASIC_CONSTRAINTS, true, sequence()), // cA DEFAULT FALSE, so an empty SEQUENCE
    // digitalSignature is bit 0; DER drops trailing zero bits, leaving one byte 0x80 with 7 unused.
    extension(OID.KEY_USAGE, true, bitString(Uint8Array.of(0x80), 7)),
    extension(OID.EXT_KEY_USAGE, false, sequence(oid(OID.SERVER_AUTH))),
    // RFC 7093 §2 method 1: the leftmost 160 bits of SHA-256 over the subjectPublicKey bits.
    extension(
      OID.SUBJECT_KEY_IDENTIFIER,
      false,
      octetString(sha256(subjectPublicKeyBits(spki)).subarray(0, 20)),
    ),
  ];
  // An empty SAN extension is invalid (RFC 5280 §4.2.1.6: at least one GeneralName).
  if (altNames.length > 0) extensions.push(extension(OID.SUBJECT_ALT_NAME, false, sequence(...altNames)));

  const tbs = sequence(
    explicit(0, integer(2)), // version v3
    integer(serial),
    sigAlg,
    name, // issuer
    sequence(x509Time(notBefore), x509Time(notAfter)),
    name, // subject = issuer: self-signed
    spki,
    explicit(3, sequence(...extensions)),
  );

  const raw = new Uint8Array(
    await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      keys.privateKey,
      tbs as Uint8Array<ArrayBuffer>,
    ),
  );
  const cert = sequence(tbs, sigAlg, bitString(ecdsaRawToDer(raw)));

  return {
    certPem: pemEncode("CERTIFICATE", cert),
    keyPem: pemEncode("PRIVATE KEY", pkcs8),
    spkiSha256Hex: bytesToHex(sha256(spki)),
    certSha256Hex: bytesToHex(sha256(cert)),
    notBefore,
    notAfter,
  };
}

// -------------------------------------------------------------------------------------------- reading

function expectTag(node: DerNode | undefined, tag: number, what: string): DerNode {
  if (node === undefined || node.tag !== tag)
    throw new CertificateError(`certificate: bad or missing ${what}`);
  return node;
}

/**
 * Just enough of RFC 5280 §4.1 to find the signed bytes, the signature, the validity and the SPKI. It does
 * not validate the certificate; it only refuses DER that does not have the Certificate shape.
 */
export function parseCertificate(der: Uint8Array): CertificateParts {
  try {
    const root = expectTag(readNode(der), TAG.SEQUENCE, "Certificate");
    if (root.end !== der.byteLength) throw new CertificateError("certificate: trailing bytes");
    const [tbsNode, algNode, sigNode, ...extra] = readChildren(der, root);
    if (extra.length > 0) throw new CertificateError("certificate: too many fields");
    const tbs = expectTag(tbsNode, TAG.SEQUENCE, "tbsCertificate");
    const alg = expectTag(algNode, TAG.SEQUENCE, "signatureAlgorithm");
    const sig = expectTag(sigNode, TAG.BIT_STRING, "signatureValue");

    const fields = readChildren(der, tbs);
    // version is [0] EXPLICIT and absent for v1 certificates; every later field shifts by one.
    const skip = fields[0]?.tag === 0xa0 ? 1 : 0;
    expectTag(fields[skip], TAG.INTEGER, "serialNumber");
    const validity = expectTag(fields[skip + 3], TAG.SEQUENCE, "validity");
    const spki = expectTag(fields[skip + 5], TAG.SEQUENCE, "subjectPublicKeyInfo");
    const [nb, na] = readChildren(der, validity);
    if (nb === undefined || na === undefined) throw new CertificateError("certificate: bad validity");

    const algOid = expectTag(readChildren(der, alg)[0], TAG.OID, "signature algorithm OID");
    const sigContent = contentOf(der, sig);
    if (sigContent[0] !== 0) throw new CertificateError("certificate: signature has unused bits");

    return {
      tbs: encodingOf(der, tbs),
      signatureAlgorithm: decodeOid(contentOf(der, algOid)),
      signature: sigContent.subarray(1),
      spki: encodingOf(der, spki),
      notBefore: decodeTime(nb.tag, contentOf(der, nb)),
      notAfter: decodeTime(na.tag, contentOf(der, na)),
    };
  } catch (err) {
    if (err instanceof DerError) throw new CertificateError(`certificate: ${err.message}`);
    throw err;
  }
}

/** SHA-256 of the DER of the first certificate in `pem`, lowercase hex. */
export function certFingerprint(pem: string): string {
  return bytesToHex(sha256(pemDecode(pem, "CERTIFICATE")));
}

/** SHA-256 of the SubjectPublicKeyInfo of the first certificate in `pem`, lowercase hex. */
export function spkiSha256FromCertPem(pem: string): string {
  return bytesToHex(sha256(parseCertificate(pemDecode(pem, "CERTIFICATE")).spki));
}

/** SHA-256 of any bytes, lowercase hex; the one fingerprint format used across the relay. */
export function sha256Hex(bytes: Uint8Array): string {
  return bytesToHex(sha256(bytes));
}
