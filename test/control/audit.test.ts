// Tests for relay/control/audit.ts: the chain verifies after appends (one process, two connections, inside
// callers' transactions, across a reopen of a file database), and each kind of tampering (an edited payload,
// a deleted middle or last row, two swapped rows, a row re-hashed without fixing the next, a row added past
// the head, a rewrite of the whole chain against an anchor) makes verify() fail naming the right row.
// Tampering first drops the append-only triggers, as an attacker with the database file would.

import type { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";
import {
  AuditLog,
  type AuditPayload,
  auditRowHash,
  canonicalJson,
  GENESIS_HASH,
} from "../../relay/control/audit.ts";
import { openDatabase } from "../../relay/control/db.ts";
import { ControlError } from "../../relay/control/errors.ts";

const T0 = Date.parse("2025-03-01T10:00:00.000Z");

/** A log on a fresh in-memory database whose clock advances one second per append. */
function freshLog(): { db: Database; log: AuditLog } {
  const db = openDatabase(":memory:");
  let t = T0;
  const log = new AuditLog(db, {}, () => {
    t += 1000;
    return t;
  });
  return { db, log };
}

/** Appends n varied records: 1 … n. */
function fill(log: AuditLog, n: number): void {
  for (let i = 1; i <= n; i++) {
    log.append(i % 2 === 0 ? "session.start" : "login.failed", `user${i % 3}`, {
      device: `dev-${i}`,
      bytes: { up: i * 10, down: i * 1000 },
      role: "view",
    });
  }
}

/** Drops the append-only triggers, then runs the tampering SQL. */
function tamper(db: Database, sql: string, ...args: (string | number)[]): void {
  db.exec("DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete;");
  db.query(sql).run(...args);
}

interface RawRow {
  id: number;
  time: string;
  kind: string;
  actor: string;
  payload: string;
  prev_hash: string;
  hash: string;
}

function rawRow(db: Database, id: number): RawRow {
  const row = db.query<RawRow, [number]>("SELECT * FROM audit_log WHERE id = ?").get(id);
  if (row === null) throw new Error(`no row ${id}`);
  return row;
}

/** Replaces row `id`'s payload and recomputes that row's hash (but not the next row's prev_hash). */
function rehashWithPayload(db: Database, id: number, payload: AuditPayload): void {
  const row = rawRow(db, id);
  const hash = auditRowHash({ ...row, payload, prevHash: row.prev_hash });
  tamper(db, "UPDATE audit_log SET payload = ?, hash = ? WHERE id = ?", canonicalJson(payload), hash, id);
}

function expectBad(log: AuditLog, badId: number): string {
  const result = log.verify();
  if (result.ok) throw new Error(`verify() passed, expected a fault at row ${badId}`);
  expect(result.badId).toBe(badId);
  return result.reason;
}

describe("canonicalJson", () => {
  test("sorts keys at every level, drops undefined members, writes no whitespace", () => {
    expect(canonicalJson({ b: 1, a: { d: [1, "x", null], c: true }, u: undefined })).toBe(
      '{"a":{"c":true,"d":[1,"x",null]},"b":1}',
    );
    expect(canonicalJson({ z: Number.NaN, y: "é\n" })).toBe('{"y":"é\\n","z":null}');
  });

  test("the same data in another key order hashes the same", () => {
    const { log } = freshLog();
    const a = log.append("session.end", "system", { closeReason: "x", bytes: { down: 2, up: 1 } });
    const row = { ...a, payload: { bytes: { up: 1, down: 2 }, closeReason: "x" } };
    expect(auditRowHash(row)).toBe(a.hash);
    expect(auditRowHash({ ...row, payload: { bytes: { up: 1, down: 3 }, closeReason: "x" } })).not.toBe(
      a.hash,
    );
  });
});

describe("append and verify", () => {
  test("rows chain from the genesis hash, ids have no gaps, and the head follows the last row", () => {
    const { log } = freshLog();
    expect(log.verify()).toEqual({ ok: true, rows: 0, head: GENESIS_HASH });
    const first = log.append("enroll", "admin", { device: "d1", key: "ab".repeat(32) });
    const second = log.append("session.start", "alice", { device: "d1", mode: "pipe", role: "control" });
    expect(first.id).toBe(1);
    expect(first.prevHash).toBe(GENESIS_HASH);
    expect(first.time).toBe("2025-03-01T10:00:01.000Z");
    expect(second.id).toBe(2);
    expect(second.prevHash).toBe(first.hash);
    expect(log.head()).toEqual({ count: 2, hash: second.hash });
    expect(log.verify()).toEqual({ ok: true, rows: 2, head: second.hash });
  });

  test("the hash is SHA-256 over the prefixed canonical serialization of all other fields", () => {
    const { log } = freshLog();
    const r = log.append("ticket.refused", "device:abc", { reason: "replayed", jti: "j1" });
    const body =
      '{"actor":"device:abc","id":1,"kind":"ticket.refused","payload":{"jti":"j1","reason":"replayed"},' +
      `"prev_hash":"${GENESIS_HASH}","time":"2025-03-01T10:00:01.000Z"}`;
    expect(r.hash).toBe(bytesToHex(sha256(utf8ToBytes(`shadowrelay-audit-v1\n${body}`))));
  });

  test("the record function appends; payloads become plain JSON; bad kinds are refused", () => {
    const { log } = freshLog();
    log.record("session.end", "system", {
      bytes: 10n,
      at: new Date(T0),
      key: new Uint8Array(4),
      gone: undefined,
    });
    const [row] = log.list();
    expect(row?.payload).toEqual({ bytes: "10", at: "2025-03-01T10:00:00.000Z", key: "<4 bytes>" });
    for (const kind of ["", "Session.start", "session..end", "session.", "a b", "x".repeat(65)]) {
      expect(() => log.append(kind, "system")).toThrow(ControlError);
    }
    expect(log.verify()).toEqual({ ok: true, rows: 1, head: row!.hash });
  });

  test("an oversized payload is replaced by a stub naming its keys; long actors are cut", () => {
    const db = openDatabase(":memory:");
    const log = new AuditLog(db, { maxPayloadBytes: 100, maxActorChars: 8 });
    const r = log.append("session.end", "a-very-long-actor-name", { reason: "x".repeat(200), device: "d" });
    // {"device":"d","reason":"xx…x"}: 24 bytes before the 200 x, 2 after.
    expect(r.payload).toEqual({ truncated: true, bytes: 226, keys: ["device", "reason"] });
    expect(r.actor).toBe("a-very-l");
    expect(log.verify().ok).toBe(true);
  });

  test("the triggers refuse UPDATE and DELETE of rows", () => {
    const { db, log } = freshLog();
    fill(log, 3);
    expect(() => db.query("UPDATE audit_log SET actor = 'x' WHERE id = 2").run()).toThrow(/append-only/);
    expect(() => db.query("DELETE FROM audit_log WHERE id = 3").run()).toThrow(/append-only/);
    expect(() => db.query("DELETE FROM audit_head").run()).toThrow(/cannot be deleted/);
    expect(log.verify()).toMatchObject({ ok: true, rows: 3 });
  });

  test("appends inside a caller's transaction that rolls back leave the chain and head untouched", () => {
    const { db, log } = freshLog();
    fill(log, 2);
    const before = log.head();
    expect(() =>
      db.transaction(() => {
        log.append("session.start", "bob", {});
        throw new Error("caller failed");
      })(),
    ).toThrow("caller failed");
    expect(log.head()).toEqual(before);
    const next = log.append("session.start", "bob", {});
    expect(next.id).toBe(3);
    expect(log.verify()).toMatchObject({ ok: true, rows: 3 });
  });

  test("concurrent appends from async tasks and from two log instances chain correctly", async () => {
    const { db, log } = freshLog();
    const other = new AuditLog(db);
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        await Bun.sleep(i % 3);
        (i % 2 === 0 ? log : other).append("session.start", `u${i}`, { i });
      }),
    );
    expect(log.verify()).toMatchObject({ ok: true, rows: 40 });
    const ids = log.list({ limit: 1000 }).map((r) => r.payload.i);
    expect(new Set(ids).size).toBe(40);
  });
});

describe("tampering is detected at the right row", () => {
  test("an edited payload (hash left as it was)", () => {
    const { db, log } = freshLog();
    fill(log, 6);
    tamper(db, "UPDATE audit_log SET payload = ? WHERE id = 4", canonicalJson({ device: "other" }));
    expect(expectBad(log, 4)).toMatch(/does not match its hash/);
  });

  test("an edited time, kind or actor", () => {
    for (const column of ["time", "kind", "actor"]) {
      const { db, log } = freshLog();
      fill(log, 5);
      tamper(
        db,
        `UPDATE audit_log SET ${column} = ? WHERE id = 2`,
        column === "time" ? "2025-03-01T09:00:00.000Z" : "x",
      );
      expectBad(log, 2);
    }
  });

  test("a payload rewritten in non-canonical form", () => {
    const { db, log } = freshLog();
    fill(log, 3);
    const row = rawRow(db, 2);
    tamper(
      db,
      "UPDATE audit_log SET payload = ? WHERE id = 2",
      JSON.stringify(JSON.parse(row.payload), null, 1),
    );
    expect(expectBad(log, 2)).toMatch(/canonical/);
  });

  test("a deleted middle row", () => {
    const { db, log } = freshLog();
    fill(log, 6);
    tamper(db, "DELETE FROM audit_log WHERE id = 3");
    expect(expectBad(log, 3)).toMatch(/row 3 is missing/);
  });

  test("a deleted first row", () => {
    const { db, log } = freshLog();
    fill(log, 3);
    tamper(db, "DELETE FROM audit_log WHERE id = 1");
    expectBad(log, 1);
  });

  test("the deleted last row, and the last two", () => {
    const { db, log } = freshLog();
    fill(log, 6);
    tamper(db, "DELETE FROM audit_log WHERE id = 6");
    expect(expectBad(log, 6)).toMatch(/missing/);
    tamper(db, "DELETE FROM audit_log WHERE id = 5");
    expect(expectBad(log, 5)).toMatch(/rows 5…6 are missing/);
  });

  test("two swapped rows", () => {
    const { db, log } = freshLog();
    fill(log, 6);
    db.exec("DROP TRIGGER audit_log_no_update");
    db.exec("UPDATE audit_log SET id = -2 WHERE id = 2");
    db.exec("UPDATE audit_log SET id = 2 WHERE id = 5");
    db.exec("UPDATE audit_log SET id = 5 WHERE id = -2");
    expect(expectBad(log, 2)).toMatch(/does not match its hash/);
  });

  test("a row re-hashed after its payload was edited, the next row left alone", () => {
    const { db, log } = freshLog();
    fill(log, 6);
    rehashWithPayload(db, 3, { device: "innocent" });
    expect(expectBad(log, 3)).toMatch(/row 3 was changed and re-hashed/);
  });

  test("the last row re-hashed: caught by the head", () => {
    const { db, log } = freshLog();
    fill(log, 4);
    rehashWithPayload(db, 4, { device: "innocent" });
    expect(expectBad(log, 4)).toMatch(/recorded head/);
  });

  test("a row added past the head with a correct chain link", () => {
    const { db, log } = freshLog();
    fill(log, 3);
    const last = rawRow(db, 3);
    const forged = {
      id: 4,
      time: last.time,
      kind: "login",
      actor: "mallory",
      payload: {},
      prevHash: last.hash,
    };
    db.query("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?)").run(
      4,
      forged.time,
      forged.kind,
      forged.actor,
      "{}",
      forged.prevHash,
      auditRowHash(forged),
    );
    expect(expectBad(log, 4)).toMatch(/past the recorded head/);
  });

  test("a whole chain rewritten with its head passes alone but fails against an earlier anchor", () => {
    const { db, log } = freshLog();
    fill(log, 5);
    const anchor = log.head();
    // Rewrite everything from row 2 on, chain and head included: only an outside anchor can see it.
    db.exec("DROP TRIGGER audit_log_no_update");
    let prevHash = rawRow(db, 1).hash;
    for (let id = 2; id <= 5; id++) {
      const row = rawRow(db, id);
      const payload = { device: "rewritten" };
      const hash = auditRowHash({ ...row, payload, prevHash });
      db.query("UPDATE audit_log SET payload = ?, prev_hash = ?, hash = ? WHERE id = ?").run(
        canonicalJson(payload),
        prevHash,
        hash,
        id,
      );
      prevHash = hash;
    }
    db.query("UPDATE audit_head SET hash = ? WHERE singleton = 1").run(prevHash);
    expect(log.verify().ok).toBe(true);
    const result = log.verify({ anchor });
    expect(result).toEqual({ ok: false, badId: 5, reason: "row does not match the anchored head" });
    expect(log.verify({ anchor: { count: 9, hash: anchor.hash } })).toMatchObject({ ok: false, badId: 6 });
  });
});

describe("list", () => {
  test("filters by kind, actor, time and id, pages both ways, bounds the limit", () => {
    const { log } = freshLog();
    fill(log, 10); // times 10:00:01 … 10:00:10; even ids are session.start
    expect(log.list({ kind: "session.start" }).map((r) => r.id)).toEqual([2, 4, 6, 8, 10]);
    expect(log.list({ actor: "user1" }).map((r) => r.id)).toEqual([1, 4, 7, 10]);
    expect(log.list({ since: "2025-03-01T10:00:03.000Z", until: T0 + 6000 }).map((r) => r.id)).toEqual([
      3, 4, 5,
    ]);
    expect(log.list({ afterId: 7 }).map((r) => r.id)).toEqual([8, 9, 10]);
    expect(log.list({ order: "desc", limit: 3 }).map((r) => r.id)).toEqual([10, 9, 8]);
    expect(log.list({ order: "desc", beforeId: 8, limit: 2 }).map((r) => r.id)).toEqual([7, 6]);
    expect(log.list({ kind: "session.start", afterId: 4, limit: 2 }).map((r) => r.id)).toEqual([6, 8]);
    const [row] = log.list({ afterId: 2, limit: 1 });
    expect(row?.payload).toEqual({ device: "dev-3", bytes: { up: 30, down: 3000 }, role: "view" });
    for (const bad of [{ limit: 0 }, { limit: 1001 }, { since: "yesterday" }, { afterId: -1 }]) {
      expect(() => log.list(bad)).toThrow(ControlError);
    }
  });
});

describe("file database", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  test("a chain written over two connections survives a reopen, verifies, and continues", () => {
    const dir = mkdtempSync(join(tmpdir(), "shadowrelay-audit-"));
    dirs.push(dir);
    const a = openDatabase(dir);
    const b = openDatabase(dir);
    const logA = new AuditLog(a);
    const logB = new AuditLog(b);
    for (let i = 0; i < 20; i++) (i % 2 === 0 ? logA : logB).append("session.start", `u${i}`, { i });
    const head = logA.head();
    a.close();
    b.close();

    const c = openDatabase(dir);
    const logC = new AuditLog(c);
    expect(logC.verify()).toEqual({ ok: true, rows: 20, head: head.hash });
    logC.append("session.end", "system", { closeReason: "device closed" });
    expect(logC.verify({ anchor: head })).toMatchObject({ ok: true, rows: 21 });
    tamper(c, "UPDATE audit_log SET actor = 'x' WHERE id = 11");
    expect(expectBad(logC, 11)).toMatch(/does not match its hash/);
    c.close();
  });
});
