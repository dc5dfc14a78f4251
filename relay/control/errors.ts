// Coded errors of the control plane (users, devices, sessions, tickets, audit), the HTTP counterpart of
// relay/rfb/errors.ts: every control module throws ControlError(code, message) and the API layer maps it
// once to a status and a JSON body. The message is shown to the caller, so it never carries secrets,
// password material, tokens or stack traces; anything else thrown becomes INTERNAL with a generic text.

/** HTTP status per code. */
export const CONTROL_ERROR_STATUS = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  GONE: 410,
  /** Throttled: too many failures or attempts; `retryAfterMs` says when to try again (Retry-After). */
  LOCKED: 429,
  INTERNAL: 500,
  /** Temporarily unable (overloaded, device offline); may carry `retryAfterMs`. */
  UNAVAILABLE: 503,
} as const;

export type ControlErrorCode = keyof typeof CONTROL_ERROR_STATUS;

/** The JSON body an API response carries for a ControlError. */
export interface ControlErrorBody {
  error: ControlErrorCode;
  message: string;
  retryAfterMs?: number;
}

export class ControlError extends Error {
  readonly code: ControlErrorCode;
  /** HTTP status for this error. */
  readonly status: number;
  /** For LOCKED and UNAVAILABLE: milliseconds until a retry can succeed (HTTP Retry-After, rounded up). */
  readonly retryAfterMs: number | undefined;

  /** `message` is shown to the caller: never put secrets or peer-supplied bytes in it. */
  constructor(code: ControlErrorCode, message: string, options?: { retryAfterMs?: number }) {
    super(message);
    this.name = "ControlError";
    this.code = code;
    this.status = CONTROL_ERROR_STATUS[code];
    this.retryAfterMs = options?.retryAfterMs;
  }

  toJSON(): ControlErrorBody {
    const body: ControlErrorBody = { error: this.code, message: this.message };
    if (this.retryAfterMs !== undefined) body.retryAfterMs = this.retryAfterMs;
    return body;
  }
}

/** Anything thrown in a control handler as a ControlError; unknown throws become INTERNAL (log the original). */
export function toControlError(e: unknown): ControlError {
  if (e instanceof ControlError) return e;
  return new ControlError("INTERNAL", "internal error");
}
