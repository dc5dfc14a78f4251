// The agent's identity: P-256 keys from WebCrypto, the state file (0700 directory, 0600 file, round trip,
// refusals), challenge proofs over protocol.ts proofPayload, and the direct-mode certificate for the key.

import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type AgentIdentity,
  IdentityError,
  generateDeviceKeys,
  identityPath,
  importDeviceKeys,
  loadIdentity,
  saveIdentity,
  selfSignedCertFor,
  signProof,
  spkiSha256,
  verifyProof,
} from "../../relay/agent/identity.ts";
import { fromBase64url, proofPayload } from "../../relay/gateway/protocol.ts";
import { type SelfSigned, parseCertificate, pemDecode, sha256Hex } from "../../relay/util/x509.ts";

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "shadowrelay-identity-"));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function identity(deviceId = "dev-1"): Promise<AgentIdentity> {
  return {
    ...(await generateDeviceKeys()),
    deviceId,
    relayUrl: "https://relay.example:8443",
    relayCertSha256: "ab".repeat(32),
  };
}

const codeOf = async (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => "no error",
    (e: unknown) => (e instanceof IdentityError ? e.code : `not an IdentityError: ${e}`),
  );

describe("keys and proofs", () => {
  test("a proof verifies for its nonce and device, and for nothing else", async () => {
    const id = await identity();
    const nonce = "bm9uY2Utb2YtMzItYnl0ZXMtZnJvbS10aGUtcmVsYXk";
    const sig = await signProof(id, nonce, id.deviceId);
    expect(fromBase64url(sig)).toHaveLength(64); // IEEE P1363 r||s, base64url without padding
    expect(sig).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(await verifyProof(id.spki, nonce, id.deviceId, sig)).toBe(true);
    expect(await verifyProof(id.spki, `${nonce}x`, id.deviceId, sig)).toBe(false);
    expect(await verifyProof(id.spki, nonce, "dev-2", sig)).toBe(false);
    // Domain separation: an agent proof is not a relay proof.
    expect(await verifyProof(id.spki, nonce, id.deviceId, sig, "relay")).toBe(false);
    const other = await identity();
    expect(await verifyProof(other.spki, nonce, id.deviceId, sig)).toBe(false);
    // Malformed signatures and keys are false, not exceptions.
    expect(await verifyProof(id.spki, nonce, id.deviceId, sig.slice(0, -2))).toBe(false);
    expect(await verifyProof(id.spki, nonce, id.deviceId, `${sig}==`)).toBe(false);
    expect(await verifyProof(new Uint8Array(10), nonce, id.deviceId, sig)).toBe(false);
  });

  test("the signature is over exactly proofPayload('agent', nonce, deviceId)", async () => {
    const id = await identity("dev-9");
    const sig = fromBase64url(await signProof(id, "N", "dev-9"));
    const ok = await crypto.subtle.verify(
      { name: "ECDSA", hash: "SHA-256" },
      id.publicKey,
      new Uint8Array(sig),
      new Uint8Array(proofPayload("agent", "N", "dev-9")),
    );
    expect(ok).toBe(true);
  });

  test("the private key in memory is not extractable; the pin is SHA-256 of the SPKI", async () => {
    const id = await identity();
    expect(id.privateKey.extractable).toBe(false);
    await expect(crypto.subtle.exportKey("pkcs8", id.privateKey)).rejects.toThrow();
    expect(spkiSha256(id)).toBe(sha256Hex(id.spki));
    expect(spkiSha256(id)).toMatch(/^[0-9a-f]{64}$/);
  });

  test("a private key with someone else's public key is refused", async () => {
    const a = await generateDeviceKeys();
    const b = await generateDeviceKeys();
    expect(await codeOf(importDeviceKeys(a.pkcs8, b.spki))).toBe("KEY_MISMATCH");
    expect(await codeOf(importDeviceKeys(new Uint8Array([1, 2, 3]), a.spki))).toBe("CORRUPT");
  });
});

describe("the state file", () => {
  test("round trip; directory 0700, file 0600, the JSON fields the brief names", async () => {
    const dir = join(tempDir(), "state", "nested");
    const id = await identity();
    const path = saveIdentity(dir, id);
    expect(path).toBe(identityPath(dir));
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const json = JSON.parse(readFileSync(path, "utf8"));
    expect(Object.keys(json).sort()).toEqual([
      "deviceId",
      "privateKeyPkcs8",
      "relayCertSha256",
      "relayUrl",
      "spki",
    ]);
    expect(Buffer.from(json.spki, "base64")).toEqual(Buffer.from(id.spki));

    const back = await loadIdentity(dir);
    expect(back).not.toBeNull();
    expect([back!.deviceId, back!.relayUrl, back!.relayCertSha256]).toEqual([
      id.deviceId,
      id.relayUrl,
      id.relayCertSha256,
    ]);
    expect(back!.spki).toEqual(id.spki);
    // The loaded key signs proofs the saved public key verifies.
    const sig = await signProof(back!, "n", id.deviceId);
    expect(await verifyProof(id.spki, "n", id.deviceId, sig)).toBe(true);
  });

  test("no file: null (not enrolled yet)", async () => {
    expect(await loadIdentity(tempDir())).toBeNull();
  });

  test("a file other users can read is refused, as ssh refuses a loose private key", async () => {
    const dir = tempDir();
    const path = saveIdentity(dir, await identity());
    chmodSync(path, 0o644);
    expect(await codeOf(loadIdentity(dir))).toBe("PERMISSIONS");
  });

  test("malformed files are CORRUPT", async () => {
    const good = await identity();
    const dir = tempDir();
    const path = saveIdentity(dir, good);
    const base = JSON.parse(readFileSync(path, "utf8"));
    const other = await generateDeviceKeys();
    const variants: [string, string][] = [
      ["not JSON", "{"],
      ["null", "null"],
      ["no deviceId", JSON.stringify({ ...base, deviceId: "" })],
      ["an http relay URL", JSON.stringify({ ...base, relayUrl: "http://relay" })],
      ["a short pin", JSON.stringify({ ...base, relayCertSha256: "abcd" })],
      ["an upper-case pin", JSON.stringify({ ...base, relayCertSha256: "AB".repeat(32) })],
      ["keys not base64", JSON.stringify({ ...base, spki: "%%%" })],
      [
        "a key of the wrong kind",
        JSON.stringify({ ...base, privateKeyPkcs8: Buffer.from("junk").toString("base64") }),
      ],
    ];
    for (const [label, text] of variants) {
      writeFileSync(path, text, { mode: 0o600 });
      expect({ label, code: await codeOf(loadIdentity(dir)) }).toEqual({ label, code: "CORRUPT" });
    }
    writeFileSync(path, JSON.stringify({ ...base, spki: Buffer.from(other.spki).toString("base64") }), {
      mode: 0o600,
    });
    expect(await codeOf(loadIdentity(dir))).toBe("KEY_MISMATCH");
  });

  test("an identity with a bad field is not written", async () => {
    const dir = tempDir();
    const bad = { ...(await identity()), relayCertSha256: "nope" };
    expect(() => saveIdentity(dir, bad)).toThrow(IdentityError);
  });
});

describe("the direct-mode certificate", () => {
  test("never a certificate for another key: it certifies the device key or throws CERT_KEY_UNSUPPORTED", async () => {
    const id = await identity();
    let r: SelfSigned;
    try {
      r = await selfSignedCertFor(id, { dnsNames: ["device.local"], ipAddresses: ["127.0.0.1"] });
    } catch (e) {
      // x509.ts does not take a given key yet (see the report): refusing is the only acceptable answer.
      expect(e).toBeInstanceOf(IdentityError);
      expect((e as IdentityError).code).toBe("CERT_KEY_UNSUPPORTED");
      console.warn("!!! relay/util/x509.ts cannot certify a given key yet: selfSignedCertFor is unavailable");
      return;
    }
    const cert = parseCertificate(pemDecode(r.certPem, "CERTIFICATE"));
    expect(cert.spki).toEqual(id.spki);
    expect(r.spkiSha256Hex).toBe(spkiSha256(id));
    // The key PEM is the device key itself.
    expect(pemDecode(r.keyPem, "PRIVATE KEY")).toEqual(id.pkcs8);
  });
});
