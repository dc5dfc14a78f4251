// The relay's embedded state: one bun:sqlite database in the data directory (DESIGN.md "Control plane").
// This file only opens it with the pragmas every module relies on; each module of relay/control/ owns its
// tables and creates them itself (`ensure…Schema(db)`), so modules can be tested on an in-memory database
// alone. WAL + NORMAL sync: the audit chain and tickets survive a process crash (not a power cut).

import { Database } from "bun:sqlite";
import { join } from "node:path";

/** Opens (creating) `<dataDir>/relay.db`, or an in-memory database for tests when dataDir is ":memory:". */
export function openDatabase(dataDir: string): Database {
  const db = new Database(dataDir === ":memory:" ? ":memory:" : join(dataDir, "relay.db"), {
    create: true,
    strict: true,
  });
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = NORMAL");
  db.exec("PRAGMA foreign_keys = ON");
  db.exec("PRAGMA busy_timeout = 5000");
  return db;
}
