// DES (FIPS 46-3), one 64-bit block at a time, for VNC Authentication and vncpasswd files only.
// DES is broken as a cipher; RFB's security type 2 and TigerVNC's password-file obfuscation still need it
// (rfbproto.rst "VNC Authentication"). Written from the FIPS 46-3 text: tables are 1-based bit numbers
// where bit 1 is the most significant bit of the first byte, exactly as printed in the standard. Clarity
// over speed: one handshake encrypts two blocks, so each bit is one array element and each table is applied
// as written. Do not use this for anything else.

import { RfbError } from "./errors.ts";

export const DES_BLOCK_LENGTH = 8;
export const DES_KEY_LENGTH = 8;

/** Initial permutation IP (FIPS 46-3 "Enciphering", first table). */
const IP = [
  58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4, 62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40,
  32, 24, 16, 8, 57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3, 61, 53, 45, 37, 29, 21, 13, 5,
  63, 55, 47, 39, 31, 23, 15, 7,
] as const;

/** Inverse initial permutation IP^-1 (FIPS 46-3 "Enciphering", second table). */
const IP_INV = [
  40, 8, 48, 16, 56, 24, 64, 32, 39, 7, 47, 15, 55, 23, 63, 31, 38, 6, 46, 14, 54, 22, 62, 30, 37, 5, 45, 13,
  53, 21, 61, 29, 36, 4, 44, 12, 52, 20, 60, 28, 35, 3, 43, 11, 51, 19, 59, 27, 34, 2, 42, 10, 50, 18, 58, 26,
  33, 1, 41, 9, 49, 17, 57, 25,
] as const;

/** E bit-selection table: 32 bits of R expanded to 48 (FIPS 46-3 "The Cipher Function f"). */
const E = [
  32, 1, 2, 3, 4, 5, 4, 5, 6, 7, 8, 9, 8, 9, 10, 11, 12, 13, 12, 13, 14, 15, 16, 17, 16, 17, 18, 19, 20, 21,
  20, 21, 22, 23, 24, 25, 24, 25, 26, 27, 28, 29, 28, 29, 30, 31, 32, 1,
] as const;

/** Permutation P applied to the 32 S-box output bits (FIPS 46-3 "The Cipher Function f"). */
const P = [
  16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10, 2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22,
  11, 4, 25,
] as const;

/** Permuted choice 1: the 56 key bits that matter, parity bits 8, 16, … 64 dropped (FIPS 46-3 Appendix 1). */
const PC1 = [
  57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18, 10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36,
  63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22, 14, 6, 61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4,
] as const;

/** Permuted choice 2: 48 of the 56 bits of C_n D_n form K_n (FIPS 46-3 Appendix 1). */
const PC2 = [
  14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2, 41, 52, 31, 37, 47,
  55, 30, 40, 51, 45, 33, 48, 44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32,
] as const;

/** Left shifts of C and D before rounds 1..16 (FIPS 46-3 Appendix 1, key schedule table). */
const SHIFTS = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1] as const;

/**
 * S-boxes S1..S8, each 4 rows of 16 (FIPS 46-3 "Primitive Functions S1, …, S8"). Row = bits 1 and 6 of the
 * 6-bit input, column = bits 2..5.
 */
export const S_BOXES: readonly (readonly number[])[] = [
  [
    14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7, 0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3,
    8, 4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0, 15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6,
    13,
  ],
  [
    15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10, 3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11,
    5, 0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15, 13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5,
    14, 9,
  ],
  [
    10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8, 13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15,
    1, 13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7, 1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2,
    12,
  ],
  [
    7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15, 13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14,
    9, 10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4, 3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2,
    14,
  ],
  [
    2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9, 14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8,
    6, 4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14, 11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4,
    5, 3,
  ],
  [
    12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11, 10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3,
    8, 9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6, 4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8,
    13,
  ],
  [
    4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1, 13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8,
    6, 1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2, 6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3,
    12,
  ],
  [
    13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7, 1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9,
    2, 7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8, 2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6,
    11,
  ],
];

type Bits = Uint8Array;

/** Bit n (1-based, bit 1 = MSB of byte 0), as FIPS 46-3 numbers them. */
function bytesToBits(bytes: Uint8Array, off: number): Bits {
  const bits = new Uint8Array(64);
  for (let i = 0; i < 64; i++) bits[i] = (bytes[off + (i >>> 3)]! >>> (7 - (i & 7))) & 1;
  return bits;
}

function bitsToBytes(bits: Bits, out: Uint8Array, off: number): void {
  for (let i = 0; i < 8; i++) {
    let v = 0;
    for (let j = 0; j < 8; j++) v = (v << 1) | bits[i * 8 + j]!;
    out[off + i] = v;
  }
}

/** out[i] = input bit table[i] (tables are 1-based, as printed). */
function permute(input: Bits, table: readonly number[]): Bits {
  const out = new Uint8Array(table.length);
  for (let i = 0; i < table.length; i++) out[i] = input[table[i]! - 1]!;
  return out;
}

function rotateLeft(half: Bits, n: number): Bits {
  const out = new Uint8Array(half.length);
  for (let i = 0; i < half.length; i++) out[i] = half[(i + n) % half.length]!;
  return out;
}

/** K_1..K_16, 48 bits each (FIPS 46-3 Appendix 1 "Key Schedule Calculation"). Parity bits are ignored. */
function keySchedule(key: Uint8Array): Bits[] {
  const cd = permute(bytesToBits(key, 0), PC1);
  let c = cd.subarray(0, 28) as Bits;
  let d = cd.subarray(28, 56) as Bits;
  const subkeys: Bits[] = [];
  for (const shift of SHIFTS) {
    c = rotateLeft(c, shift);
    d = rotateLeft(d, shift);
    const joined = new Uint8Array(56);
    joined.set(c, 0);
    joined.set(d, 28);
    subkeys.push(permute(joined, PC2));
  }
  return subkeys;
}

/** The cipher function f(R, K) (FIPS 46-3 "The Cipher Function f"): expand, mix in the key, S-boxes, P. */
function feistel(r: Bits, k: Bits): Bits {
  const x = permute(r, E);
  for (let i = 0; i < 48; i++) x[i] = x[i]! ^ k[i]!;
  const s = new Uint8Array(32);
  for (let box = 0; box < 8; box++) {
    const b = x.subarray(box * 6, box * 6 + 6);
    const row = (b[0]! << 1) | b[5]!;
    const col = (b[1]! << 3) | (b[2]! << 2) | (b[3]! << 1) | b[4]!;
    const v = S_BOXES[box]![row * 16 + col]!;
    for (let j = 0; j < 4; j++) s[box * 4 + j] = (v >>> (3 - j)) & 1;
  }
  return permute(s, P);
}

/** IP, 16 rounds with the given subkey order, swap, IP^-1 (FIPS 46-3 "Enciphering" / "Deciphering"). */
function crypt(
  subkeys: readonly Bits[],
  input: Uint8Array,
  inOff: number,
  out: Uint8Array,
  outOff: number,
): void {
  const ip = permute(bytesToBits(input, inOff), IP);
  let l = ip.subarray(0, 32) as Bits;
  let r = ip.subarray(32, 64) as Bits;
  for (const k of subkeys) {
    const f = feistel(r, k);
    const next = new Uint8Array(32);
    for (let i = 0; i < 32; i++) next[i] = l[i]! ^ f[i]!;
    l = r;
    r = next;
  }
  // The preoutput block is R16 L16: the last round's halves are not swapped back.
  const preoutput = new Uint8Array(64);
  preoutput.set(r, 0);
  preoutput.set(l, 32);
  bitsToBytes(permute(preoutput, IP_INV), out, outOff);
}

/** A DES key with its schedule computed once; encrypts or decrypts whole 8-byte blocks (ECB). */
export class DesCipher {
  readonly #encryptKeys: readonly Bits[];
  readonly #decryptKeys: readonly Bits[];

  /** key: 8 bytes; the low bit of each byte is the parity bit and is ignored, as in FIPS 46-3. */
  constructor(key: Uint8Array) {
    if (key.length !== DES_KEY_LENGTH)
      throw new RfbError("INTERNAL", `DES key is ${key.length} bytes, not 8`);
    this.#encryptKeys = keySchedule(key);
    // Deciphering uses the same schedule in reverse order (FIPS 46-3 "Deciphering").
    this.#decryptKeys = [...this.#encryptKeys].reverse();
  }

  /** ECB-encrypts data (a multiple of 8 bytes) into a new array. */
  encrypt(data: Uint8Array): Uint8Array {
    return this.#run(this.#encryptKeys, data);
  }

  /** ECB-decrypts data (a multiple of 8 bytes) into a new array. */
  decrypt(data: Uint8Array): Uint8Array {
    return this.#run(this.#decryptKeys, data);
  }

  #run(keys: readonly Bits[], data: Uint8Array): Uint8Array {
    if (data.length % DES_BLOCK_LENGTH !== 0) {
      throw new RfbError("INTERNAL", `DES input is ${data.length} bytes, not a multiple of 8`);
    }
    const out = new Uint8Array(data.length);
    for (let off = 0; off < data.length; off += DES_BLOCK_LENGTH) crypt(keys, data, off, out, off);
    return out;
  }
}

/** DES-ECB encryption of data (a multiple of 8 bytes) with an 8-byte key. */
export function desEcbEncrypt(key: Uint8Array, data: Uint8Array): Uint8Array {
  return new DesCipher(key).encrypt(data);
}

/** DES-ECB decryption of data (a multiple of 8 bytes) with an 8-byte key. */
export function desEcbDecrypt(key: Uint8Array, data: Uint8Array): Uint8Array {
  return new DesCipher(key).decrypt(data);
}
