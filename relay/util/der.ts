// A minimal DER (ITU-T X.690 §10) encoder and reader: just what the relay needs to build a self-signed
// X.509 certificate (x509.ts) and to find fields inside one (the SPKI that devices and agents pin).
// Encoders take already-encoded children and return fresh bytes; the reader never copies and checks every
// length against the bytes it has, so a truncated or hostile certificate is an error, never a wrong slice.

/** Universal tags used here (X.680 §8.4, Table 1). */
import { concat } from "./bytes.ts";

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30, // 0x10 | constructed (0x20)
  SET: 0x31, // 0x11 | constructed
} as const;

const CONTEXT = 0x80; // class bits 10: context-specific
const CONSTRUCTED = 0x20;

export class DerError extends Error {
  override name = "DerError";
}

/** Definite-length octets (X.690 §8.1.3): short form below 128, else 0x80|n followed by n big-endian bytes. */
function encodeLength(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new DerError(`bad length ${n}`);
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

/** One TLV with a single-byte tag (all tags used in X.509 are below 31). */
export function tlv(tag: number, ...content: readonly Uint8Array[]): Uint8Array {
  const body = concat(content);
  return concat([Uint8Array.of(tag), encodeLength(body.byteLength), body]);
}

export function sequence(...items: readonly Uint8Array[]): Uint8Array {
  return tlv(TAG.SEQUENCE, ...items);
}

/** SET OF; DER sorts the encodings (X.690 §11.6), so callers may pass them in any order. */
export function set(...items: readonly Uint8Array[]): Uint8Array {
  const sorted = [...items].sort(compareBytes);
  return tlv(TAG.SET, ...sorted);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.byteLength - b.byteLength;
}

export function boolean(value: boolean): Uint8Array {
  return tlv(TAG.BOOLEAN, Uint8Array.of(value ? 0xff : 0x00)); // DER: TRUE is 0xFF (X.690 §11.1)
}

export function nullValue(): Uint8Array {
  return tlv(TAG.NULL);
}

/**
 * The content octets of a non-negative INTEGER given as unsigned big-endian bytes: leading zeros stripped
 * (minimal encoding, X.690 §8.3.2), one 0x00 put back when the high bit is set so it does not read as
 * negative. Also the rule for ECDSA r and s (RFC 3279 §2.2.3).
 */
export function unsignedIntegerContent(magnitude: Uint8Array): Uint8Array {
  let start = 0;
  while (start < magnitude.byteLength - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.subarray(start);
  if (trimmed.byteLength === 0) return Uint8Array.of(0);
  if ((trimmed[0]! & 0x80) !== 0) return concat([Uint8Array.of(0), trimmed]);
  return trimmed.slice();
}

/** INTEGER from a non-negative safe integer or unsigned big-endian bytes. */
export function integer(value: number | Uint8Array): Uint8Array {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) throw new DerError(`integer ${value} is not supported`);
    const bytes: number[] = [];
    for (let v = value; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
    return tlv(TAG.INTEGER, unsignedIntegerContent(Uint8Array.from(bytes)));
  }
  return tlv(TAG.INTEGER, unsignedIntegerContent(value));
}

/** OBJECT IDENTIFIER from dotted text (X.690 §8.19): first two arcs folded into 40*a+b, base-128 arcs. */
export function oid(dotted: string): Uint8Array {
  const arcs = dotted.split(".").map((s) => {
    if (!/^\d+$/.test(s)) throw new DerError(`bad OID ${dotted}`);
    return Number(s);
  });
  const [first, second, ...rest] = arcs;
  if (first === undefined || second === undefined || first > 2 || (first < 2 && second > 39)) {
    throw new DerError(`bad OID ${dotted}`);
  }
  const out: number[] = [];
  for (const arc of [first * 40 + second, ...rest]) {
    if (!Number.isSafeInteger(arc)) throw new DerError(`bad OID ${dotted}`);
    const group: number[] = [arc % 128];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) group.unshift((v % 128) | 0x80);
    out.push(...group);
  }
  return tlv(TAG.OID, Uint8Array.from(out));
}

/** Dotted text of an OID's content octets (the reverse of `oid`). */
export function decodeOid(content: Uint8Array): string {
  const arcs: number[] = [];
  let v = 0;
  for (let i = 0; i < content.byteLength; i++) {
    const b = content[i]!;
    v = v * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) {
      arcs.push(v);
      v = 0;
    } else if (i === content.byteLength - 1) {
      throw new DerError("truncated OID");
    }
  }
  const [head, ...rest] = arcs;
  if (head === undefined) throw new DerError("empty OID");
  const first = head < 80 ? Math.floor(head / 40) : 2;
  return [first, head - first * 40, ...rest].join(".");
}

const textEncoder = new TextEncoder();

export function utf8String(text: string): Uint8Array {
  return tlv(TAG.UTF8_STRING, textEncoder.encode(text));
}

/** IA5String: ASCII only (X.680 §41); refuses anything else rather than mangling it. */
export function ia5Content(text: string): Uint8Array {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the range is the definition of IA5
  if (!/^[\x00-\x7f]*$/.test(text)) throw new DerError(`not an IA5 string: ${JSON.stringify(text)}`);
  return textEncoder.encode(text);
}

export function octetString(bytes: Uint8Array): Uint8Array {
  return tlv(TAG.OCTET_STRING, bytes);
}

/** BIT STRING: one octet of unused trailing bits, then the bits (X.690 §8.6.2). */
export function bitString(bytes: Uint8Array, unusedBits = 0): Uint8Array {
  if (unusedBits < 0 || unusedBits > 7 || (bytes.byteLength === 0 && unusedBits !== 0)) {
    throw new DerError(`bad unused-bit count ${unusedBits}`);
  }
  return tlv(TAG.BIT_STRING, Uint8Array.of(unusedBits), bytes);
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

/** UTCTime YYMMDDHHMMSSZ (X.690 §11.8: seconds present, Z, no fractions); years 1950–2049 only. */
export function utcTime(date: Date): Uint8Array {
  const y = date.getUTCFullYear();
  if (y < 1950 || y > 2049) throw new DerError(`UTCTime cannot hold the year ${y}`);
  return tlv(TAG.UTC_TIME, textEncoder.encode(`${pad(y % 100, 2)}${timeOfYear(date)}Z`));
}

/** GeneralizedTime YYYYMMDDHHMMSSZ (X.690 §11.7: Z, no fractional seconds as RFC 5280 §4.1.2.5.2 asks). */
export function generalizedTime(date: Date): Uint8Array {
  const y = date.getUTCFullYear();
  if (y < 0 || y > 9999) throw new DerError(`GeneralizedTime cannot hold the year ${y}`);
  return tlv(TAG.GENERALIZED_TIME, textEncoder.encode(`${pad(y, 4)}${timeOfYear(date)}Z`));
}

function timeOfYear(d: Date): string {
  return `${pad(d.getUTCMonth() + 1, 2)}${pad(d.getUTCDate(), 2)}${pad(d.getUTCHours(), 2)}${pad(d.getUTCMinutes(), 2)}${pad(d.getUTCSeconds(), 2)}`;
}

/** X.509 Time: UTCTime through 2049, GeneralizedTime from 2050 on (RFC 5280 §4.1.2.5). */
export function x509Time(date: Date): Uint8Array {
  const y = date.getUTCFullYear();
  return y >= 1950 && y <= 2049 ? utcTime(date) : generalizedTime(date);
}

/** Parses UTCTime / GeneralizedTime content in the DER forms above (Z, whole seconds). */
export function decodeTime(tag: number, content: Uint8Array): Date {
  const text = new TextDecoder().decode(content);
  const utc = tag === TAG.UTC_TIME ? /^(\d{2})(\d{10})Z$/.exec(text) : null;
  const gen = tag === TAG.GENERALIZED_TIME ? /^(\d{4})(\d{10})Z$/.exec(text) : null;
  const m = utc ?? gen;
  if (m === null) throw new DerError(`unsupported time ${JSON.stringify(text)}`);
  const yy = Number(m[1]);
  const year = utc === null ? yy : yy >= 50 ? 1900 + yy : 2000 + yy; // RFC 5280 §4.1.2.5.1
  const rest = m[2]!;
  const field = (i: number): number => Number(rest.slice(i, i + 2));
  const date = new Date(Date.UTC(year, field(0) - 1, field(2), field(4), field(6), field(8)));
  // Date.UTC rolls 31 February over into March; a time that does not round-trip is not a valid time.
  if (
    date.getUTCMonth() !== field(0) - 1 ||
    date.getUTCDate() !== field(2) ||
    field(4) > 23 ||
    field(6) > 59 ||
    field(8) > 59
  ) {
    throw new DerError(`invalid time ${JSON.stringify(text)}`);
  }
  return date;
}

/** [n] EXPLICIT: a constructed context tag wrapping a whole encoding. */
export function explicit(n: number, inner: Uint8Array): Uint8Array {
  if (n < 0 || n > 30) throw new DerError(`context tag ${n} needs the long form`);
  return tlv(CONTEXT | CONSTRUCTED | n, inner);
}

/** [n] IMPLICIT on a primitive type: the content octets under a context tag (e.g. GeneralName). */
export function implicitPrimitive(n: number, content: Uint8Array): Uint8Array {
  if (n < 0 || n > 30) throw new DerError(`context tag ${n} needs the long form`);
  return tlv(CONTEXT | n, content);
}

/** One element found by the reader; offsets index into the buffer that was read. */
export interface DerNode {
  tag: number;
  /** Offset of the tag byte. */
  start: number;
  /** Offset of the first content byte. */
  contentStart: number;
  /** Offset just past the content. */
  end: number;
}

/**
 * Reads the TLV at `offset` without copying. Accepts only the definite form and single-byte tags (all
 * X.509 needs), and only minimal long-form lengths (DER); every length is checked against `limit`.
 */
export function readNode(bytes: Uint8Array, offset = 0, limit = bytes.byteLength): DerNode {
  if (offset + 2 > limit) throw new DerError("truncated DER element");
  const tag = bytes[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError("multi-byte tags are not supported");
  const first = bytes[offset + 1]!;
  let length: number;
  let contentStart: number;
  if (first < 0x80) {
    length = first;
    contentStart = offset + 2;
  } else {
    const n = first & 0x7f;
    // 0x80 is the indefinite form (BER only); more than 4 length bytes would describe > 4 GiB.
    if (n === 0 || n > 4) throw new DerError("unsupported DER length form");
    if (offset + 2 + n > limit) throw new DerError("truncated DER length");
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + bytes[offset + 2 + i]!;
    if (length < 0x80 || bytes[offset + 2] === 0) throw new DerError("non-minimal DER length");
    contentStart = offset + 2 + n;
  }
  const end = contentStart + length;
  if (end > limit) throw new DerError("DER element runs past its container");
  return { tag, start: offset, contentStart, end };
}

/** The children of a constructed node, in order. */
export function readChildren(bytes: Uint8Array, parent: DerNode): DerNode[] {
  if ((parent.tag & CONSTRUCTED) === 0) throw new DerError("not a constructed element");
  const out: DerNode[] = [];
  for (let at = parent.contentStart; at < parent.end; ) {
    const child = readNode(bytes, at, parent.end);
    out.push(child);
    at = child.end;
  }
  return out;
}

/** The node's whole encoding (tag, length, content) as a view. */
export function encodingOf(bytes: Uint8Array, node: DerNode): Uint8Array {
  return bytes.subarray(node.start, node.end);
}

/** The node's content octets as a view. */
export function contentOf(bytes: Uint8Array, node: DerNode): Uint8Array {
  return bytes.subarray(node.contentStart, node.end);
}
