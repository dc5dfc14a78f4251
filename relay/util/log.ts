// The one logger of the relay (STYLE.md "Tooling"): JSON lines on stderr, {t, level, msg, ...fields},
// gated by level. A call below the level returns after one integer compare, so `log.debug` may sit on hot
// paths; when building the fields is itself expensive, guard the call with `log.enabled("debug")`.
// Logging must never take the relay down, so nothing here throws: fields that cannot be serialized are
// replaced, and a failing stderr write is dropped.

export type LogLevel = "debug" | "info" | "warn" | "error";

/** `silent` turns logging off (tests, `--quiet` style use). */
export type LogThreshold = LogLevel | "silent";

export type LogFields = Record<string, unknown>;

/** Where finished lines go; stderr by default, replaceable for tests. */
export type LogSink = (line: string) => void;

const RANK: Readonly<Record<LogThreshold, number>> = {
  debug: 10,
  info: 20,
  warn: 30,
  error: 40,
  silent: 100,
};

/** Keys the logger writes itself; a field with one of these names is renamed, never allowed to overwrite. */
const RESERVED = new Set(["t", "level", "msg"]);

function isThreshold(value: string): value is LogThreshold {
  return Object.hasOwn(RANK, value);
}

/** The threshold named by `value` (case-insensitive), or `fallback` when it names none. */
export function parseLogLevel(value: string | undefined, fallback: LogThreshold = "info"): LogThreshold {
  const v = value?.trim().toLowerCase();
  if (v === undefined || v === "") return fallback;
  if (v === "off" || v === "none") return "silent";
  return isThreshold(v) ? v : fallback;
}

function stderrSink(line: string): void {
  process.stderr.write(line);
}

// Errors serialize to {} through JSON.stringify; keep what an operator needs to act on.
function errorToJson(err: Error): Record<string, unknown> {
  const out: Record<string, unknown> = { name: err.name, message: err.message };
  const code = (err as { code?: unknown }).code;
  if (code !== undefined) out.code = code;
  if (err.stack !== undefined) out.stack = err.stack;
  if (err.cause !== undefined) out.cause = err.cause instanceof Error ? errorToJson(err.cause) : err.cause;
  return out;
}

function replacer(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Error) return errorToJson(value);
  // Byte buffers would print as {"0":…,"1":…}; their length is what a log reader needs.
  if (value instanceof Uint8Array) return `<${value.byteLength} bytes>`;
  if (value instanceof ArrayBuffer) return `<${value.byteLength} bytes>`;
  return value;
}

/** One JSON line (with the trailing newline); never throws. */
export function formatLine(level: LogLevel, msg: string, fields: LogFields | undefined, now: number): string {
  const record: Record<string, unknown> = { t: new Date(now).toISOString(), level, msg };
  if (fields !== undefined) {
    for (const key of Object.keys(fields)) {
      record[RESERVED.has(key) ? `field_${key}` : key] = fields[key];
    }
  }
  try {
    return `${JSON.stringify(record, replacer)}\n`;
  } catch (err) {
    // A cycle or a throwing getter in the fields: keep the message, say why the fields are gone.
    const reason = err instanceof Error ? err.message : String(err);
    return `${JSON.stringify({ t: record.t, level, msg, logError: `fields not serializable: ${reason}` })}\n`;
  }
}

export interface LoggerOptions {
  /** Threshold; default from the environment variable SHADOWRELAY_LOG, else `info`. */
  level?: LogThreshold;
  sink?: LogSink;
  /** Clock for the `t` field, ms since the epoch; replaceable for tests. */
  now?: () => number;
}

export class Logger {
  #min: number;
  #level: LogThreshold;
  #sink: LogSink;
  #now: () => number;

  constructor(options: LoggerOptions = {}) {
    this.#level = options.level ?? parseLogLevel(process.env.SHADOWRELAY_LOG);
    this.#min = RANK[this.#level];
    this.#sink = options.sink ?? stderrSink;
    this.#now = options.now ?? Date.now;
  }

  get level(): LogThreshold {
    return this.#level;
  }

  setLevel(level: LogThreshold): void {
    this.#level = level;
    this.#min = RANK[level];
  }

  /** Replace the sink (tests capture lines); returns the previous one so it can be put back. */
  setSink(sink: LogSink): LogSink {
    const previous = this.#sink;
    this.#sink = sink;
    return previous;
  }

  /** Whether a call at `level` would write; guard expensive field construction with it. */
  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.#min;
  }

  debug(msg: string, fields?: LogFields): void {
    if (RANK.debug < this.#min) return;
    this.#write("debug", msg, fields);
  }

  info(msg: string, fields?: LogFields): void {
    if (RANK.info < this.#min) return;
    this.#write("info", msg, fields);
  }

  warn(msg: string, fields?: LogFields): void {
    if (RANK.warn < this.#min) return;
    this.#write("warn", msg, fields);
  }

  error(msg: string, fields?: LogFields): void {
    if (RANK.error < this.#min) return;
    this.#write("error", msg, fields);
  }

  #write(level: LogLevel, msg: string, fields: LogFields | undefined): void {
    try {
      this.#sink(formatLine(level, msg, fields, this.#now()));
    } catch {
      // stderr closed or the sink failed: there is nowhere left to report it, and logging must not throw.
    }
  }
}

/** The process-wide logger. */
export const log = new Logger();
