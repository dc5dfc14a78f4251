// Tests for relay/control/users.ts: scrypt hashes (RFC 7914 vector, stored format, round trip, wrong
// password), bearer tokens (expiry by injected `now`, logout, revocation), disabled users, the lockout
// timeline per user name and per address (5 failures → 10 s, then 20 s; clock injected, no sleeping),
// unknown users going through the same scrypt (counted through an injected hasher, not timed),
// parallel guesses, the hash queue bound, ensureAdmin, and failed logins recorded in a real audit chain.
// Most tests use N = 2^10 to stay fast; one runs the default parameters.

import type { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { scrypt } from "@noble/hashes/scrypt.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { AuditLog, type AuditPayload } from "../../relay/control/audit.ts";
import { openDatabase } from "../../relay/control/db.ts";
import { ControlError } from "../../relay/control/errors.ts";
import {
  addressKey,
  encodePasswordHash,
  ensureAdmin,
  isValidUserName,
  type PasswordHasher,
  parsePasswordHash,
  type ScryptParams,
  scryptHasher,
  USERS_DEFAULTS,
  Users,
  type UsersOptions,
} from "../../relay/control/users.ts";

const FAST: ScryptParams = { N: 2 ** 10, r: 8, p: 1, dkLen: 32 };
const T0 = 1_700_000_000_000;
const PW = "correct horse battery";
const IP = "192.0.2.1";

interface Rig {
  db: Database;
  users: Users;
  audits: { kind: string; actor: string; payload: AuditPayload }[];
  /** Every hasher call's parameters, in order. */
  hashCalls: ScryptParams[];
}

function rig(options: Partial<UsersOptions> = {}, hasher: PasswordHasher = scryptHasher): Rig {
  const db = openDatabase(":memory:");
  const audits: Rig["audits"] = [];
  const hashCalls: ScryptParams[] = [];
  const users = new Users(
    db,
    { scrypt: FAST, ...options },
    {
      audit: (kind, actor, payload = {}) => audits.push({ kind, actor, payload }),
      hasher: (password, salt, params) => {
        hashCalls.push(params);
        return hasher(password, salt, params);
      },
      now: () => T0,
    },
  );
  return { db, users, audits, hashCalls };
}

/** The ControlError a promise rejects with (fails the test if it resolves or throws something else). */
async function rejection(p: Promise<unknown>): Promise<ControlError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ControlError) return e;
    throw e;
  }
  throw new Error("expected a ControlError, but the call succeeded");
}

describe("password hashing", () => {
  test("the hasher is scrypt: RFC 7914 §12 vector (N=1024, r=8, p=16)", async () => {
    const enc = new TextEncoder();
    const out = await scryptHasher(enc.encode("password"), enc.encode("NaCl"), {
      N: 1024,
      r: 8,
      p: 16,
      dkLen: 64,
    });
    expect(bytesToHex(out)).toBe(
      "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640",
    );
  });

  test("default parameters: stored as $scrypt$ln=14,r=8,p=1 with a 16-byte salt; round trip and a wrong password", async () => {
    const db = openDatabase(":memory:");
    const users = new Users(db);
    expect(users.options.scrypt).toEqual({ N: 16384, r: 8, p: 1, dkLen: 32 });
    await users.createUser("alice", "operator", PW);
    const stored = db.query<{ password: string }, []>("SELECT password FROM users").get()!.password;
    expect(stored).toMatch(/^\$scrypt\$ln=14,r=8,p=1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    const parsed = parsePasswordHash(stored)!;
    expect(bytesToHex(parsed.hash)).toBe(
      bytesToHex(scrypt(PW, parsed.salt, { N: 16384, r: 8, p: 1, dkLen: 32 })),
    );
    const ok = await users.login("alice", PW, T0, IP);
    expect(ok.user).toEqual({ name: "alice", role: "operator" });
    expect((await rejection(users.login("alice", `${PW}!`, T0, IP))).code).toBe("UNAUTHORIZED");
  });

  test("two users with one password get different salts and hashes", async () => {
    const { db, users } = rig();
    await users.createUser("a", "operator", PW);
    await users.createUser("b", "operator", PW);
    const [x, y] = db.query<{ password: string }, []>("SELECT password FROM users ORDER BY id").all();
    expect(x!.password).not.toBe(y!.password);
  });

  test("stored hashes outside the bounds or the format are not accepted", () => {
    const good = encodePasswordHash({ params: FAST, salt: new Uint8Array(16), hash: new Uint8Array(32) });
    expect(parsePasswordHash(good)?.params).toEqual(FAST);
    for (const bad of [
      good.replace("ln=10", "ln=30"), // 2^30: a gigabyte per login
      good.replace("ln=10", "ln=9"),
      good.replace("r=8", "r=99"),
      good.replace("p=1", "p=0"),
      good.replace("$scrypt$", "$argon2$"),
      `$scrypt$ln=10,r=8,p=1$${"A".repeat(10)}$${"A".repeat(43)}`, // salt shorter than 16 bytes
      "",
    ]) {
      expect(parsePasswordHash(bad)).toBeNull();
    }
  });

  test("a login re-hashes a password stored with older parameters", async () => {
    const db = openDatabase(":memory:");
    const old = new Users(db, { scrypt: FAST });
    await old.createUser("alice", "admin", PW);
    const current = new Users(db, { scrypt: { ...FAST, N: 2 ** 11 } });
    await current.login("alice", PW, T0, IP);
    const stored = db.query<{ password: string }, []>("SELECT password FROM users").get()!.password;
    expect(stored).toStartWith("$scrypt$ln=11,");
    await current.login("alice", PW, T0, IP);
  });
});

describe("users", () => {
  test("names: 1–64 printable characters, no blank ends, unique regardless of ASCII case", async () => {
    for (const name of ["a", "Jane Doe", "ü".repeat(64), "ops-1@example"])
      expect(isValidUserName(name)).toBe(true);
    for (const name of ["", " a", "a ", "a\nb", "a\u0000", "a\u202eb", "x".repeat(65), "ü".repeat(65)]) {
      expect(isValidUserName(name)).toBe(false);
    }
    const { users } = rig();
    await users.createUser("Alice", "admin", PW);
    expect((await rejection(users.createUser("alice", "operator", PW))).code).toBe("CONFLICT");
    expect((await rejection(users.createUser("bad\tname", "operator", PW))).code).toBe("BAD_REQUEST");
    expect((await rejection(users.createUser("bob", "root" as "admin", PW))).code).toBe("BAD_REQUEST");
    expect((await rejection(users.createUser("bob", "operator", "short"))).code).toBe("BAD_REQUEST");
    expect((await rejection(users.createUser("bob", "operator", "x".repeat(1025)))).code).toBe("BAD_REQUEST");
    expect((await users.login("ALICE", PW, T0, IP)).user.name).toBe("Alice");
  });

  test("list, audit of changes, and the last enabled admin cannot be disabled", async () => {
    const { users, audits } = rig();
    await users.createUser("root", "admin", PW, "system");
    await users.createUser("op", "operator", PW, "root");
    expect(users.listUsers()).toEqual([
      { name: "root", role: "admin", disabled: false, createdAt: T0, lastLoginAt: null },
      { name: "op", role: "operator", disabled: false, createdAt: T0, lastLoginAt: null },
    ]);
    expect(() => users.setDisabled("root", true)).toThrow(/last enabled admin/);
    users.setDisabled("op", true, "root");
    expect(users.getUser("op")?.disabled).toBe(true);
    expect(() => users.setDisabled("nobody", true)).toThrow(ControlError);
    expect(audits.map((a) => [a.kind, a.actor, a.payload.user])).toEqual([
      ["user.create", "system", "root"],
      ["user.create", "root", "op"],
      ["user.disable", "root", "op"],
    ]);
  });
});

describe("tokens", () => {
  test("a token is 32 random bytes in base64url, stored only as its SHA-256, valid until expiry", async () => {
    const { db, users } = rig({ tokenTtlMs: 60_000 });
    await users.createUser("alice", "operator", PW);
    const { token, expiresAt } = await users.login("alice", PW, T0, IP);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(expiresAt).toBe(T0 + 60_000);
    const stored = db.query<{ token_hash: string }, []>("SELECT token_hash FROM user_tokens").all();
    expect(stored).toHaveLength(1);
    expect(stored[0]!.token_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(stored[0]!.token_hash).not.toContain(token);

    expect(users.authenticate(token, T0)).toEqual({
      name: "alice",
      role: "operator",
      tokenExpiresAt: T0 + 60_000,
    });
    expect(users.authenticate(token, T0 + 59_999)?.name).toBe("alice");
    expect(users.authenticate(token, T0 + 60_000)).toBeNull();
    expect(users.authenticate(token, T0)).toBeNull(); // an expired token is deleted when seen
    expect(users.getUser("alice")?.lastLoginAt).toBe(T0);
  });

  test("the default lifetime is 12 h", async () => {
    const { users } = rig();
    await users.createUser("alice", "operator", PW);
    const { token } = await users.login("alice", PW, T0, IP);
    expect(USERS_DEFAULTS.tokenTtlMs).toBe(12 * 3600 * 1000);
    expect(users.authenticate(token, T0 + 12 * 3600 * 1000 - 1)).not.toBeNull();
    expect(users.authenticate(token, T0 + 12 * 3600 * 1000)).toBeNull();
  });

  test("unknown and malformed tokens fail; logout ends one token only", async () => {
    const { users } = rig();
    await users.createUser("alice", "operator", PW);
    const a = await users.login("alice", PW, T0, IP);
    const b = await users.login("alice", PW, T0, IP);
    expect(users.authenticate("A".repeat(43), T0)).toBeNull();
    expect(users.authenticate(`${a.token}=`, T0)).toBeNull();
    expect(users.authenticate("", T0)).toBeNull();
    expect(users.logout(a.token)).toBe(true);
    expect(users.logout(a.token)).toBe(false);
    expect(users.authenticate(a.token, T0)).toBeNull();
    expect(users.authenticate(b.token, T0)?.name).toBe("alice");
  });

  test("a disabled user cannot log in or use old tokens; enabling again allows a new login", async () => {
    const { users, audits } = rig();
    await users.createUser("admin", "admin", PW);
    await users.createUser("op", "operator", PW);
    const { token } = await users.login("op", PW, T0, IP);
    users.setDisabled("op", true);
    expect(users.authenticate(token, T0)).toBeNull();
    const err = await rejection(users.login("op", PW, T0, IP));
    expect(err.code).toBe("UNAUTHORIZED");
    expect(err.message).toBe("wrong user name or password"); // the same answer as a wrong password
    expect(audits.at(-1)).toMatchObject({
      kind: "login.failed",
      actor: "op",
      payload: { reason: "disabled" },
    });
    users.setDisabled("op", false);
    const again = await users.login("op", PW, T0, IP);
    expect(users.authenticate(again.token, T0)?.name).toBe("op");
  });

  test("a password change ends the user's tokens; at most maxTokensPerUser stay alive", async () => {
    const { users } = rig({ maxTokensPerUser: 2 });
    await users.createUser("alice", "operator", PW);
    const t1 = await users.login("alice", PW, T0, IP);
    const t2 = await users.login("alice", PW, T0, IP);
    const t3 = await users.login("alice", PW, T0, IP);
    expect(users.authenticate(t1.token, T0)).toBeNull();
    expect(users.authenticate(t2.token, T0)).not.toBeNull();
    await users.setPassword("alice", "another password");
    expect(users.authenticate(t3.token, T0)).toBeNull();
    expect((await rejection(users.login("alice", PW, T0, IP))).code).toBe("UNAUTHORIZED");
    await users.login("alice", "another password", T0, IP);
    expect((await rejection(users.setPassword("nobody", "another password"))).code).toBe("NOT_FOUND");
  });
});

describe("login throttling", () => {
  test("5 failures lock the name for 10 s, the next failure after it for 20 s, a success resets", async () => {
    const { users, audits, hashCalls } = rig();
    await users.createUser("alice", "operator", PW);
    const fail = (t: number, ip: string) => rejection(users.login("alice", "wrong password", t, ip));
    // Spread over addresses so only the per-name throttle can be what locks.
    for (let i = 0; i < 4; i++) expect((await fail(T0 + i, `10.0.0.${i}`)).code).toBe("UNAUTHORIZED");
    expect((await fail(T0 + 4, "10.0.0.4")).code).toBe("UNAUTHORIZED");
    expect(audits.at(-1)?.payload).toMatchObject({ reason: "bad-password", lockedMs: 10_000 });

    // Locked from T0+4 to T0+10004: even the right password fails, without hashing.
    const calls = hashCalls.length;
    const locked = await rejection(users.login("alice", PW, T0 + 5, "10.0.0.9"));
    expect(locked.code).toBe("LOCKED");
    expect(locked.status).toBe(429);
    expect(locked.retryAfterMs).toBe(9_999);
    expect(locked.message).toBe("too many failed logins; retry in 10 s");
    expect((await rejection(users.login("alice", PW, T0 + 10_003, "10.0.0.9"))).retryAfterMs).toBe(1);
    expect(hashCalls.length).toBe(calls);

    // Lock over: one more failure locks again, twice as long.
    expect((await fail(T0 + 10_004, "10.0.0.5")).code).toBe("UNAUTHORIZED");
    expect(audits.at(-1)?.payload).toMatchObject({ lockedMs: 20_000 });
    expect((await rejection(users.login("alice", PW, T0 + 30_003, "10.0.0.9"))).retryAfterMs).toBe(1);
    expect((await fail(T0 + 30_004, "10.0.0.6")).code).toBe("UNAUTHORIZED");
    expect(audits.at(-1)?.payload).toMatchObject({ lockedMs: 40_000 });

    // A success after the lock resets everything: the next lock needs 5 failures and lasts 10 s.
    await users.login("alice", PW, T0 + 70_004, "10.0.0.9");
    for (let i = 0; i < 4; i++) expect((await fail(T0 + 70_005, "10.0.0.7")).code).toBe("UNAUTHORIZED");
    expect((await fail(T0 + 70_005, "10.0.0.8")).code).toBe("UNAUTHORIZED");
    expect(audits.at(-1)?.payload).toMatchObject({ lockedMs: 10_000 });
  });

  test("the lock doubles up to maxLockoutMs and is forgotten forgetAfterMs after it ends", async () => {
    const { users } = rig({ maxFailures: 1, lockoutMs: 1000, maxLockoutMs: 5000, forgetAfterMs: 60_000 });
    await users.createUser("alice", "operator", PW);
    let t = T0;
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      await rejection(users.login("alice", "wrong password", t, null));
      const e = await rejection(users.login("alice", PW, t, null));
      waits.push(e.retryAfterMs ?? 0);
      t += e.retryAfterMs ?? 0;
    }
    expect(waits).toEqual([1000, 2000, 4000, 5000, 5000]);
    await rejection(users.login("alice", "wrong password", t, null));
    t += 5000 + 60_000; // lock over, then forgotten: the next lock starts at 1 s again
    await rejection(users.login("alice", "wrong password", t, null));
    expect((await rejection(users.login("alice", PW, t, null))).retryAfterMs).toBe(1000);
  });

  test("5 failures from one address lock that address for every name; other addresses are not affected", async () => {
    const { users, audits } = rig();
    await users.createUser("alice", "operator", PW);
    await users.createUser("bob", "operator", PW);
    const attacker = "203.0.113.7";
    for (const name of ["alice", "bob", "carol", "dave", "erin"]) {
      expect((await rejection(users.login(name, "wrong password", T0, attacker))).code).toBe("UNAUTHORIZED");
    }
    const locked = await rejection(users.login("alice", PW, T0 + 1, attacker));
    expect(locked.code).toBe("LOCKED");
    expect(locked.retryAfterMs).toBe(9_999);
    expect(audits.at(-1)).toMatchObject({
      kind: "login.failed",
      actor: "alice",
      payload: { reason: "locked", lockedBy: "address", remote: attacker },
    });
    // Alice's name has one failure only: from her own address she gets in.
    expect((await users.login("alice", PW, T0 + 1, "198.51.100.2")).user.name).toBe("alice");
    // Only the first refusal of a lock is audited.
    const n = audits.length;
    await rejection(users.login("bob", PW, T0 + 2, attacker));
    expect(audits.length).toBe(n);
    expect(users.stats()).toEqual({ succeeded: 1, failed: 5, locked: 2 });
    // The lock ends after 10 s.
    expect((await users.login("bob", PW, T0 + 10_000, attacker)).user.name).toBe("bob");
  });

  test("IPv6 addresses are throttled by /64; IPv4-mapped addresses as IPv4", async () => {
    expect(addressKey("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(addressKey("2001:0db8:0001:0002:ffff:0:0:9")).toBe("2001:db8:1:2::/64");
    expect(addressKey("[2001:db8:1:3::1]")).toBe("2001:db8:1:3::/64");
    expect(addressKey("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(addressKey("::ffff:192.0.2.1")).toBe("192.0.2.1");
    expect(addressKey("192.0.2.1")).toBe("192.0.2.1");
    const { users } = rig();
    for (let i = 1; i <= 5; i++)
      await rejection(users.login("x", "wrong password", T0, `2001:db8:1:2::${i}`));
    expect((await rejection(users.login("y", "wrong password", T0, "2001:db8:1:2:ffff::1"))).code).toBe(
      "LOCKED",
    );
    expect((await rejection(users.login("y", "wrong password", T0, "2001:db8:1:3::1"))).code).toBe(
      "UNAUTHORIZED",
    );
  });

  test("parallel guesses cannot overrun the limit while hashes are running", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let held = false;
    const slow: PasswordHasher = async (p, s, params) => {
      if (held) await gate;
      return scryptHasher(p, s, params);
    };
    const { users, hashCalls } = rig({ maxConcurrentHashes: 16 }, slow);
    await users.createUser("alice", "operator", PW);
    held = true;
    const attempts = Array.from({ length: 12 }, (_, i) =>
      rejection(users.login("alice", `guess ${i}`, T0, `10.1.0.${i}`)),
    );
    await Bun.sleep(0);
    release();
    const codes = (await Promise.all(attempts)).map((e) => e.code);
    expect(codes.filter((c) => c === "UNAUTHORIZED")).toHaveLength(5);
    expect(codes.filter((c) => c === "LOCKED")).toHaveLength(7);
    expect(hashCalls).toHaveLength(1 + 5); // createUser, then the five admitted guesses
  });

  test("a full hash queue answers UNAVAILABLE and does not count as a failure", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let held = false;
    const slow: PasswordHasher = async (p, s, params) => {
      if (held) await gate;
      return scryptHasher(p, s, params);
    };
    const { users } = rig({ maxConcurrentHashes: 1, maxQueuedHashes: 1 }, slow);
    await users.createUser("alice", "operator", PW);
    held = true;
    const first = users.login("alice", PW, T0, "10.2.0.1");
    const queued = users.login("alice", PW, T0, "10.2.0.2");
    const refused = await rejection(users.login("alice", "wrong password", T0, "10.2.0.3"));
    expect(refused.code).toBe("UNAVAILABLE");
    expect(refused.status).toBe(503);
    release();
    await first;
    await queued;
    expect(users.stats().failed).toBe(0);
  });
});

describe("no user enumeration", () => {
  test("unknown, invalid and existing names run the same scrypt and get the same error", async () => {
    const { users, hashCalls, audits } = rig();
    await users.createUser("alice", "operator", PW);
    hashCalls.length = 0;
    const known = await rejection(users.login("alice", "wrong password", T0, "10.3.0.1"));
    const unknown = await rejection(users.login("mallory", "wrong password", T0, "10.3.0.2"));
    const invalid = await rejection(users.login("\u0000".repeat(500), "wrong password", T0, "10.3.0.3"));
    const huge = await rejection(users.login("mallory", "x".repeat(100_000), T0, "10.3.0.4"));
    expect(hashCalls).toEqual([FAST, FAST, FAST, FAST]);
    for (const e of [unknown, invalid, huge]) {
      expect(e.code).toBe(known.code);
      expect(e.message).toBe(known.message);
    }
    expect(audits.filter((a) => a.kind === "login.failed").map((a) => [a.actor, a.payload.reason])).toEqual([
      ["alice", "bad-password"],
      ["mallory", "unknown-user"],
      ["?", "unknown-user"],
      ["mallory", "unknown-user"],
    ]);
  });

  test("unknown names lock out exactly like existing ones", async () => {
    const { users } = rig();
    await users.createUser("alice", "operator", PW);
    for (const name of ["alice", "nobody"]) {
      for (let i = 0; i < 5; i++) await rejection(users.login(name, "wrong password", T0, `10.4.${i}.1`));
      expect((await rejection(users.login(name, "wrong password", T0, "10.5.0.1"))).retryAfterMs).toBe(
        10_000,
      );
    }
  });

  test("the right password of an existing user never matches an unknown name's random target", async () => {
    const { users } = rig();
    await users.createUser("alice", "operator", PW);
    expect((await rejection(users.login("alicE2", PW, T0, IP))).code).toBe("UNAUTHORIZED");
  });
});

describe("ensureAdmin", () => {
  test("creates admin with a random password once, then returns null", async () => {
    const db = openDatabase(":memory:");
    const password = await ensureAdmin(db, undefined, { scrypt: FAST });
    expect(password).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(await ensureAdmin(db, undefined, { scrypt: FAST })).toBeNull();
    const users = new Users(db, { scrypt: FAST });
    expect(users.listUsers().map((u) => [u.name, u.role])).toEqual([["admin", "admin"]]);
    expect((await users.login("admin", password!, T0, IP)).user.role).toBe("admin");
  });

  test("a given password is used and not returned", async () => {
    const { users, audits } = rig();
    expect(await users.ensureAdmin("from the environment")).toBeNull();
    await users.login("admin", "from the environment", T0, IP);
    expect(audits.filter((a) => a.kind === "user.create")).toHaveLength(1);
  });

  test("concurrent first starts create one admin, and only the winner returns its password", async () => {
    const { db, users } = rig();
    const results = await Promise.all([users.ensureAdmin(), users.ensureAdmin(), users.ensureAdmin()]);
    const winners = results.filter((r) => r !== null);
    expect(winners).toHaveLength(1);
    expect(db.query<{ n: number }, []>("SELECT count(*) AS n FROM users").get()?.n).toBe(1);
    await users.login("admin", winners[0]!, T0, IP);
  });
});

describe("with the real audit log", () => {
  test("failed logins and lockouts land in a chain that verifies", async () => {
    const db = openDatabase(":memory:");
    const log = new AuditLog(db);
    const users = new Users(db, { scrypt: FAST }, { audit: log.record });
    await users.createUser("alice", "operator", PW);
    for (let i = 0; i < 5; i++) await rejection(users.login("alice", "wrong password", T0, IP));
    await rejection(users.login("alice", PW, T0 + 1, IP));
    const failed = log.list({ kind: "login.failed" });
    expect(failed).toHaveLength(6);
    expect(failed.at(-2)?.payload).toEqual({ remote: IP, reason: "bad-password", lockedMs: 10_000 });
    expect(failed.at(-1)?.payload).toEqual({
      remote: IP,
      reason: "locked",
      lockedBy: "name+address",
      retryAfterMs: 9_999,
    });
    expect(JSON.stringify(log.list({ limit: 1000 }))).not.toContain("wrong password");
    expect(log.verify()).toMatchObject({ ok: true, rows: 7 });
  });
});
