// One-time viewer tickets (DESIGN.md "Control plane / Sessions"; bad-inputs.md §c 2, 3, 10): every viewer
// enters a session with a ticket the relay MACs itself, so checking one needs no lookup — only redeeming it
// does. Format: base64url(payload) "." base64url(HMAC-SHA256(secret, DOMAIN || payload)), where payload is
// the canonical JSON of the claims (fixed key order, nothing else allowed). The algorithm is fixed: there
// is no header to negotiate it (RFC 8725 §2.1).
//
// Redemption is exactly once: an INSERT of the ticket id into a table where it is the PRIMARY KEY. SQLite
// serialises writers across connections and processes, so of two racing redemptions one inserts and the
// other sees the conflict. A ticket past its expiry is refused before that, so redeemed ids may be pruned
// once their ticket has expired.

import type { Database } from "bun:sqlite";
import { timingSafeEqual } from "node:crypto";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, randomBytes } from "@noble/hashes/utils.js";
import { toBase64url } from "../gateway/protocol.ts";
import { ControlError, type ControlErrorBody, type ControlErrorCode } from "./errors.ts";
import type { UserRole } from "./sessions.ts";

export const TICKET_DEFAULTS = {
  /** How long a new ticket can be redeemed, in seconds (time to connect, not session length). @default 60 */
  ttlSeconds: 60,
  /** Longest TTL `issueTicket` accepts, in seconds; bounds how long redeemed ids must be kept. @default 600 */
  maxTtlSeconds: 600,
  /** Longest ticket string looked at; anything longer is refused before decoding. @default 2048 */
  maxTicketLength: 2048,
  /** Longest session / device id in a ticket. @default 128 */
  maxIdLength: 128,
  /** Longest user name in a ticket. @default 256 */
  maxUserLength: 256,
};

export type TicketOptions = typeof TICKET_DEFAULTS;

/** Where the ticket may be redeemed: the browser viewer's WebSocket, or the native `connect` proxy. */
export type TicketAudience = "browser" | "native";

export interface TicketClaims {
  /** The ticket's own id (jti): 16 random bytes, base64url. Safe to log; the ticket itself is not. */
  id: string;
  session: string;
  device: string;
  user: string;
  role: UserRole;
  audience: TicketAudience;
  /** Milliseconds since the epoch; redeemable while now < expiresAt. */
  expiresAt: number;
}

export type TicketRequest = Omit<TicketClaims, "id" | "expiresAt">;

export interface IssuedTicket {
  ticket: string;
  id: string;
  expiresAt: number;
}

/** Why a ticket was refused. Each is safe to show to whoever presented it. */
export type TicketRefusal =
  | "malformed"
  | "bad-mac"
  | "expired"
  | "wrong-session"
  | "wrong-audience"
  | "already-redeemed";

const REFUSALS: Record<TicketRefusal, { code: ControlErrorCode; message: string }> = {
  malformed: { code: "BAD_REQUEST", message: "ticket is malformed" },
  "bad-mac": { code: "UNAUTHORIZED", message: "ticket is not valid" },
  expired: { code: "GONE", message: "ticket has expired" },
  "wrong-session": { code: "FORBIDDEN", message: "ticket is for another session" },
  "wrong-audience": { code: "FORBIDDEN", message: "ticket is for another kind of viewer" },
  "already-redeemed": { code: "CONFLICT", message: "ticket has already been used" },
};

export class TicketError extends ControlError {
  constructor(readonly reason: TicketRefusal) {
    super(REFUSALS[reason].code, REFUSALS[reason].message);
    this.name = "TicketError";
  }

  override toJSON(): ControlErrorBody & { reason: TicketRefusal } {
    return { ...super.toJSON(), reason: this.reason };
  }
}

/** Domain separation: this key's MACs can never be mistaken for any other relay MAC over the same bytes. */
const DOMAIN = new TextEncoder().encode("shadowrelay-ticket-v1\n");
const VERSION = 1;
const SECRET_BYTES = 32;
const MAC_BYTES = 32;
const ID_BYTES = 16;
const B64URL = /^[A-Za-z0-9_-]+$/;
const ROLES: readonly UserRole[] = ["admin", "operator"];
const AUDIENCES: readonly TicketAudience[] = ["browser", "native"];

/** Creates the ticket tables if they do not exist. */
export function ensureTicketSchema(db: Database): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS ticket_secret (
      id INTEGER PRIMARY KEY CHECK (id = 1),   -- one row: one secret per relay
      secret BLOB NOT NULL CHECK (length(secret) = ${SECRET_BYTES}),
      created_at INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS redeemed_tickets (
      id TEXT PRIMARY KEY,                     -- the ticket id: the exactly-once guard
      session TEXT NOT NULL,
      expires_at INTEGER NOT NULL,
      redeemed_at INTEGER NOT NULL
    );
  `);
}

/**
 * The relay's ticket secret, created on first use (INSERT OR IGNORE, so two processes starting on one
 * database end up with the same one). Also creates the ticket tables. Never log the result.
 */
export function loadTicketSecret(db: Database, now = Date.now()): Uint8Array {
  ensureTicketSchema(db);
  db.query("INSERT OR IGNORE INTO ticket_secret (id, secret, created_at) VALUES (1, ?, ?)").run(
    randomBytes(SECRET_BYTES),
    now,
  );
  const row = db.query<{ secret: Uint8Array }, []>("SELECT secret FROM ticket_secret WHERE id = 1").get();
  if (row === null || row.secret.byteLength !== SECRET_BYTES) throw new Error("ticket secret unreadable");
  return new Uint8Array(row.secret);
}

/** The one byte string a set of claims is MACed as (fixed key order; JSON.stringify keeps it). */
function canonical(c: TicketClaims): string {
  return JSON.stringify({
    v: VERSION,
    id: c.id,
    session: c.session,
    device: c.device,
    user: c.user,
    role: c.role,
    aud: c.audience,
    exp: c.expiresAt,
  });
}

function mac(secret: Uint8Array, payload: Uint8Array): Uint8Array {
  return hmac(sha256, secret, concatBytes(DOMAIN, payload));
}

function checkSecret(secret: Uint8Array): void {
  if (!(secret instanceof Uint8Array) || secret.byteLength !== SECRET_BYTES) {
    throw new Error(`ticket secret must be ${SECRET_BYTES} bytes`);
  }
}

function isText(value: unknown, max: number): value is string {
  // Printable only: these end up in audit records and UIs.
  return typeof value === "string" && value.length > 0 && value.length <= max && !/\p{Cc}/u.test(value);
}

function validClaims(c: TicketClaims, options: TicketOptions): boolean {
  return (
    typeof c.id === "string" &&
    c.id.length === Math.ceil((ID_BYTES * 4) / 3) &&
    B64URL.test(c.id) &&
    isText(c.session, options.maxIdLength) &&
    isText(c.device, options.maxIdLength) &&
    isText(c.user, options.maxUserLength) &&
    ROLES.includes(c.role) &&
    AUDIENCES.includes(c.audience) &&
    Number.isSafeInteger(c.expiresAt) &&
    c.expiresAt > 0
  );
}

/** A new ticket for `claims`, redeemable once within `ttlSeconds`. */
export function issueTicket(
  secret: Uint8Array,
  claims: TicketRequest,
  ttlSeconds = TICKET_DEFAULTS.ttlSeconds,
  now = Date.now(),
  options: TicketOptions = TICKET_DEFAULTS,
): IssuedTicket {
  checkSecret(secret);
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > options.maxTtlSeconds) {
    throw new ControlError("BAD_REQUEST", `ticket TTL must be 1…${options.maxTtlSeconds} seconds`);
  }
  const full: TicketClaims = {
    id: toBase64url(randomBytes(ID_BYTES)),
    session: claims.session,
    device: claims.device,
    user: claims.user,
    role: claims.role,
    audience: claims.audience,
    expiresAt: now + ttlSeconds * 1000,
  };
  if (!validClaims(full, options)) throw new ControlError("BAD_REQUEST", "ticket claims are not valid");
  const payload = new TextEncoder().encode(canonical(full));
  const ticket = `${toBase64url(payload)}.${toBase64url(mac(secret, payload))}`;
  return { ticket, id: full.id, expiresAt: full.expiresAt };
}

/** Decodes base64url only if `text` is its one canonical spelling (no padding, clean last character). */
function strictBase64url(text: string): Uint8Array | undefined {
  if (!B64URL.test(text)) return undefined;
  const bytes = new Uint8Array(Buffer.from(text, "base64url"));
  return toBase64url(bytes) === text ? bytes : undefined;
}

/** Authenticates `ticket` and returns its claims; does not redeem. Throws TicketError. */
export function verifyTicket(
  secret: Uint8Array,
  ticket: string,
  options: TicketOptions = TICKET_DEFAULTS,
): TicketClaims {
  checkSecret(secret);
  if (typeof ticket !== "string" || ticket.length > options.maxTicketLength) {
    throw new TicketError("malformed");
  }
  const parts = ticket.split(".");
  if (parts.length !== 2) throw new TicketError("malformed");
  const payload = strictBase64url(parts[0]!);
  const presented = strictBase64url(parts[1]!);
  if (payload === undefined || presented === undefined || presented.byteLength !== MAC_BYTES) {
    throw new TicketError("malformed");
  }
  // Authenticate before reading anything out of the payload.
  if (!timingSafeEqual(mac(secret, payload), presented)) throw new TicketError("bad-mac");

  // From here the bytes are ours; still checked, so that a change of format cannot be misread.
  let raw: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error();
    raw = parsed as Record<string, unknown>;
  } catch {
    throw new TicketError("malformed");
  }
  const claims = {
    id: raw.id,
    session: raw.session,
    device: raw.device,
    user: raw.user,
    role: raw.role,
    audience: raw.aud,
    expiresAt: raw.exp,
  } as TicketClaims;
  const text = new TextDecoder().decode(payload);
  if (raw.v !== VERSION || !validClaims(claims, options) || canonical(claims) !== text) {
    throw new TicketError("malformed");
  }
  return claims;
}

/**
 * Verifies `ticket`, checks it names `expected.session` and `expected.audience` and has not expired, then
 * redeems it exactly once. Refusals throw TicketError with a distinct `reason`; only a ticket that passes
 * every check is marked redeemed. `db` must have the ticket tables (loadTicketSecret creates them).
 */
export function redeemTicket(
  db: Database,
  secret: Uint8Array,
  ticket: string,
  expected: { session: string; audience: TicketAudience },
  now = Date.now(),
  options: TicketOptions = TICKET_DEFAULTS,
): TicketClaims {
  const claims = verifyTicket(secret, ticket, options);
  if (now >= claims.expiresAt) throw new TicketError("expired");
  if (claims.session !== expected.session) throw new TicketError("wrong-session");
  if (claims.audience !== expected.audience) throw new TicketError("wrong-audience");
  const inserted = db
    .query(
      `INSERT INTO redeemed_tickets (id, session, expires_at, redeemed_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (id) DO NOTHING`,
    )
    .run(claims.id, claims.session, claims.expiresAt, now).changes;
  if (inserted !== 1) throw new TicketError("already-redeemed");
  return claims;
}

/** Forgets redeemed ids whose tickets have expired (they are refused as expired anyway). */
export function pruneRedeemedTickets(db: Database, now = Date.now()): number {
  return db.query("DELETE FROM redeemed_tickets WHERE expires_at <= ?").run(now).changes;
}
