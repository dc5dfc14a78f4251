// Reconnect delays for the agent's control connection: exponential back-off with "full jitter" (each delay
// uniform in [0, min(cap, base·factor^attempt)), as in AWS's "Exponential Backoff and Jitter"), so that a
// relay restart does not bring every agent back at the same instant (the thundering herd Teleport warns of,
// bad-inputs.md §1). Reset after a connection that lived; the random source is injectable for tests.

export const BACKOFF_DEFAULTS = Object.freeze({
  /** First ceiling, ms. @default 1000 */
  baseMs: 1_000,
  /** Largest ceiling, ms. @default 60000 */
  capMs: 60_000,
  /** Growth of the ceiling per attempt. @default 2 */
  factor: 2,
});

export interface BackoffOptions {
  /** @default BACKOFF_DEFAULTS.baseMs */
  baseMs?: number;
  /** @default BACKOFF_DEFAULTS.capMs */
  capMs?: number;
  /** @default BACKOFF_DEFAULTS.factor */
  factor?: number;
  /** Uniform in [0, 1). @default Math.random (jitter needs spread, not secrecy) */
  random?: () => number;
}

export class Backoff {
  readonly baseMs: number;
  readonly capMs: number;
  readonly factor: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(o: BackoffOptions = {}) {
    this.baseMs = o.baseMs ?? BACKOFF_DEFAULTS.baseMs;
    this.capMs = o.capMs ?? BACKOFF_DEFAULTS.capMs;
    this.factor = o.factor ?? BACKOFF_DEFAULTS.factor;
    this.#random = o.random ?? Math.random;
    if (!(Number.isFinite(this.baseMs) && this.baseMs > 0)) throw new RangeError(`baseMs ${this.baseMs}`);
    if (!(Number.isFinite(this.capMs) && this.capMs >= this.baseMs))
      throw new RangeError(`capMs ${this.capMs}`);
    if (!(Number.isFinite(this.factor) && this.factor >= 1)) throw new RangeError(`factor ${this.factor}`);
  }

  /** Delays handed out since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The ceiling of the next delay: min(cap, base·factor^attempt), never NaN or Infinity. */
  ceiling(attempt = this.#attempt): number {
    const c = this.baseMs * this.factor ** attempt;
    return Number.isFinite(c) ? Math.min(this.capMs, c) : this.capMs;
  }

  /** The next delay in whole ms, in [0, ceiling); advances the attempt. */
  next(): number {
    const r = this.#random();
    // A source outside [0, 1) would break the bound; clamp rather than trust it.
    const u = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1 - Number.EPSILON) : 0;
    const delay = Math.floor(u * this.ceiling());
    this.#attempt++;
    return delay;
  }

  /** Back to the first ceiling (after a connection that was accepted and stayed up). */
  reset(): void {
    this.#attempt = 0;
  }
}
