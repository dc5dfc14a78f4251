// Tests for relay/control/tickets.ts: the ticket format, every refusal reason, tampering, and exactly-once
// redemption — across two connections to one database file, and across two processes racing on it.

import type { Database } from "bun:sqlite";
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { openDatabase } from "../../relay/control/db.ts";
import { ControlError } from "../../relay/control/errors.ts";
import {
  issueTicket,
  loadTicketSecret,
  pruneRedeemedTickets,
  redeemTicket,
  TICKET_DEFAULTS,
  type TicketClaims,
  TicketError,
  type TicketRefusal,
  type TicketRequest,
  verifyTicket,
} from "../../relay/control/tickets.ts";
import { toBase64url } from "../../relay/gateway/protocol.ts";

const T0 = 1_700_000_000_000;
const SESSION = "5e55".repeat(8);
const DEVICE = "de71".repeat(8);
const REQUEST: TicketRequest = {
  session: SESSION,
  device: DEVICE,
  user: "alice",
  role: "operator",
  audience: "browser",
};
const FOR_BROWSER = { session: SESSION, audience: "browser" } as const;

/** The MAC input's domain prefix, written out here as the format's test vector. */
const DOMAIN = "shadowrelay-ticket-v1\n";

/** A ticket for `payload` that carries a correct MAC: what only a holder of the secret can make. */
function forge(secret: Uint8Array, payload: string): string {
  const bytes = new TextEncoder().encode(payload);
  const mac = hmac(sha256, secret, new Uint8Array([...new TextEncoder().encode(DOMAIN), ...bytes]));
  return `${toBase64url(bytes)}.${toBase64url(mac)}`;
}

function payloadOf(ticket: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(ticket.split(".")[0]!, "base64url").toString("utf8"));
}

function refusal(run: () => unknown): TicketError {
  try {
    run();
  } catch (e) {
    expect(e).toBeInstanceOf(TicketError);
    return e as TicketError;
  }
  throw new Error("expected a refusal, got success");
}

function expectRefused(run: () => unknown, reason: TicketRefusal): TicketError {
  const err = refusal(run);
  expect(err.reason).toBe(reason);
  return err;
}

let db: Database;
let secret: Uint8Array;

beforeEach(() => {
  db = openDatabase(":memory:");
  secret = loadTicketSecret(db, T0);
});
afterEach(() => db.close());

describe("ticket secret", () => {
  test("32 random bytes, created once per database and kept", () => {
    expect(secret.byteLength).toBe(32);
    expect(loadTicketSecret(db)).toEqual(secret);
    const other = openDatabase(":memory:");
    try {
      expect(loadTicketSecret(other)).not.toEqual(secret);
    } finally {
      other.close();
    }
  });

  test("two connections to one file load the same secret", () => {
    const dir = mkdtempSync(join(tmpdir(), "shadowrelay-secret-"));
    const a = openDatabase(dir);
    const b = openDatabase(dir);
    try {
      const first = loadTicketSecret(a);
      expect(loadTicketSecret(b)).toEqual(first);
      expect(a.query("SELECT count(*) AS n FROM ticket_secret").get()).toEqual({ n: 1 });
    } finally {
      a.close();
      b.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a key of the wrong size is refused", () => {
    expect(() => issueTicket(new Uint8Array(16), REQUEST, 60, T0)).toThrow("32 bytes");
    expect(() => verifyTicket(new Uint8Array(33), "a.b")).toThrow("32 bytes");
  });
});

describe("issue", () => {
  test("payload.mac, with the canonical claims in the payload", () => {
    const issued = issueTicket(secret, REQUEST, undefined, T0);
    expect(issued.expiresAt).toBe(T0 + TICKET_DEFAULTS.ttlSeconds * 1000);
    expect(issued.expiresAt).toBe(T0 + 60_000);
    expect(issued.id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(issued.ticket).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    const [payload, mac] = issued.ticket.split(".") as [string, string];
    expect(Buffer.from(payload, "base64url").toString()).toBe(
      `{"v":1,"id":"${issued.id}","session":"${SESSION}","device":"${DEVICE}","user":"alice",` +
        `"role":"operator","aud":"browser","exp":${T0 + 60_000}}`,
    );
    // The MAC is HMAC-SHA256 over the domain prefix and the payload, recomputed independently.
    const expected = new Bun.CryptoHasher("sha256", secret)
      .update(DOMAIN)
      .update(Buffer.from(payload, "base64url"))
      .digest("base64url");
    expect(mac).toBe(expected);
    expect(issueTicket(secret, REQUEST, undefined, T0).id).not.toBe(issued.id);
  });

  test("TTL and claims are checked", () => {
    for (const ttl of [0, -1, 0.5, TICKET_DEFAULTS.maxTtlSeconds + 1]) {
      expect(() => issueTicket(secret, REQUEST, ttl, T0)).toThrow(ControlError);
    }
    expect(issueTicket(secret, REQUEST, TICKET_DEFAULTS.maxTtlSeconds, T0).expiresAt).toBe(
      T0 + TICKET_DEFAULTS.maxTtlSeconds * 1000,
    );
    const bad: TicketRequest[] = [
      { ...REQUEST, session: "" },
      { ...REQUEST, user: "eve\nadmin" },
      { ...REQUEST, device: "d".repeat(TICKET_DEFAULTS.maxIdLength + 1) },
      { ...REQUEST, role: "root" as never },
      { ...REQUEST, audience: "cli" as never },
    ];
    for (const claims of bad) {
      const err = (() => {
        try {
          issueTicket(secret, claims, 60, T0);
        } catch (e) {
          return e as ControlError;
        }
        throw new Error("issued a ticket for bad claims");
      })();
      expect(err.code).toBe("BAD_REQUEST");
    }
  });
});

describe("redeem", () => {
  test("a fresh ticket redeems to its claims, once", () => {
    const issued = issueTicket(secret, REQUEST, 60, T0);
    const claims = redeemTicket(db, secret, issued.ticket, FOR_BROWSER, T0 + 1000);
    expect(claims).toEqual({ ...REQUEST, id: issued.id, expiresAt: issued.expiresAt } satisfies TicketClaims);
    const rows = db.query("SELECT id, session, expires_at FROM redeemed_tickets").all();
    expect(rows).toEqual([{ id: issued.id, session: SESSION, expires_at: issued.expiresAt }]);
    const err = expectRefused(
      () => redeemTicket(db, secret, issued.ticket, FOR_BROWSER, T0 + 2000),
      "already-redeemed",
    );
    expect(err.code).toBe("CONFLICT");
  });

  test("expired at the millisecond of expiry, not one before", () => {
    const a = issueTicket(secret, REQUEST, 60, T0);
    const b = issueTicket(secret, REQUEST, 60, T0);
    const err = expectRefused(() => redeemTicket(db, secret, a.ticket, FOR_BROWSER, T0 + 60_000), "expired");
    expect(err.code).toBe("GONE");
    expect(redeemTicket(db, secret, b.ticket, FOR_BROWSER, T0 + 59_999).id).toBe(b.id);
  });

  test("another session's ticket is refused, and stays redeemable for its own session", () => {
    const issued = issueTicket(secret, REQUEST, 60, T0);
    const err = expectRefused(
      () => redeemTicket(db, secret, issued.ticket, { session: "0".repeat(32), audience: "browser" }, T0),
      "wrong-session",
    );
    expect(err.code).toBe("FORBIDDEN");
    expect(redeemTicket(db, secret, issued.ticket, FOR_BROWSER, T0).session).toBe(SESSION);
  });

  test("a browser ticket is refused on the native path and the other way round", () => {
    const browser = issueTicket(secret, REQUEST, 60, T0);
    const native = issueTicket(secret, { ...REQUEST, audience: "native" }, 60, T0);
    const err = expectRefused(
      () => redeemTicket(db, secret, browser.ticket, { session: SESSION, audience: "native" }, T0),
      "wrong-audience",
    );
    expect(err.code).toBe("FORBIDDEN");
    expectRefused(() => redeemTicket(db, secret, native.ticket, FOR_BROWSER, T0), "wrong-audience");
    expect(
      redeemTicket(db, secret, native.ticket, { session: SESSION, audience: "native" }, T0).audience,
    ).toBe("native");
  });

  test("malformed tickets", () => {
    const good = issueTicket(secret, REQUEST, 60, T0).ticket;
    const [payload, mac] = good.split(".") as [string, string];
    const cases = [
      "",
      "no-dot",
      ".",
      `${payload}.`,
      `.${mac}`,
      `${payload}.${mac}.${mac}`,
      `${payload}=.${mac}`, // padding
      `${payload}.${mac}=`,
      `${payload.replace(/.$/, "*")}.${mac}`, // outside the alphabet
      `${payload}.${mac.slice(0, 42)}`, // MAC too short
      `${payload}.${mac}AA`, // MAC too long
      `${payload}.${toBase64url(new Uint8Array(31))}`,
      `${"A".repeat(TICKET_DEFAULTS.maxTicketLength)}.${mac}`, // over the length cap
      42 as unknown as string,
    ];
    for (const ticket of cases) {
      const err = expectRefused(() => redeemTicket(db, secret, ticket, FOR_BROWSER, T0), "malformed");
      expect(err.code).toBe("BAD_REQUEST");
    }
    // A second spelling of the same MAC (unused low bits of the last character set) is not accepted.
    const last = mac.at(-1)!;
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const sibling = alphabet[alphabet.indexOf(last) ^ 1]!;
    expectRefused(
      () => redeemTicket(db, secret, `${payload}.${mac.slice(0, -1)}${sibling}`, FOR_BROWSER, T0),
      "malformed",
    );
    expect(redeemTicket(db, secret, good, FOR_BROWSER, T0).session).toBe(SESSION);
  });

  test("a tampered payload or MAC, or another relay's secret, fails the MAC", () => {
    const issued = issueTicket(secret, REQUEST, 60, T0);
    const [payload, mac] = issued.ticket.split(".") as [string, string];
    const claims = payloadOf(issued.ticket);
    const promote = toBase64url(new TextEncoder().encode(JSON.stringify({ ...claims, role: "admin" })));
    const extend = toBase64url(new TextEncoder().encode(JSON.stringify({ ...claims, exp: T0 + 3_600_000 })));
    const flipped = toBase64url(Buffer.from(mac, "base64url").map((b, i) => (i === 0 ? b ^ 1 : b)));
    const otherRelay = issueTicket(crypto.getRandomValues(new Uint8Array(32)), REQUEST, 60, T0).ticket;
    for (const ticket of [`${promote}.${mac}`, `${extend}.${mac}`, `${payload}.${flipped}`, otherRelay]) {
      const err = expectRefused(() => redeemTicket(db, secret, ticket, FOR_BROWSER, T0), "bad-mac");
      expect(err.code).toBe("UNAUTHORIZED");
    }
    // Nothing was redeemed by the refusals; the genuine ticket still works once.
    expect(db.query("SELECT count(*) AS n FROM redeemed_tickets").get()).toEqual({ n: 0 });
    expect(redeemTicket(db, secret, issued.ticket, FOR_BROWSER, T0).id).toBe(issued.id);
  });

  test("a correctly MACed payload is still refused unless it is exactly the canonical form", () => {
    const base = payloadOf(issueTicket(secret, REQUEST, 60, T0).ticket);
    const variants = [
      JSON.stringify(base, null, 1), // whitespace
      JSON.stringify({ ...base, extra: true }), // an unknown claim
      JSON.stringify({ ...base, v: 2 }), // another version
      JSON.stringify({ aud: base.aud, ...base }), // another key order
      JSON.stringify({ ...base, exp: String(base.exp) }), // wrong type
      JSON.stringify({ ...base, role: "root" }),
      JSON.stringify({ ...base, id: "short" }),
      JSON.stringify([base]),
      "null",
      "{",
    ];
    for (const text of variants) {
      expectRefused(() => redeemTicket(db, secret, forge(secret, text), FOR_BROWSER, T0), "malformed");
    }
    // The control: the same forging with the canonical text is accepted, so the refusals above are real.
    expect(redeemTicket(db, secret, forge(secret, JSON.stringify(base)), FOR_BROWSER, T0).id).toBe(
      base.id as string,
    );
  });

  test("every refusal reason has its own code-and-message and serialises with its reason", () => {
    const reasons: TicketRefusal[] = [
      "malformed",
      "bad-mac",
      "expired",
      "wrong-session",
      "wrong-audience",
      "already-redeemed",
    ];
    const messages = reasons.map((r) => new TicketError(r).message);
    expect(new Set(messages).size).toBe(reasons.length);
    for (const r of reasons) {
      const e = new TicketError(r);
      expect(e).toBeInstanceOf(ControlError);
      expect(e.toJSON()).toEqual({ error: e.code, message: e.message, reason: r });
    }
  });

  test("pruning forgets only expired redemptions, and a pruned ticket is still refused", () => {
    const short = issueTicket(secret, REQUEST, 10, T0);
    const long = issueTicket(secret, REQUEST, 60, T0);
    redeemTicket(db, secret, short.ticket, FOR_BROWSER, T0);
    redeemTicket(db, secret, long.ticket, FOR_BROWSER, T0);
    expect(pruneRedeemedTickets(db, T0 + 9_999)).toBe(0);
    expect(pruneRedeemedTickets(db, T0 + 10_000)).toBe(1);
    expectRefused(() => redeemTicket(db, secret, short.ticket, FOR_BROWSER, T0 + 10_000), "expired");
    expectRefused(() => redeemTicket(db, secret, long.ticket, FOR_BROWSER, T0 + 10_000), "already-redeemed");
  });
});

describe("exactly once across connections", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "shadowrelay-tickets-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("two connections to one file: the first redemption wins, the second is refused", () => {
    const a = openDatabase(dir);
    const b = openDatabase(dir);
    try {
      const key = loadTicketSecret(a);
      expect(loadTicketSecret(b)).toEqual(key);
      const issued = issueTicket(key, REQUEST, 60, T0);
      const wins: string[] = [];
      const losses: TicketRefusal[] = [];
      for (const conn of [a, b, a]) {
        try {
          wins.push(redeemTicket(conn, key, issued.ticket, FOR_BROWSER, T0).id);
        } catch (e) {
          losses.push((e as TicketError).reason);
        }
      }
      expect(wins).toEqual([issued.id]);
      expect(losses).toEqual(["already-redeemed", "already-redeemed"]);
    } finally {
      a.close();
      b.close();
    }
  });

  test("two processes racing over the same tickets: each ticket is redeemed exactly once", async () => {
    const setup = openDatabase(dir);
    const count = 500;
    let tickets: string[];
    try {
      const key = loadTicketSecret(setup);
      tickets = Array.from({ length: count }, () => issueTicket(key, REQUEST, 600, Date.now()).ticket);
    } finally {
      setup.close();
    }
    const ticketsFile = join(dir, "tickets.json");
    writeFileSync(ticketsFile, JSON.stringify(tickets));
    const root = resolve(import.meta.dir, "../..");
    // Each racer opens its own connection, waits for a shared start time, and redeems every ticket.
    const script = `
      import { readFileSync } from "node:fs";
      import { openDatabase } from ${JSON.stringify(join(root, "relay/control/db.ts"))};
      import { loadTicketSecret, redeemTicket } from ${JSON.stringify(join(root, "relay/control/tickets.ts"))};
      const { RACE_DIR: dir, RACE_FILE: file, RACE_START: startAt } = process.env;
      const db = openDatabase(dir);
      const key = loadTicketSecret(db);
      const tickets = JSON.parse(readFileSync(file, "utf8"));
      while (Date.now() < Number(startAt)) {}
      const won = [];
      const lost = {};
      for (const t of tickets) {
        // A short pause outside the database between redemptions, so the other racer's retries get the
        // write lock in between (SQLite's busy handler sleeps ≥ 1 ms, and a tight loop would starve it).
        const until = performance.now() + 0.3;
        while (performance.now() < until) {}
        try { won.push(redeemTicket(db, key, t, { session: ${JSON.stringify(SESSION)}, audience: "browser" }).id); }
        catch (e) { lost[e.reason] = (lost[e.reason] ?? 0) + 1; }
      }
      db.close();
      console.log(JSON.stringify({ won, lost }));
    `;
    const startAt = String(Date.now() + 1500);
    const racers = [0, 1].map(() =>
      Bun.spawn([process.execPath, "-e", script], {
        cwd: root,
        env: { ...process.env, RACE_DIR: dir, RACE_FILE: ticketsFile, RACE_START: startAt },
        stdout: "pipe",
        stderr: "pipe",
      }),
    );
    const deadline = setTimeout(() => {
      for (const r of racers) r.kill();
    }, 15_000);
    try {
      const outputs = await Promise.all(
        racers.map(async (r) => {
          const [out, err, code] = await Promise.all([
            new Response(r.stdout).text(),
            new Response(r.stderr).text(),
            r.exited,
          ]);
          expect({ code, err }).toEqual({ code: 0, err: "" });
          return JSON.parse(out) as { won: string[]; lost: Record<string, number> };
        }),
      );
      const won = outputs.flatMap((o) => o.won);
      expect(won).toHaveLength(count);
      expect(new Set(won).size).toBe(count);
      for (const o of outputs) {
        expect(Object.keys(o.lost).filter((k) => k !== "already-redeemed")).toEqual([]);
        expect(o.won.length + (o.lost["already-redeemed"] ?? 0)).toBe(count);
      }
    } finally {
      clearTimeout(deadline);
      for (const r of racers) r.kill();
    }
  }, 20_000);
});
