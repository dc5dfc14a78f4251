// Session records (DESIGN.md "Control plane / Sessions"): who shadows which device, how, and how it ended.
// A record moves pending → active → ended (or pending → ended when nobody ever connected). Each transition
// is one UPDATE guarded by the state it leaves, so two parties ending one session at once (the device user
// and an admin) cannot both succeed: the second gets CONFLICT and the first one's reason stands.
// Live state (sockets, viewers, the control lease) belongs to the session engine, not to this table.

import type { Database } from "bun:sqlite";
import { bytesToHex, randomBytes } from "@noble/hashes/utils.js";
import { ControlError } from "./errors.ts";

export const SESSION_DEFAULTS = {
  /** Longest end reason / ended-by text kept; longer ones are cut (a reason must never block the end). @default 1024 */
  maxReasonLength: 1024,
  /** Most records `list` returns. @default 1000 */
  listLimit: 1000,
};

export type SessionOptions = typeof SESSION_DEFAULTS;

export type UserRole = "admin" | "operator";

/** Session engines available (DESIGN.md "Session engines"); the broadcast issue adds "broadcast". */
export const SESSION_MODES = ["pipe"] as const;
export type SessionMode = (typeof SESSION_MODES)[number];

export type SessionState = "pending" | "active" | "ended";

export interface SessionRecord {
  /** 128 random bits, lowercase hex. */
  id: string;
  deviceId: string;
  /** The user who created the session. */
  user: string;
  role: UserRole;
  mode: SessionMode;
  viewOnly: boolean;
  state: SessionState;
  /** Milliseconds since the epoch. */
  createdAt: number;
  /** When it became active. */
  startedAt?: number;
  endedAt?: number;
  endReason?: string;
  /** "viewer", "device-user", "relay", an admin's name, … */
  endedBy?: string;
  bytesToDevice: number;
  bytesFromDevice: number;
}

export interface NewSession {
  deviceId: string;
  user: string;
  role: UserRole;
  mode: SessionMode;
  viewOnly: boolean;
}

export interface SessionEnd {
  reason: string;
  by: string;
  /** Viewer → device bytes over the whole session. @default 0 */
  bytesToDevice?: number;
  /** Device → viewer(s) bytes over the whole session. @default 0 */
  bytesFromDevice?: number;
}

/** Creates the session table if it does not exist. */
export function ensureSessionSchema(db: Database): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS sessions (
      id TEXT PRIMARY KEY,
      device_id TEXT NOT NULL,             -- no foreign key: records outlive deleted devices
      user TEXT NOT NULL,
      role TEXT NOT NULL CHECK (role IN ('admin', 'operator')),
      mode TEXT NOT NULL,
      view_only INTEGER NOT NULL CHECK (view_only IN (0, 1)),
      state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'ended')),
      created_at INTEGER NOT NULL,
      started_at INTEGER,
      ended_at INTEGER,
      end_reason TEXT,
      ended_by TEXT,
      bytes_to_device INTEGER NOT NULL DEFAULT 0,
      bytes_from_device INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS sessions_open ON sessions (state) WHERE state <> 'ended';
  `);
}

interface SessionRow {
  id: string;
  device_id: string;
  user: string;
  role: UserRole;
  mode: SessionMode;
  view_only: number;
  state: SessionState;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
  end_reason: string | null;
  ended_by: string | null;
  bytes_to_device: number;
  bytes_from_device: number;
}

function toRecord(row: SessionRow): SessionRecord {
  const record: SessionRecord = {
    id: row.id,
    deviceId: row.device_id,
    user: row.user,
    role: row.role,
    mode: row.mode,
    viewOnly: row.view_only === 1,
    state: row.state,
    createdAt: row.created_at,
    bytesToDevice: row.bytes_to_device,
    bytesFromDevice: row.bytes_from_device,
  };
  if (row.started_at !== null) record.startedAt = row.started_at;
  if (row.ended_at !== null) record.endedAt = row.ended_at;
  if (row.end_reason !== null) record.endReason = row.end_reason;
  if (row.ended_by !== null) record.endedBy = row.ended_by;
  return record;
}

function byteCount(n: number | undefined, what: string): number {
  const value = n ?? 0;
  if (!Number.isSafeInteger(value) || value < 0) throw new ControlError("BAD_REQUEST", `bad ${what}`);
  return value;
}

export class SessionStore {
  readonly options: SessionOptions;

  constructor(
    private readonly db: Database,
    options: Partial<SessionOptions> = {},
  ) {
    this.options = { ...SESSION_DEFAULTS, ...options };
    ensureSessionSchema(db);
  }

  create(input: NewSession, now = Date.now()): SessionRecord {
    if (!(SESSION_MODES as readonly string[]).includes(input.mode)) {
      throw new ControlError("BAD_REQUEST", `unknown session mode; one of: ${SESSION_MODES.join(", ")}`);
    }
    if (input.role !== "admin" && input.role !== "operator") {
      throw new ControlError("BAD_REQUEST", "unknown role");
    }
    if (typeof input.viewOnly !== "boolean")
      throw new ControlError("BAD_REQUEST", "viewOnly must be boolean");
    for (const [what, value] of [
      ["deviceId", input.deviceId],
      ["user", input.user],
    ] as const) {
      if (typeof value !== "string" || value.length === 0 || value.length > this.options.maxReasonLength) {
        throw new ControlError("BAD_REQUEST", `bad ${what}`);
      }
    }
    const id = bytesToHex(randomBytes(16));
    this.db
      .query(
        `INSERT INTO sessions (id, device_id, user, role, mode, view_only, state, created_at)
         VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)`,
      )
      .run(id, input.deviceId, input.user, input.role, input.mode, input.viewOnly ? 1 : 0, now);
    return this.get(id)!;
  }

  get(id: string): SessionRecord | undefined {
    const row = this.db.query<SessionRow, [string]>("SELECT * FROM sessions WHERE id = ?").get(id);
    return row === null ? undefined : toRecord(row);
  }

  /** Newest first. `active: true` → pending and active ones; `false` → ended ones; absent → all. */
  list(filter: { active?: boolean; deviceId?: string; limit?: number } = {}): SessionRecord[] {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (filter.active !== undefined) where.push(filter.active ? "state <> 'ended'" : "state = 'ended'");
    if (filter.deviceId !== undefined) {
      where.push("device_id = ?");
      params.push(filter.deviceId);
    }
    const limit = Math.max(0, Math.min(filter.limit ?? this.options.listLimit, this.options.listLimit));
    params.push(limit);
    const sql = `SELECT * FROM sessions ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
                 ORDER BY created_at DESC, id LIMIT ?`;
    return this.db
      .query<SessionRow, (string | number)[]>(sql)
      .all(...params)
      .map(toRecord);
  }

  /** pending → active. NOT_FOUND, or CONFLICT when it is not pending. */
  activate(id: string, now = Date.now()): SessionRecord {
    const changed = this.db
      .query("UPDATE sessions SET state = 'active', started_at = ? WHERE id = ? AND state = 'pending'")
      .run(now, id).changes;
    if (changed !== 1) this.refuseTransition(id, "activate");
    return this.get(id)!;
  }

  /** pending | active → ended. NOT_FOUND, or CONFLICT when it has already ended. */
  end(id: string, end: SessionEnd, now = Date.now()): SessionRecord {
    const toDevice = byteCount(end.bytesToDevice, "bytesToDevice");
    const fromDevice = byteCount(end.bytesFromDevice, "bytesFromDevice");
    const max = this.options.maxReasonLength;
    const changed = this.db
      .query(
        `UPDATE sessions SET state = 'ended', ended_at = ?, end_reason = ?, ended_by = ?,
                bytes_to_device = ?, bytes_from_device = ?
         WHERE id = ? AND state <> 'ended'`,
      )
      .run(now, end.reason.slice(0, max), end.by.slice(0, max), toDevice, fromDevice, id).changes;
    if (changed !== 1) this.refuseTransition(id, "end");
    return this.get(id)!;
  }

  /**
   * Ends every pending or active session, e.g. at start-up for records a crashed relay left open.
   * Returns how many were ended.
   */
  endAllOpen(reason: string, by: string, now = Date.now()): number {
    const max = this.options.maxReasonLength;
    return this.db
      .query(
        "UPDATE sessions SET state = 'ended', ended_at = ?, end_reason = ?, ended_by = ? WHERE state <> 'ended'",
      )
      .run(now, reason.slice(0, max), by.slice(0, max)).changes;
  }

  private refuseTransition(id: string, what: "activate" | "end"): never {
    const current = this.get(id);
    if (current === undefined) throw new ControlError("NOT_FOUND", "no such session");
    throw new ControlError("CONFLICT", `cannot ${what} a session that is ${current.state}`);
  }
}
