// Users of the relay (DESIGN.md "Control plane"): admin and operator roles, scrypt password hashes, login
// throttling per user name and per remote address, and bearer tokens of which only the SHA-256 is stored.
//
// Passwords: scrypt (@noble/hashes scryptAsync, which yields to the event loop) with a random 16-byte
// salt, stored as `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>` (base64url, no padding) so parameters
// can be raised later: a successful login re-hashes a password stored with other parameters. Default
// N = 2^14, r = 8, p = 1 (16 MiB): 55–70 ms per hash on this 2-core machine (2^15 took 120–130 ms,
// 2^16 240–380 ms; measured with scryptAsync under Bun 1.4.5, other work running). OWASP's floor is
// N = 2^17 (bad-inputs.md §c 10); raise `scrypt.N` where logins may cost more.
//
// Throttling (bad-inputs.md §c 5, TigerVNC Blacklist defaults): 5 failures lock the user name and the
// address for 10 s; each further failure after a lock has expired locks again for twice as long (capped);
// a success resets both. While locked, a login fails without hashing. The state is in memory (a restart
// clears it) and bounded; a locked-out user name is a denial of service an attacker can cause, which is
// the accepted price of stopping password guessing. Unknown user names go through the same scrypt, the
// same throttle and the same error as wrong passwords, so neither timing nor lockouts reveal which names exist.

import type { Database } from "bun:sqlite";
import { Buffer } from "node:buffer";
import { timingSafeEqual } from "node:crypto";
import { scryptAsync } from "@noble/hashes/scrypt.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, randomBytes, utf8ToBytes } from "@noble/hashes/utils.js";
import type { AuditFn } from "./audit.ts";
import { ControlError } from "./errors.ts";

export type Role = "admin" | "operator";
export const ROLES: readonly Role[] = ["admin", "operator"];

export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  N: number;
  /** Block size. */
  r: number;
  /** Parallelism. */
  p: number;
  /** Derived key length in bytes. */
  dkLen: number;
}

/** Derives a key from a password; injectable so tests can count calls or use cheap parameters. */
export type PasswordHasher = (
  password: Uint8Array,
  salt: Uint8Array,
  params: ScryptParams,
) => Promise<Uint8Array>;

export interface UsersOptions {
  /** Lifetime of a bearer token from login. @default 43200000 (12 h) */
  tokenTtlMs: number;
  /** Live tokens per user; logging in again drops the oldest beyond this. @default 16 */
  maxTokensPerUser: number;
  /** Failures (per user name, per address) that lock it. @default 5 */
  maxFailures: number;
  /** First lock duration; each further lock doubles it. @default 10000 */
  lockoutMs: number;
  /** Longest lock. @default 3600000 (1 h) */
  maxLockoutMs: number;
  /** Throttle state of a name or address is forgotten this long after its last failure or lock end. @default 86400000 (24 h) */
  forgetAfterMs: number;
  /** Names (and, separately, addresses) tracked by the throttle; the least recently used go first. @default 10000 */
  maxTrackedKeys: number;
  /** Parameters for new hashes. @default { N: 16384, r: 8, p: 1, dkLen: 32 } (55–70 ms here, 16 MiB) */
  scrypt: ScryptParams;
  /** Password hashes running at once (each takes a core and 128·N·r bytes). @default 2 */
  maxConcurrentHashes: number;
  /** Logins waiting for a hash slot; beyond this a login fails with UNAVAILABLE. @default 32 */
  maxQueuedHashes: number;
  /** Shortest password accepted when setting one (NIST SP 800-63B: 8). @default 8 */
  minPasswordChars: number;
  /** Longest password in UTF-8 bytes; bounds the hashing work of one login. @default 1024 */
  maxPasswordBytes: number;
}

export const USERS_DEFAULTS: Readonly<UsersOptions> = Object.freeze({
  tokenTtlMs: 12 * 60 * 60 * 1000,
  maxTokensPerUser: 16,
  maxFailures: 5,
  lockoutMs: 10_000,
  maxLockoutMs: 60 * 60 * 1000,
  forgetAfterMs: 24 * 60 * 60 * 1000,
  maxTrackedKeys: 10_000,
  scrypt: Object.freeze({ N: 2 ** 14, r: 8, p: 1, dkLen: 32 }),
  maxConcurrentHashes: 2,
  maxQueuedHashes: 32,
  minPasswordChars: 8,
  maxPasswordBytes: 1024,
});

export interface UsersDeps {
  /** Where failed logins, lockouts, logins and user changes are recorded. */
  audit?: AuditFn;
  hasher?: PasswordHasher;
  /** Clock for creation times (login/authenticate take `now` explicitly). */
  now?: () => number;
}

export interface UserInfo {
  name: string;
  role: Role;
  disabled: boolean;
  /** ms since the epoch */
  createdAt: number;
  lastLoginAt: number | null;
}

/** Who a bearer token belongs to. */
export interface AuthUser {
  name: string;
  role: Role;
  /** ms since the epoch */
  tokenExpiresAt: number;
}

export interface LoginResult {
  /** 32 random bytes, base64url: send as `Authorization: Bearer <token>`. */
  token: string;
  /** ms since the epoch */
  expiresAt: number;
  user: { name: string; role: Role };
}

export interface LoginStats {
  succeeded: number;
  /** Logins that checked a password and failed (wrong password, unknown or disabled user). */
  failed: number;
  /** Logins refused without checking, because the name or address was locked. */
  locked: number;
}

const TOKEN_BYTES = 32;
const TOKEN = /^[A-Za-z0-9_-]{43}$/;
const SALT_BYTES = 16;
const GENERATED_PASSWORD_BYTES = 18; // 24 base64url characters, 144 bits
const MAX_NAME_CHARS = 64;
/** Bounds on stored parameters, so an edited database cannot make one login cost a gigabyte. */
const MAX_SCRYPT_MEMORY = 256 * 1024 * 1024;
/** How long to wait when a name or address has as many logins in flight as it has failures left. */
const IN_FLIGHT_RETRY_MS = 1000;
const HASH_FORMAT = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/;
const NAME_CHARS = /^[^\p{C}\p{Zl}\p{Zp}]+$/u;

/** 1–64 characters, none of them control, format or line/paragraph separators, no blank at either end. */
export function isValidUserName(name: string): boolean {
  if (typeof name !== "string" || name.length > MAX_NAME_CHARS * 2) return false;
  const chars = Array.from(name).length;
  return chars >= 1 && chars <= MAX_NAME_CHARS && NAME_CHARS.test(name) && name.trim() === name;
}

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64url");
}

function fromB64url(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, "base64url"));
}

function checkScryptParams(params: ScryptParams): boolean {
  const { N, r, p, dkLen } = params;
  return (
    Number.isSafeInteger(N) &&
    N >= 2 ** 10 &&
    N <= 2 ** 20 &&
    (N & (N - 1)) === 0 &&
    Number.isSafeInteger(r) &&
    r >= 1 &&
    r <= 32 &&
    Number.isSafeInteger(p) &&
    p >= 1 &&
    p <= 16 &&
    128 * N * r * p <= MAX_SCRYPT_MEMORY &&
    Number.isSafeInteger(dkLen) &&
    dkLen >= 16 &&
    dkLen <= 64
  );
}

/** The default hasher: scrypt that yields to the event loop every few ms. */
export const scryptHasher: PasswordHasher = (password, salt, params) =>
  scryptAsync(password, salt, {
    N: params.N,
    r: params.r,
    p: params.p,
    dkLen: params.dkLen,
    maxmem: MAX_SCRYPT_MEMORY + 1024 * 1024,
  });

export interface PasswordHash {
  params: ScryptParams;
  salt: Uint8Array;
  hash: Uint8Array;
}

export function encodePasswordHash(h: PasswordHash): string {
  return `$scrypt$ln=${Math.log2(h.params.N)},r=${h.params.r},p=${h.params.p}$${b64url(h.salt)}$${b64url(h.hash)}`;
}

/** The stored form parsed and bounds-checked, or null when it is not one we wrote. */
export function parsePasswordHash(encoded: string): PasswordHash | null {
  const m = HASH_FORMAT.exec(encoded);
  if (m === null) return null;
  const salt = fromB64url(m[4]!);
  const hash = fromB64url(m[5]!);
  const params = { N: 2 ** Number(m[1]), r: Number(m[2]), p: Number(m[3]), dkLen: hash.byteLength };
  if (!checkScryptParams(params) || salt.byteLength < SALT_BYTES) return null;
  return { params, salt, hash };
}

/** Passwords are compared as UTF-8 of their NFC form, so the same text typed on any system matches. */
function passwordBytes(password: string): Uint8Array {
  return utf8ToBytes(password.normalize("NFC"));
}

function tokenHash(token: string): string {
  return bytesToHex(sha256(utf8ToBytes(token)));
}

/** ASCII-only case folding, matching SQLite's NOCASE on the name column. */
function foldName(name: string): string {
  return name.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

function expandIpv6(text: string): string[] | null {
  let a = text;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (v4 !== null) {
    const o = v4.slice(1).map(Number);
    if (o.some((x) => x > 255)) return null;
    a = `${a.slice(0, v4.index)}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const halves = a.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] === "" ? [] : halves[0]!.split(":");
  const tail = halves.length === 2 && halves[1] !== "" ? halves[1]!.split(":") : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = [...head, ...new Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return null;
  return groups.map((g) => Number.parseInt(g, 16).toString(16));
}

/**
 * The throttle key of a remote address: IPv4 as is (also when IPv4-mapped), IPv6 by its /64, since one
 * host usually holds a whole /64 and could otherwise rotate through addresses.
 */
export function addressKey(remote: string): string {
  let a = remote.trim().toLowerCase();
  if (a.startsWith("[") && a.endsWith("]")) a = a.slice(1, -1);
  const zone = a.indexOf("%");
  if (zone >= 0) a = a.slice(0, zone);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped !== null) return mapped[1]!;
  if (a.includes(":")) {
    const groups = expandIpv6(a);
    if (groups !== null) return `${groups.slice(0, 4).join(":")}::/64`;
  }
  return a.slice(0, 64);
}

interface ThrottleEntry {
  failures: number;
  lockouts: number;
  lockedUntil: number;
  lastFailureAt: number;
  inFlight: number;
  /** A refused attempt has been audited during the current lock. */
  refusalAudited: boolean;
}

/**
 * Failure counting and lockouts for one kind of key (user names, or addresses). Kept apart per kind so
 * that flooding one (many addresses) cannot evict the other's entries. Replaceable by a Redis-backed
 * twin for clusters (DESIGN.md "State").
 */
export class LoginThrottle {
  private readonly entries = new Map<string, ThrottleEntry>();

  constructor(
    private readonly options: Pick<
      UsersOptions,
      "maxFailures" | "lockoutMs" | "maxLockoutMs" | "forgetAfterMs" | "maxTrackedKeys"
    >,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  private forgettable(e: ThrottleEntry, now: number): boolean {
    return (
      e.inFlight === 0 &&
      now >= e.lockedUntil &&
      now - Math.max(e.lastFailureAt, e.lockedUntil) >= this.options.forgetAfterMs
    );
  }

  private lookup(key: string, now: number): ThrottleEntry | undefined {
    const e = this.entries.get(key);
    if (e !== undefined && this.forgettable(e, now)) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  private touch(key: string, now: number): ThrottleEntry {
    let e = this.lookup(key, now);
    if (e !== undefined) {
      this.entries.delete(key); // re-inserted below: Map order is least recently used first
    } else {
      if (this.entries.size >= this.options.maxTrackedKeys) this.evict(now);
      e = {
        failures: 0,
        lockouts: 0,
        lockedUntil: 0,
        lastFailureAt: now,
        inFlight: 0,
        refusalAudited: false,
      };
    }
    this.entries.set(key, e);
    return e;
  }

  private evict(now: number): void {
    for (const [key, e] of this.entries) if (this.forgettable(e, now)) this.entries.delete(key);
    if (this.entries.size < this.options.maxTrackedKeys) return;
    for (const [key, e] of this.entries) {
      if (e.inFlight === 0) {
        this.entries.delete(key);
        if (this.entries.size < this.options.maxTrackedKeys) return;
      }
    }
  }

  /**
   * Milliseconds until `key` may try again (0: now). Besides locks, a key may not have more logins in
   * flight than failures left, so parallel guesses cannot overrun the limit while hashes run.
   */
  waitMs(key: string, now: number): number {
    const e = this.lookup(key, now);
    if (e === undefined) return 0;
    if (now < e.lockedUntil) return e.lockedUntil - now;
    if (e.inFlight > 0 && e.failures + e.inFlight >= this.options.maxFailures) return IN_FLIGHT_RETRY_MS;
    return 0;
  }

  /** True once per lock: whether this refused attempt is the first one to audit. */
  firstRefusal(key: string, now: number): boolean {
    const e = this.lookup(key, now);
    if (e === undefined || e.refusalAudited) return false;
    e.refusalAudited = true;
    return true;
  }

  begin(key: string, now: number): void {
    this.touch(key, now).inFlight++;
  }

  /** An attempt that never got to check a password (e.g. no hash slot): not a failure. */
  abort(key: string, now: number): void {
    const e = this.lookup(key, now);
    if (e === undefined) return;
    e.inFlight = Math.max(0, e.inFlight - 1);
    if (e.inFlight === 0 && e.failures === 0) this.entries.delete(key);
  }

  /** Records a failure; returns the lock it imposed in ms (0 when none). */
  fail(key: string, now: number): number {
    const e = this.touch(key, now);
    e.inFlight = Math.max(0, e.inFlight - 1);
    e.failures++;
    e.lastFailureAt = now;
    if (e.failures < this.options.maxFailures) return 0;
    e.lockouts++;
    const ms = Math.min(
      this.options.lockoutMs * 2 ** Math.min(e.lockouts - 1, 30),
      this.options.maxLockoutMs,
    );
    e.lockedUntil = now + ms;
    e.refusalAudited = false;
    return ms;
  }

  succeed(key: string): void {
    this.entries.delete(key);
  }
}

/** Runs at most `max` hashes at once with a bounded queue; beyond it, UNAVAILABLE. */
class HashGate {
  private active = 0;
  private readonly queue: (() => void)[] = [];

  constructor(
    private readonly max: number,
    private readonly maxQueued: number,
  ) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.active < this.max) {
      this.active++;
    } else {
      if (this.queue.length >= this.maxQueued) {
        throw new ControlError("UNAVAILABLE", "too many logins in progress; retry shortly", {
          retryAfterMs: IN_FLIGHT_RETRY_MS,
        });
      }
      await new Promise<void>((resolve) => this.queue.push(resolve));
    }
    try {
      return await work();
    } finally {
      const next = this.queue.shift();
      if (next !== undefined) next();
      else this.active--;
    }
  }
}

/** Creates the user and token tables if they do not exist. */
export function ensureUserSchema(db: Database): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS users (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL UNIQUE COLLATE NOCASE,
      role TEXT NOT NULL CHECK (role IN ('admin', 'operator')),
      password TEXT NOT NULL,               -- $scrypt$ln=…,r=…,p=…$salt$hash
      disabled INTEGER NOT NULL DEFAULT 0,
      created_at INTEGER NOT NULL,
      last_login_at INTEGER
    );
    CREATE TABLE IF NOT EXISTS user_tokens (
      id INTEGER PRIMARY KEY,
      token_hash TEXT NOT NULL UNIQUE,      -- SHA-256 hex of the bearer token; the token is never stored
      user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      created_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS user_tokens_user ON user_tokens (user_id, id);
    CREATE INDEX IF NOT EXISTS user_tokens_expiry ON user_tokens (expires_at);
  `);
}

interface UserRow {
  id: number;
  name: string;
  role: Role;
  password: string;
  disabled: number;
  created_at: number;
  last_login_at: number | null;
}

function toInfo(row: UserRow): UserInfo {
  return {
    name: row.name,
    role: row.role,
    disabled: row.disabled !== 0,
    createdAt: row.created_at,
    lastLoginAt: row.last_login_at,
  };
}

function sameParams(a: ScryptParams, b: ScryptParams): boolean {
  return a.N === b.N && a.r === b.r && a.p === b.p && a.dkLen === b.dkLen;
}

export class Users {
  readonly options: UsersOptions;
  private readonly audit: AuditFn;
  private readonly hasher: PasswordHasher;
  private readonly clock: () => number;
  private readonly byName: LoginThrottle;
  private readonly byAddress: LoginThrottle;
  private readonly gate: HashGate;
  private readonly counters: LoginStats = { succeeded: 0, failed: 0, locked: 0 };

  constructor(
    private readonly db: Database,
    options: Partial<UsersOptions> = {},
    deps: UsersDeps = {},
  ) {
    this.options = { ...USERS_DEFAULTS, ...options };
    if (!checkScryptParams(this.options.scrypt)) {
      throw new ControlError("BAD_REQUEST", "scrypt parameters out of range");
    }
    this.audit = deps.audit ?? (() => {});
    this.hasher = deps.hasher ?? scryptHasher;
    this.clock = deps.now ?? Date.now;
    this.byName = new LoginThrottle(this.options);
    this.byAddress = new LoginThrottle(this.options);
    this.gate = new HashGate(this.options.maxConcurrentHashes, this.options.maxQueuedHashes);
    ensureUserSchema(db);
  }

  /** Counters for /metrics. */
  stats(): LoginStats {
    return { ...this.counters };
  }

  private row(name: string): UserRow | null {
    return this.db.query<UserRow, [string]>("SELECT * FROM users WHERE name = ?").get(name);
  }

  private checkNewPassword(password: string): void {
    if (typeof password !== "string" || Array.from(password).length < this.options.minPasswordChars) {
      throw new ControlError(
        "BAD_REQUEST",
        `password must have at least ${this.options.minPasswordChars} characters`,
      );
    }
    if (passwordBytes(password).byteLength > this.options.maxPasswordBytes) {
      throw new ControlError(
        "BAD_REQUEST",
        `password must have at most ${this.options.maxPasswordBytes} bytes`,
      );
    }
  }

  private async hashNew(password: string): Promise<string> {
    const params = { ...this.options.scrypt };
    const salt = randomBytes(SALT_BYTES);
    const hash = await this.gate.run(() => this.hasher(passwordBytes(password), salt, params));
    return encodePasswordHash({ params, salt, hash });
  }

  /**
   * Checks `password` against a stored hash; with no usable stored hash (unknown user, corrupt row) the
   * same scrypt runs against a random target, so the caller's cost does not say whether the user exists.
   */
  private async check(stored: string | null, password: string): Promise<boolean> {
    const parsed = stored === null ? null : parsePasswordHash(stored);
    const target = parsed ?? {
      params: { ...this.options.scrypt },
      salt: randomBytes(SALT_BYTES),
      hash: randomBytes(this.options.scrypt.dkLen),
    };
    let input = passwordBytes(password);
    const tooLong = input.byteLength > this.options.maxPasswordBytes;
    if (tooLong) input = new Uint8Array(0); // no stored password is this long: hash something, then fail
    const derived = await this.gate.run(() => this.hasher(input, target.salt, target.params));
    const equal = derived.byteLength === target.hash.byteLength && timingSafeEqual(derived, target.hash);
    return equal && parsed !== null && !tooLong;
  }

  async createUser(name: string, role: Role, password: string, by = "system"): Promise<UserInfo> {
    if (!isValidUserName(name)) {
      throw new ControlError(
        "BAD_REQUEST",
        "user name must be 1–64 printable characters without blanks at the ends",
      );
    }
    if (!ROLES.includes(role)) throw new ControlError("BAD_REQUEST", "role must be admin or operator");
    this.checkNewPassword(password);
    if (this.row(name) !== null) throw new ControlError("CONFLICT", "a user with this name exists");
    const encoded = await this.hashNew(password);
    const created = this.clock();
    try {
      this.db
        .query("INSERT INTO users (name, role, password, disabled, created_at) VALUES (?, ?, ?, 0, ?)")
        .run(name, role, encoded, created);
    } catch (e) {
      if (String(e).includes("UNIQUE")) throw new ControlError("CONFLICT", "a user with this name exists");
      throw e;
    }
    this.audit("user.create", by, { user: name, role });
    return { name, role, disabled: false, createdAt: created, lastLoginAt: null };
  }

  /** Sets a new password and ends every token of that user. */
  async setPassword(name: string, password: string, by = "system"): Promise<void> {
    this.checkNewPassword(password);
    const row = this.row(name);
    if (row === null) throw new ControlError("NOT_FOUND", "no such user");
    const encoded = await this.hashNew(password);
    this.db.transaction(() => {
      this.db.query("UPDATE users SET password = ? WHERE id = ?").run(encoded, row.id);
      this.db.query("DELETE FROM user_tokens WHERE user_id = ?").run(row.id);
    })();
    this.audit("user.password", by, { user: row.name });
  }

  /** Disables (ending every token) or enables a user; the last enabled admin cannot be disabled. */
  setDisabled(name: string, disabled: boolean, by = "system"): void {
    const row = this.row(name);
    if (row === null) throw new ControlError("NOT_FOUND", "no such user");
    this.db.transaction(() => {
      if (disabled && row.role === "admin") {
        const others = this.db
          .query<{ n: number }, [number]>(
            "SELECT count(*) AS n FROM users WHERE role = 'admin' AND disabled = 0 AND id != ?",
          )
          .get(row.id);
        if ((others?.n ?? 0) === 0)
          throw new ControlError("CONFLICT", "cannot disable the last enabled admin");
      }
      this.db.query("UPDATE users SET disabled = ? WHERE id = ?").run(disabled ? 1 : 0, row.id);
      if (disabled) this.db.query("DELETE FROM user_tokens WHERE user_id = ?").run(row.id);
    })();
    this.audit(disabled ? "user.disable" : "user.enable", by, { user: row.name });
  }

  listUsers(): UserInfo[] {
    return this.db.query<UserRow, []>("SELECT * FROM users ORDER BY id").all().map(toInfo);
  }

  getUser(name: string): UserInfo | null {
    const row = this.row(name);
    return row === null ? null : toInfo(row);
  }

  /**
   * Checks a password and returns a new bearer token. `remote` is the client's address (null only for
   * local use without one, which skips the per-address throttle). Throws ControlError: LOCKED (with
   * retryAfterMs) while the name or the address is locked, UNAUTHORIZED for any wrong name, password or
   * disabled user (one message for all), UNAVAILABLE when too many hashes are queued.
   */
  async login(name: string, password: string, now: number, remote: string | null): Promise<LoginResult> {
    const validName = isValidUserName(name);
    const actor = validName ? name : "?";
    const nameKey = foldName(String(name).slice(0, MAX_NAME_CHARS * 2));
    const addrKey = remote === null ? null : addressKey(remote);
    const nameWait = this.byName.waitMs(nameKey, now);
    const addrWait = addrKey === null ? 0 : this.byAddress.waitMs(addrKey, now);
    const wait = Math.max(nameWait, addrWait);
    if (wait > 0) {
      this.counters.locked++;
      // Audit the first refusal of each lock, not every one: a locked-out flood must not flood the log.
      const firstByName = nameWait > 0 && this.byName.firstRefusal(nameKey, now);
      const firstByAddr = addrKey !== null && addrWait > 0 && this.byAddress.firstRefusal(addrKey, now);
      if (firstByName || firstByAddr) {
        const lockedBy = nameWait > 0 && addrWait > 0 ? "name+address" : nameWait > 0 ? "name" : "address";
        this.audit("login.failed", actor, { remote, reason: "locked", lockedBy, retryAfterMs: wait });
      }
      throw new ControlError("LOCKED", `too many failed logins; retry in ${Math.ceil(wait / 1000)} s`, {
        retryAfterMs: wait,
      });
    }

    this.byName.begin(nameKey, now);
    if (addrKey !== null) this.byAddress.begin(addrKey, now);
    const row = validName ? this.row(name) : null;
    let ok: boolean;
    try {
      ok = await this.check(row?.password ?? null, password);
    } catch (e) {
      this.byName.abort(nameKey, now);
      if (addrKey !== null) this.byAddress.abort(addrKey, now);
      throw e;
    }

    if (ok && row !== null && row.disabled === 0) {
      this.byName.succeed(nameKey);
      if (addrKey !== null) this.byAddress.succeed(addrKey);
      this.counters.succeeded++;
      await this.upgradeHash(row, password);
      const result = this.issueToken(row, now);
      this.audit("login", row.name, { remote, expiresAt: new Date(result.expiresAt).toISOString() });
      return result;
    }

    this.counters.failed++;
    const reason = row === null ? "unknown-user" : ok ? "disabled" : "bad-password";
    const lockedMs = Math.max(
      this.byName.fail(nameKey, now),
      addrKey === null ? 0 : this.byAddress.fail(addrKey, now),
    );
    const payload: Record<string, unknown> = { remote, reason };
    if (lockedMs > 0) payload.lockedMs = lockedMs;
    this.audit("login.failed", actor, payload);
    throw new ControlError("UNAUTHORIZED", "wrong user name or password");
  }

  /** After a successful login: re-hash a password stored with other parameters than the current ones. */
  private async upgradeHash(row: UserRow, password: string): Promise<void> {
    const parsed = parsePasswordHash(row.password);
    if (parsed !== null && sameParams(parsed.params, this.options.scrypt)) return;
    try {
      const encoded = await this.hashNew(password);
      this.db
        .query("UPDATE users SET password = ? WHERE id = ? AND password = ?")
        .run(encoded, row.id, row.password);
    } catch {
      // Keeping the old hash is safe; the next login tries again.
    }
  }

  private issueToken(row: UserRow, now: number): LoginResult {
    const token = b64url(randomBytes(TOKEN_BYTES));
    const expiresAt = now + this.options.tokenTtlMs;
    this.db.transaction(() => {
      this.db.query("DELETE FROM user_tokens WHERE expires_at <= ?").run(now);
      this.db
        .query("INSERT INTO user_tokens (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
        .run(tokenHash(token), row.id, now, expiresAt);
      this.db
        .query(
          `DELETE FROM user_tokens WHERE user_id = ?1 AND id NOT IN
             (SELECT id FROM user_tokens WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2)`,
        )
        .run(row.id, this.options.maxTokensPerUser);
      this.db.query("UPDATE users SET last_login_at = ? WHERE id = ?").run(now, row.id);
    })();
    return { token, expiresAt, user: { name: row.name, role: row.role } };
  }

  /**
   * The user a bearer token belongs to, or null: unknown, malformed or expired tokens and disabled users
   * all fail. The lookup is by the token's SHA-256, so its timing says nothing about the token itself.
   */
  authenticate(token: string, now: number): AuthUser | null {
    if (typeof token !== "string" || !TOKEN.test(token)) return null;
    const hash = tokenHash(token);
    const row = this.db
      .query<{ name: string; role: Role; disabled: number; expires_at: number }, [string]>(
        `SELECT u.name, u.role, u.disabled, t.expires_at FROM user_tokens t
           JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?`,
      )
      .get(hash);
    if (row === null) return null;
    if (row.expires_at <= now) {
      this.db.query("DELETE FROM user_tokens WHERE token_hash = ?").run(hash);
      return null;
    }
    if (row.disabled !== 0) return null;
    return { name: row.name, role: row.role, tokenExpiresAt: row.expires_at };
  }

  /** Ends one token; true if it existed. */
  logout(token: string): boolean {
    if (typeof token !== "string" || !TOKEN.test(token)) return false;
    return this.db.query("DELETE FROM user_tokens WHERE token_hash = ?").run(tokenHash(token)).changes > 0;
  }

  /**
   * First start: when there are no users, creates "admin" (role admin) with `password`, or with a random
   * one that is returned so the caller can print it once. Returns null otherwise (users exist, or the
   * password was given).
   */
  async ensureAdmin(password?: string): Promise<string | null> {
    const count = () => this.db.query<{ n: number }, []>("SELECT count(*) AS n FROM users").get()?.n ?? 0;
    if (count() > 0) return null;
    const chosen = password ?? b64url(randomBytes(GENERATED_PASSWORD_BYTES));
    this.checkNewPassword(chosen);
    const encoded = await this.hashNew(chosen);
    const created = this.db.transaction((): boolean => {
      if (count() > 0) return false; // another caller won while we were hashing
      this.db
        .query(
          "INSERT INTO users (name, role, password, disabled, created_at) VALUES ('admin', 'admin', ?, 0, ?)",
        )
        .run(encoded, this.clock());
      return true;
    })();
    if (!created) return null;
    this.audit("user.create", "system", { user: "admin", role: "admin", firstStart: true });
    return password === undefined ? chosen : null;
  }
}

/** `new Users(db, options, deps).ensureAdmin(password)`: see Users.ensureAdmin. */
export function ensureAdmin(
  db: Database,
  password?: string,
  options: Partial<UsersOptions> = {},
  deps: UsersDeps = {},
): Promise<string | null> {
  return new Users(db, options, deps).ensureAdmin(password);
}
