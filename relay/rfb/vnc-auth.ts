// VNC Authentication (security type 2, rfbproto.rst "VNC Authentication") and TigerVNC's `vncpasswd` file
// format (`-rfbauth`, `-passwd`, the agent's `--vnc-password-file`). The server sends a 16-byte challenge;
// the client answers with the challenge DES-ECB-encrypted (two 8-byte blocks) under a key made from the
// password. VNC's DES key has the bits of each byte reversed compared with FIPS 46-3: VNC's d3des.c reads
// key bits least-significant first (rfb-codecs.md "Security types"). Only 8 password bytes count, so this is
// only ever used with a one-time password on the loopback proxy (bad-inputs.md, "VNC-auth challenge/response").

import { DesCipher } from "./des.ts";
import { RfbError } from "./errors.ts";

export const VNC_AUTH_CHALLENGE_LENGTH = 16;
/** Password bytes that count; the rest are ignored by every VNC implementation (vncpasswd(1)). */
export const VNC_PASSWORD_LENGTH = 8;

/**
 * TigerVNC's fixed obfuscation key for password files (common/rfb/obfuscate.cxx, `d3desObfuscationKey`), in
 * the d3des bit order; as a FIPS 46-3 key it is reverseBits of each byte, E8 4A D6 60 C4 72 1A E0.
 */
export const VNC_PASSWD_FILE_KEY: readonly number[] = Object.freeze([23, 82, 107, 6, 35, 78, 88, 7]);

const utf8 = new TextEncoder();

function reverseBits(b: number): number {
  let r = 0;
  for (let i = 0; i < 8; i++) r |= ((b >>> i) & 1) << (7 - i);
  return r;
}

/**
 * The password as the 8 bytes VNC peers use: a string is UTF-8 (what vncpasswd and TigerVNC see from a
 * UTF-8 terminal; noVNC instead takes the low byte of each UTF-16 unit, so non-ASCII passwords differ
 * between viewers). C peers treat it as a C string, so bytes from the first NUL on are dropped; then it is
 * truncated to 8 bytes or zero-padded.
 */
export function vncPasswordBytes(password: string | Uint8Array): Uint8Array {
  const raw = typeof password === "string" ? utf8.encode(password) : password;
  const nul = raw.indexOf(0);
  const end = Math.min(nul === -1 ? raw.length : nul, VNC_PASSWORD_LENGTH);
  const out = new Uint8Array(VNC_PASSWORD_LENGTH);
  out.set(raw.subarray(0, end));
  return out;
}

/** A FIPS 46-3 DES cipher for VNC key bytes (each byte bit-reversed, see the file comment). */
function vncDes(keyBytes: ArrayLike<number>): DesCipher {
  const key = new Uint8Array(VNC_PASSWORD_LENGTH);
  for (let i = 0; i < VNC_PASSWORD_LENGTH; i++) key[i] = reverseBits(keyBytes[i]!);
  return new DesCipher(key);
}

function checkChallenge(challenge: Uint8Array): void {
  if (challenge.length !== VNC_AUTH_CHALLENGE_LENGTH) {
    throw new RfbError("BAD_MESSAGE", `VNC auth challenge is ${challenge.length} bytes, not 16`);
  }
}

/** The client's 16-byte response to a server challenge. */
export function vncAuthResponse(challenge: Uint8Array, password: string | Uint8Array): Uint8Array {
  checkChallenge(challenge);
  return vncDes(vncPasswordBytes(password)).encrypt(challenge);
}

/**
 * Server side: does response answer challenge for password? Compares in constant time over the 16 bytes so
 * the first differing byte is not observable; a response of the wrong length is simply wrong (lengths are public).
 */
export function verifyVncAuthResponse(
  challenge: Uint8Array,
  response: Uint8Array,
  password: string | Uint8Array,
): boolean {
  const expected = vncAuthResponse(challenge, password);
  if (response.length !== expected.length) return false;
  let diff = 0;
  for (let i = 0; i < expected.length; i++) diff |= expected[i]! ^ response[i]!;
  return diff === 0;
}

/** A fresh 16-byte challenge from the platform CSPRNG. */
export function randomChallenge(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(VNC_AUTH_CHALLENGE_LENGTH));
}

export interface VncPasswordFile {
  /** The full-access password: up to 8 bytes, padding removed. */
  password: Uint8Array;
  /** The view-only password when the file has one (16-byte files), else null. */
  viewOnlyPassword: Uint8Array | null;
}

/** Bytes before the first NUL: the password as TigerVNC's deobfuscate() returns it (a C string). */
function unpad(block: Uint8Array): Uint8Array {
  const nul = block.indexOf(0);
  return block.slice(0, nul === -1 ? block.length : nul);
}

/**
 * Reads a password file written by `vncpasswd` / `tigervncpasswd`: 8 bytes, the password DES-encrypted with
 * VNC_PASSWD_FILE_KEY, optionally followed by 8 more for the view-only password (vncpasswd(1), "-f").
 * Anything else is refused rather than guessed at.
 */
export function readVncPasswordFile(bytes: Uint8Array): VncPasswordFile {
  if (bytes.length !== VNC_PASSWORD_LENGTH && bytes.length !== 2 * VNC_PASSWORD_LENGTH) {
    throw new RfbError("AUTH_REQUIRED", `password file is ${bytes.length} bytes; vncpasswd writes 8 or 16`);
  }
  const plain = vncDes(VNC_PASSWD_FILE_KEY).decrypt(bytes);
  return {
    password: unpad(plain.subarray(0, VNC_PASSWORD_LENGTH)),
    viewOnlyPassword: plain.length > VNC_PASSWORD_LENGTH ? unpad(plain.subarray(VNC_PASSWORD_LENGTH)) : null,
  };
}

/** The bytes `vncpasswd -f` writes for password (and, if given, a view-only password): 8 or 16 bytes. */
export function writeVncPasswordFile(
  password: string | Uint8Array,
  viewOnlyPassword?: string | Uint8Array,
): Uint8Array {
  const plain = new Uint8Array(viewOnlyPassword === undefined ? 8 : 16);
  plain.set(vncPasswordBytes(password), 0);
  if (viewOnlyPassword !== undefined) plain.set(vncPasswordBytes(viewOnlyPassword), VNC_PASSWORD_LENGTH);
  return vncDes(VNC_PASSWD_FILE_KEY).encrypt(plain);
}
