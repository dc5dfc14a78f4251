// Tests for relay/control/sessions.ts: the pending → active → ended state machine, what an ended record
// keeps, the refusals of every other transition, and listing.

import type { Database } from "bun:sqlite";
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { openDatabase } from "../../relay/control/db.ts";
import { ControlError } from "../../relay/control/errors.ts";
import { type NewSession, SESSION_DEFAULTS, SessionStore } from "../../relay/control/sessions.ts";

const T0 = 1_700_000_000_000;
const DEVICE = "de71".repeat(8);
const NEW: NewSession = { deviceId: DEVICE, user: "alice", role: "operator", mode: "pipe", viewOnly: true };

function refusal(run: () => unknown): ControlError {
  try {
    run();
  } catch (e) {
    expect(e).toBeInstanceOf(ControlError);
    return e as ControlError;
  }
  throw new Error("expected a refusal, got success");
}

let db: Database;
let store: SessionStore;

beforeEach(() => {
  db = openDatabase(":memory:");
  store = new SessionStore(db);
});
afterEach(() => db.close());

describe("state machine", () => {
  test("create → pending with zero bytes", () => {
    const s = store.create(NEW, T0);
    expect(s.id).toMatch(/^[0-9a-f]{32}$/);
    expect(s).toEqual({
      id: s.id,
      deviceId: DEVICE,
      user: "alice",
      role: "operator",
      mode: "pipe",
      viewOnly: true,
      state: "pending",
      createdAt: T0,
      bytesToDevice: 0,
      bytesFromDevice: 0,
    });
    expect(store.get(s.id)).toEqual(s);
    expect(store.create(NEW, T0).id).not.toBe(s.id);
  });

  test("pending → active → ended keeps when, why, by whom and the bytes each way", () => {
    const s = store.create({ ...NEW, viewOnly: false, role: "admin" }, T0);
    const active = store.activate(s.id, T0 + 500);
    expect(active.state).toBe("active");
    expect(active.startedAt).toBe(T0 + 500);
    const ended = store.end(
      s.id,
      { reason: "viewer closed", by: "viewer", bytesToDevice: 1234, bytesFromDevice: 9_876_543_210 },
      T0 + 60_000,
    );
    expect(ended).toEqual({
      ...active,
      state: "ended",
      endedAt: T0 + 60_000,
      endReason: "viewer closed",
      endedBy: "viewer",
      bytesToDevice: 1234,
      bytesFromDevice: 9_876_543_210, // beyond 32 bits: stored as a 64-bit integer
    });
    expect(store.get(s.id)).toEqual(ended);
  });

  test("pending → ended directly (nobody connected), with no start time", () => {
    const s = store.create(NEW, T0);
    const ended = store.end(s.id, { reason: "ticket expired unused", by: "relay" }, T0 + 61_000);
    expect(ended.state).toBe("ended");
    expect(ended.startedAt).toBeUndefined();
    expect(ended.bytesToDevice).toBe(0);
  });

  test("every other transition is a CONFLICT, and the first end's record stands", () => {
    const s = store.create(NEW, T0);
    store.activate(s.id, T0 + 1);
    expect(refusal(() => store.activate(s.id, T0 + 2)).code).toBe("CONFLICT");
    const first = store.end(
      s.id,
      { reason: "user ended shadowing", by: "device-user", bytesFromDevice: 7 },
      T0 + 3,
    );
    const again = refusal(() => store.end(s.id, { reason: "admin ended", by: "bob" }, T0 + 4));
    expect(again.code).toBe("CONFLICT");
    expect(again.message).toContain("ended");
    expect(refusal(() => store.activate(s.id, T0 + 5)).code).toBe("CONFLICT");
    expect(store.get(s.id)).toEqual(first);
  });

  test("unknown sessions are NOT_FOUND", () => {
    expect(store.get("nope")).toBeUndefined();
    expect(refusal(() => store.activate("nope", T0)).code).toBe("NOT_FOUND");
    expect(refusal(() => store.end("nope", { reason: "x", by: "y" }, T0)).code).toBe("NOT_FOUND");
  });

  test("bad byte counts are refused without ending the session", () => {
    const s = store.create(NEW, T0);
    for (const bytesToDevice of [-1, 1.5, Number.NaN, 2 ** 53]) {
      expect(refusal(() => store.end(s.id, { reason: "x", by: "y", bytesToDevice }, T0)).code).toBe(
        "BAD_REQUEST",
      );
    }
    expect(store.get(s.id)?.state).toBe("pending");
  });

  test("a long reason is cut to the limit rather than blocking the end", () => {
    const s = store.create(NEW, T0);
    const ended = store.end(s.id, { reason: "r".repeat(5000), by: "b".repeat(5000) }, T0);
    expect(ended.endReason).toHaveLength(SESSION_DEFAULTS.maxReasonLength);
    expect(ended.endedBy).toHaveLength(SESSION_DEFAULTS.maxReasonLength);
  });

  test("create refuses unknown modes and roles", () => {
    for (const bad of [
      { ...NEW, mode: "broadcast" as never }, // not until the broadcast engine exists
      { ...NEW, mode: "" as never },
      { ...NEW, role: "root" as never },
      { ...NEW, viewOnly: "yes" as never },
      { ...NEW, deviceId: "" },
      { ...NEW, user: "" },
    ]) {
      expect(refusal(() => store.create(bad, T0)).code).toBe("BAD_REQUEST");
    }
    expect(store.list()).toEqual([]);
  });

  test("endAllOpen ends what a previous run left open and leaves ended records alone", () => {
    const pending = store.create(NEW, T0);
    const active = store.create(NEW, T0 + 1);
    store.activate(active.id, T0 + 2);
    const done = store.create(NEW, T0 + 3);
    const doneRecord = store.end(done.id, { reason: "finished", by: "viewer" }, T0 + 4);
    expect(store.endAllOpen("relay restarted", "relay", T0 + 10)).toBe(2);
    for (const id of [pending.id, active.id]) {
      expect(store.get(id)).toMatchObject({
        state: "ended",
        endReason: "relay restarted",
        endedBy: "relay",
        endedAt: T0 + 10,
      });
    }
    expect(store.get(done.id)).toEqual(doneRecord);
    expect(store.endAllOpen("again", "relay", T0 + 20)).toBe(0);
  });
});

describe("list", () => {
  test("newest first; active means pending or active; by device; bounded", () => {
    const a = store.create(NEW, T0);
    const b = store.create({ ...NEW, deviceId: "other" }, T0 + 1);
    const c = store.create(NEW, T0 + 2);
    store.activate(b.id, T0 + 3);
    store.end(c.id, { reason: "x", by: "viewer" }, T0 + 4);
    expect(store.list().map((s) => s.id)).toEqual([c.id, b.id, a.id]);
    expect(store.list({ active: true }).map((s) => s.id)).toEqual([b.id, a.id]);
    expect(store.list({ active: false }).map((s) => s.id)).toEqual([c.id]);
    expect(store.list({ deviceId: DEVICE }).map((s) => s.id)).toEqual([c.id, a.id]);
    expect(store.list({ deviceId: DEVICE, active: true }).map((s) => s.id)).toEqual([a.id]);
    expect(store.list({ limit: 1 }).map((s) => s.id)).toEqual([c.id]);
    const small = new SessionStore(db, { listLimit: 2 });
    expect(small.list({ limit: 100 })).toHaveLength(2);
  });
});
