// Tests for relay/control/devices.ts: enrollment tokens (one-time, TTL, racing), the pinned key, and the
// agent's key proof — with real WebCrypto key pairs, as the agent makes them. Time is injected, never slept.

import type { Database } from "bun:sqlite";
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AuditFn } from "../../relay/control/audit.ts";
import { openDatabase } from "../../relay/control/db.ts";
import {
  DEVICE_DEFAULTS,
  DeviceRegistry,
  isDeviceAddress,
  ProofError,
  type ProofRefusal,
  spkiSha256Hex,
} from "../../relay/control/devices.ts";
import { ControlError } from "../../relay/control/errors.ts";
import { proofPayload, toBase64url } from "../../relay/gateway/protocol.ts";

const T0 = 1_700_000_000_000;

interface AgentKey {
  keys: CryptoKeyPair;
  spki: Uint8Array;
}

async function agentKey(): Promise<AgentKey> {
  const keys = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  return { keys, spki: new Uint8Array(await crypto.subtle.exportKey("spki", keys.publicKey)) };
}

async function sign(key: AgentKey, bytes: Uint8Array): Promise<string> {
  const sig = await crypto.subtle.sign(
    { name: "ECDSA", hash: "SHA-256" },
    key.keys.privateKey,
    bytes as Uint8Array<ArrayBuffer>,
  );
  return toBase64url(new Uint8Array(sig));
}

/** What the agent sends in its hello. */
const proveAs = (key: AgentKey, nonce: string, deviceId: string): Promise<string> =>
  sign(key, proofPayload("agent", nonce, deviceId));

const sha256Hex = (bytes: Uint8Array | string): string =>
  new Bun.CryptoHasher("sha256").update(bytes).digest("hex");

interface AuditRecord {
  kind: string;
  actor: string;
  payload: Record<string, unknown>;
}

function recorder(): { audit: AuditFn; records: AuditRecord[] } {
  const records: AuditRecord[] = [];
  return { records, audit: (kind, actor, payload) => records.push({ kind, actor, payload: payload ?? {} }) };
}

/** The ControlError a promise or function rejects with (fails the test if it resolves). */
async function refusal(run: () => unknown): Promise<ControlError> {
  try {
    await run();
  } catch (e) {
    expect(e).toBeInstanceOf(ControlError);
    return e as ControlError;
  }
  throw new Error("expected a refusal, got success");
}

let db: Database;
let registry: DeviceRegistry;

beforeEach(() => {
  db = openDatabase(":memory:");
  registry = new DeviceRegistry(db);
});
afterEach(() => db.close());

describe("enrollment", () => {
  test("a token is 32 random bytes, base64url, stored only as its SHA-256", () => {
    const e = registry.createEnrollment({ name: "kiosk-1", createdBy: "admin" }, T0);
    expect(e.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(e.token, "base64url").byteLength).toBe(32);
    expect(e.expiresAt).toBe(T0 + DEVICE_DEFAULTS.enrollmentTtlSeconds * 1000);
    expect(e.expiresAt).toBe(T0 + 15 * 60 * 1000);
    expect(e.id).toBe(sha256Hex(e.token).slice(0, 16));
    const rows = db.query("SELECT * FROM enrollment_tokens").all() as Record<string, unknown>[];
    expect(rows).toHaveLength(1);
    expect(rows[0]!.token_hash).toBe(sha256Hex(e.token));
    expect(JSON.stringify(rows)).not.toContain(e.token);
    // Two tokens never collide.
    expect(registry.createEnrollment({ name: "kiosk-1", createdBy: "admin" }, T0).token).not.toBe(e.token);
  });

  test("happy path: the device gets the pin of its WebCrypto key and the token's name and policy", async () => {
    const key = await agentKey();
    const e = registry.createEnrollment({ name: "lab-3", consent: "ask", createdBy: "alice" }, T0);
    const device = await registry.enroll(e.token, { spkiDer: key.spki }, T0 + 1000);
    expect(device.id).toMatch(/^[0-9a-f]{32}$/);
    expect(device).toEqual({
      id: device.id,
      name: "lab-3",
      spkiSha256: sha256Hex(key.spki),
      mode: "gateway",
      consent: "ask",
      createdBy: "alice",
      createdAt: T0 + 1000,
    });
    expect(spkiSha256Hex(key.spki)).toBe(sha256Hex(key.spki));
    expect(registry.get(device.id)).toEqual(device);
    expect(registry.list()).toEqual([device]);
  });

  test("direct mode: an address makes a direct device; the agent may name itself", async () => {
    const key = await agentKey();
    const e = registry.createEnrollment({ name: "from-admin", createdBy: "admin" }, T0);
    const device = await registry.enroll(
      e.token,
      { spkiDer: key.spki, name: "from-agent", address: "10.0.0.7:5901" },
      T0,
    );
    expect(device.mode).toBe("direct");
    expect(device.address).toBe("10.0.0.7:5901");
    expect(device.name).toBe("from-agent");
    expect(device.consent).toBe("default");
  });

  test("device addresses: host:port only", () => {
    for (const ok of ["10.0.0.7:5901", "kiosk.example.org:1", "[::1]:65535", "[fe80::1]:443", "h:80"]) {
      expect(isDeviceAddress(ok)).toBe(true);
    }
    for (const bad of [
      "10.0.0.7",
      "10.0.0.7:0",
      "10.0.0.7:65536",
      "10.0.0.7:05901",
      "::1:5901",
      "[10.0.0.7]:5901",
      "*.example.org:5901",
      "exa mple:5901",
      "host:5901/path",
      ":5901",
      "[::1]",
      "",
    ]) {
      expect(isDeviceAddress(bad)).toBe(false);
    }
  });

  test("a reused token is refused and makes no second device", async () => {
    const e = registry.createEnrollment({ name: "d", createdBy: "admin" }, T0);
    await registry.enroll(e.token, { spkiDer: (await agentKey()).spki }, T0);
    const again = await agentKey();
    const err = await refusal(() => registry.enroll(e.token, { spkiDer: again.spki }, T0));
    expect(err.code).toBe("GONE");
    expect(err.message).toContain("already used");
    expect(registry.list()).toHaveLength(1);
  });

  test("an expired token is refused, at the very millisecond it expires", async () => {
    const key = await agentKey();
    const e = registry.createEnrollment({ name: "d", ttlSeconds: 30, createdBy: "admin" }, T0);
    expect(e.expiresAt).toBe(T0 + 30_000);
    const err = await refusal(() => registry.enroll(e.token, { spkiDer: key.spki }, T0 + 30_000));
    expect(err.code).toBe("GONE");
    expect(err.message).toContain("expired");
    // One millisecond earlier it still works (the refusal above did not spend it).
    const device = await registry.enroll(e.token, { spkiDer: key.spki }, T0 + 29_999);
    expect(device.name).toBe("d");
  });

  test("unknown and malformed tokens are refused", async () => {
    const key = await agentKey();
    registry.createEnrollment({ name: "d", createdBy: "admin" }, T0);
    for (const token of [
      toBase64url(new Uint8Array(32)),
      "short",
      "",
      `${"A".repeat(42)}B`,
      "A".repeat(44),
    ]) {
      const err = await refusal(() => registry.enroll(token, { spkiDer: key.spki }, T0));
      expect(err.code).toBe("UNAUTHORIZED");
    }
    expect(registry.list()).toHaveLength(0);
  });

  test("keys that are not canonical EC P-256 SPKIs are refused, and the token stays usable", async () => {
    const e = registry.createEnrollment({ name: "d", createdBy: "admin" }, T0);
    const p384 = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-384" }, true, [
      "sign",
      "verify",
    ])) as CryptoKeyPair;
    const rsa = (await crypto.subtle.generateKey(
      {
        name: "RSASSA-PKCS1-v1_5",
        modulusLength: 2048,
        publicExponent: Uint8Array.of(1, 0, 1),
        hash: "SHA-256",
      },
      true,
      ["sign", "verify"],
    )) as CryptoKeyPair;
    const ed = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
      "sign",
      "verify",
    ])) as CryptoKeyPair;
    const good = await agentKey();
    const offCurve = good.spki.slice();
    offCurve[40]! ^= 0x01; // a bit of the point's x coordinate: the point leaves the curve
    const spkis: Uint8Array[] = [
      new Uint8Array(await crypto.subtle.exportKey("spki", p384.publicKey)),
      new Uint8Array(await crypto.subtle.exportKey("spki", rsa.publicKey)),
      new Uint8Array(await crypto.subtle.exportKey("spki", ed.publicKey)),
      offCurve,
      Uint8Array.of(...good.spki, 0), // trailing byte
      good.spki.subarray(0, 90), // truncated
      new Uint8Array(0),
      new Uint8Array(5000), // over maxSpkiBytes: not even parsed
    ];
    for (const spkiDer of spkis) {
      const err = await refusal(() => registry.enroll(e.token, { spkiDer }, T0));
      expect(err.code).toBe("BAD_REQUEST");
    }
    expect(registry.list()).toHaveLength(0);
    expect((await registry.enroll(e.token, { spkiDer: good.spki }, T0)).spkiSha256).toBe(
      sha256Hex(good.spki),
    );
  });

  test("bad names and addresses are refused before the token is spent", async () => {
    const key = await agentKey();
    const e = registry.createEnrollment({ name: "d", createdBy: "admin" }, T0);
    for (const request of [
      { name: "" },
      { name: "   " },
      { name: "bell\u0007" },
      { name: "x".repeat(DEVICE_DEFAULTS.maxNameLength + 1) },
      { address: "nowhere" },
    ]) {
      const err = await refusal(() => registry.enroll(e.token, { spkiDer: key.spki, ...request }, T0));
      expect(err.code).toBe("BAD_REQUEST");
    }
    const device = await registry.enroll(
      e.token,
      { spkiDer: key.spki, name: "x".repeat(DEVICE_DEFAULTS.maxNameLength) },
      T0,
    );
    expect(device.name).toHaveLength(DEVICE_DEFAULTS.maxNameLength);
  });

  test("createEnrollment checks its TTL, name and consent", async () => {
    for (const ttlSeconds of [0, -1, 1.5, DEVICE_DEFAULTS.maxEnrollmentTtlSeconds + 1, Number.NaN]) {
      const err = await refusal(() =>
        registry.createEnrollment({ name: "d", ttlSeconds, createdBy: "a" }, T0),
      );
      expect(err.code).toBe("BAD_REQUEST");
    }
    expect((await refusal(() => registry.createEnrollment({ name: "", createdBy: "a" }))).code).toBe(
      "BAD_REQUEST",
    );
    const consent = "always" as never;
    expect(
      (await refusal(() => registry.createEnrollment({ name: "d", consent, createdBy: "a" }))).code,
    ).toBe("BAD_REQUEST");
    const max = registry.createEnrollment(
      { name: "d", ttlSeconds: DEVICE_DEFAULTS.maxEnrollmentTtlSeconds, createdBy: "a" },
      T0,
    );
    expect(max.expiresAt).toBe(T0 + DEVICE_DEFAULTS.maxEnrollmentTtlSeconds * 1000);
  });

  test("two enrollments racing with one token: exactly one wins", async () => {
    const e = registry.createEnrollment({ name: "d", createdBy: "admin" }, T0);
    const keys = await Promise.all([agentKey(), agentKey(), agentKey(), agentKey()]);
    const results = await Promise.allSettled(
      keys.map((k) => registry.enroll(e.token, { spkiDer: k.spki }, T0)),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const losers = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(losers).toHaveLength(3);
    for (const l of losers) expect((l.reason as ControlError).code).toBe("GONE");
    expect(registry.list()).toHaveLength(1);
  });

  test("two relay connections on one database file: exactly one enrollment wins", async () => {
    const dir = mkdtempSync(join(tmpdir(), "shadowrelay-devices-"));
    const a = openDatabase(dir);
    const b = openDatabase(dir);
    try {
      const ra = new DeviceRegistry(a);
      const rb = new DeviceRegistry(b);
      const e = ra.createEnrollment({ name: "d", createdBy: "admin" }, T0);
      const [ka, kb] = await Promise.all([agentKey(), agentKey()]);
      const results = await Promise.allSettled([
        ra.enroll(e.token, { spkiDer: ka.spki }, T0),
        rb.enroll(e.token, { spkiDer: kb.spki }, T0),
      ]);
      expect(results.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
      expect(ra.list()).toHaveLength(1);
      expect(rb.list()).toEqual(ra.list());
    } finally {
      a.close();
      b.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("one key cannot be pinned to two devices; the second token is not burnt", async () => {
    const key = await agentKey();
    const first = registry.createEnrollment({ name: "one", createdBy: "admin" }, T0);
    const second = registry.createEnrollment({ name: "two", createdBy: "admin" }, T0);
    await registry.enroll(first.token, { spkiDer: key.spki }, T0);
    const err = await refusal(() => registry.enroll(second.token, { spkiDer: key.spki }, T0));
    expect(err.code).toBe("CONFLICT");
    const other = await agentKey();
    expect((await registry.enroll(second.token, { spkiDer: other.spki }, T0)).name).toBe("two");
  });

  test("pruneEnrollments drops spent and expired tokens after the retention time", async () => {
    const spent = registry.createEnrollment({ name: "a", createdBy: "admin" }, T0);
    registry.createEnrollment({ name: "b", ttlSeconds: 60, createdBy: "admin" }, T0);
    await registry.enroll(spent.token, { spkiDer: (await agentKey()).spki }, T0);
    const retention = DEVICE_DEFAULTS.enrollmentRetentionSeconds * 1000;
    expect(registry.pruneEnrollments(T0 + retention)).toBe(0);
    expect(registry.pruneEnrollments(T0 + 60_000 + retention + 1)).toBe(2);
    expect(db.query("SELECT count(*) AS n FROM enrollment_tokens").get()).toEqual({ n: 0 });
  });
});

describe("devices", () => {
  test("rename, last seen, delete; unknown ids are NOT_FOUND", async () => {
    const e = registry.createEnrollment({ name: "old", createdBy: "admin" }, T0);
    const device = await registry.enroll(e.token, { spkiDer: (await agentKey()).spki }, T0);
    expect(registry.rename(device.id, "new").name).toBe("new");
    expect((await refusal(() => registry.rename(device.id, "\n"))).code).toBe("BAD_REQUEST");
    registry.setLastSeen(device.id, T0 + 5000);
    expect(registry.get(device.id)?.lastSeenAt).toBe(T0 + 5000);
    registry.delete(device.id);
    expect(registry.get(device.id)).toBeUndefined();
    expect(registry.list()).toEqual([]);
    expect((await refusal(() => registry.delete(device.id))).code).toBe("NOT_FOUND");
    expect((await refusal(() => registry.rename(device.id, "x"))).code).toBe("NOT_FOUND");
  });
});

describe("key proof", () => {
  let key: AgentKey;
  let deviceId: string;
  let pin: string;

  beforeEach(async () => {
    key = await agentKey();
    const e = registry.createEnrollment({ name: "d", createdBy: "admin" }, T0);
    const device = await registry.enroll(e.token, { spkiDer: key.spki }, T0);
    deviceId = device.id;
    pin = device.spkiSha256;
  });

  async function refusedProof(
    run: () => Promise<unknown>,
    reason: ProofRefusal,
    records: AuditRecord[],
  ): Promise<void> {
    const before = records.length;
    const err = await refusal(run);
    expect(err).toBeInstanceOf(ProofError);
    expect((err as ProofError).reason).toBe(reason);
    expect(err.code).toBe("UNAUTHORIZED");
    expect(records).toHaveLength(before + 1);
    const record = records.at(-1)!;
    expect(record.kind).toBe("device.refused");
    expect(record.payload.reason).toBe(reason);
  }

  test("a challenge is 32 random bytes, base64url", () => {
    const nonce = registry.createChallenge(T0);
    expect(nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(registry.createChallenge(T0)).not.toBe(nonce);
    expect(registry.outstandingChallenges).toBe(2);
  });

  test("the pinned key's signature over the challenge is accepted, and nothing is audited", async () => {
    const { audit, records } = recorder();
    const nonce = registry.createChallenge(T0);
    const device = await registry.verifyProof(
      deviceId,
      nonce,
      await proveAs(key, nonce, deviceId),
      audit,
      T0,
    );
    expect(device.id).toBe(deviceId);
    expect(device.spkiSha256).toBe(pin);
    expect(records).toEqual([]);
    expect(registry.outstandingChallenges).toBe(0);
  });

  test("another key is refused and audited with the device id, the reason and the pin", async () => {
    const { audit, records } = recorder();
    const impostor = await agentKey();
    const nonce = registry.createChallenge(T0);
    const signature = await proveAs(impostor, nonce, deviceId);
    await refusedProof(
      () => registry.verifyProof(deviceId, nonce, signature, audit, T0),
      "bad-signature",
      records,
    );
    expect(records[0]).toEqual({
      kind: "device.refused",
      actor: deviceId,
      payload: { deviceId, reason: "bad-signature", spkiSha256: pin },
    });
  });

  test("an unknown device is refused and audited", async () => {
    const { audit, records } = recorder();
    const nonce = registry.createChallenge(T0);
    const ghost = "0".repeat(32);
    await refusedProof(
      async () => registry.verifyProof(ghost, nonce, await proveAs(key, nonce, ghost), audit, T0),
      "unknown-device",
      records,
    );
    expect(records[0]!.payload.deviceId).toBe(ghost);
  });

  test("a replayed nonce is refused, even with a valid signature", async () => {
    const { audit, records } = recorder();
    const nonce = registry.createChallenge(T0);
    const signature = await proveAs(key, nonce, deviceId);
    await registry.verifyProof(deviceId, nonce, signature, audit, T0);
    await refusedProof(
      () => registry.verifyProof(deviceId, nonce, signature, audit, T0 + 1),
      "unknown-challenge",
      records,
    );
  });

  test("a nonce the relay never issued is refused", async () => {
    const { audit, records } = recorder();
    const nonce = toBase64url(crypto.getRandomValues(new Uint8Array(32)));
    const signature = await proveAs(key, nonce, deviceId);
    await refusedProof(
      () => registry.verifyProof(deviceId, nonce, signature, audit, T0),
      "unknown-challenge",
      records,
    );
  });

  test("an expired nonce is refused at 60 s, and is consumed by the attempt", async () => {
    const { audit, records } = recorder();
    const early = registry.createChallenge(T0);
    await registry.verifyProof(deviceId, early, await proveAs(key, early, deviceId), audit, T0 + 59_999);
    const late = registry.createChallenge(T0);
    const signature = await proveAs(key, late, deviceId);
    await refusedProof(
      () => registry.verifyProof(deviceId, late, signature, audit, T0 + 60_000),
      "expired-challenge",
      records,
    );
    // Consumed: going back in time does not bring it back.
    await refusedProof(
      () => registry.verifyProof(deviceId, late, signature, audit, T0),
      "unknown-challenge",
      records,
    );
  });

  test("a signature over anything but proofPayload('agent', nonce, deviceId) is refused", async () => {
    const { audit, records } = recorder();
    const other = registry.createChallenge(T0);
    const payloads = (nonce: string): Uint8Array[] => [
      proofPayload("relay", nonce, deviceId), // the relay's purpose, not the agent's
      proofPayload("agent", other, deviceId), // another nonce
      proofPayload("agent", nonce, "f".repeat(32)), // another device
      new TextEncoder().encode(nonce), // the bare nonce
    ];
    for (let i = 0; i < 4; i++) {
      const nonce = registry.createChallenge(T0);
      const signature = await sign(key, payloads(nonce)[i]!);
      await refusedProof(
        () => registry.verifyProof(deviceId, nonce, signature, audit, T0),
        "bad-signature",
        records,
      );
    }
  });

  test("malformed signatures and ids are refused, audited, and still consume the nonce", async () => {
    const { audit, records } = recorder();
    const raw = Buffer.from(await proveAs(key, "x", deviceId), "base64url");
    const bad = [
      "",
      toBase64url(raw.subarray(0, 63)), // 63 bytes
      toBase64url(Uint8Array.of(...raw, 0)), // 65 bytes
      `${toBase64url(raw)}==`, // padded
      Buffer.from(raw).toString("base64"), // standard alphabet, padded
      `${toBase64url(raw).slice(0, 85)}!`,
    ];
    for (const signature of bad) {
      const nonce = registry.createChallenge(T0);
      await refusedProof(
        () => registry.verifyProof(deviceId, nonce, signature, audit, T0),
        "malformed",
        records,
      );
      expect(registry.outstandingChallenges).toBe(0);
    }
    const nonce = registry.createChallenge(T0);
    const longId = "Z".repeat(5000);
    await refusedProof(() => registry.verifyProof(longId, nonce, "", audit, T0), "malformed", records);
    // A peer's id is bounded before it reaches the audit log.
    expect(String(records.at(-1)!.payload.deviceId).length).toBeLessThanOrEqual(64);
  });

  test("a stored key that no longer matches its pin verifies nothing", async () => {
    const { audit, records } = recorder();
    const swapped = await agentKey();
    db.query("UPDATE devices SET spki = ? WHERE id = ?").run(swapped.spki, deviceId);
    const nonce = registry.createChallenge(T0);
    const signature = await proveAs(swapped, nonce, deviceId);
    await refusedProof(
      () => registry.verifyProof(deviceId, nonce, signature, audit, T0),
      "bad-signature",
      records,
    );
  });

  test("outstanding challenges are bounded: expired ones go first, then the oldest", async () => {
    const small = new DeviceRegistry(db, { maxOutstandingChallenges: 3 });
    const { audit, records } = recorder();
    const first = small.createChallenge(T0);
    small.createChallenge(T0 + 1);
    small.createChallenge(T0 + 2);
    const fourth = small.createChallenge(T0 + 3);
    expect(small.outstandingChallenges).toBe(3);
    await refusedProof(
      async () => small.verifyProof(deviceId, first, await proveAs(key, first, deviceId), audit, T0 + 3),
      "unknown-challenge",
      records,
    );
    // All three remaining expire; a new challenge sweeps them out.
    small.createChallenge(T0 + 70_000);
    expect(small.outstandingChallenges).toBe(1);
    await refusedProof(
      async () =>
        small.verifyProof(deviceId, fourth, await proveAs(key, fourth, deviceId), audit, T0 + 70_000),
      "unknown-challenge",
      records,
    );
  });
});
