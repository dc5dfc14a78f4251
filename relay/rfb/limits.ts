// Protocol limits (DESIGN.md "Limits"; caps and their sources in shared/reference/bad-inputs.md
// Appendix B). Each is enforced before anything is allocated; a breach is a coded error that closes
// only the session it happened in.

export interface RfbLimits {
  /** Largest framebuffer side, either axis. @default 16384 (TigerVNC maxPixelBufferWidth/Height) */
  maxFramebufferSide: number;
  /** Pixel budget of one framebuffer, w*h. @default 8_388_608 (8 Mpx: 4096×2048, 32 MiB at 4 B/px) */
  maxFramebufferPixels: number;
  /** Largest cursor side. @default 256 (TigerVNC maxCursorSize) */
  maxCursorSide: number;
  /** Cut text, either direction, in bytes. @default 262144 (TigerVNC MaxCutText) */
  maxCutText: number;
  /** Desktop names, failure reasons and other strings, in bytes. @default 1024 */
  maxString: number;
  /** Entries in one SetEncodings message. @default 64 */
  maxEncodings: number;
  /** Fence payload in bytes. @default 64 (rfbproto.rst "ClientFence"; TurboVNC CVE-2019-15683) */
  maxFence: number;
  /** Screens in one ExtendedDesktopSize / SetDesktopSize. @default 16 */
  maxScreens: number;
  /** Bytes buffered from one peer that are not yet a whole message. @default 48 MiB (a full Raw rect at the pixel budget plus headroom) */
  maxPendingBytes: number;
  /** Milliseconds from connect to the end of the handshake. @default 30000 */
  handshakeTimeoutMs: number;
  /**
   * Rects in one FramebufferUpdate, LastRect-terminated streams included (which could otherwise never
   * end). @default 65535 (the U16 count; bad-inputs.md B "number-of-rectangles")
   */
  maxUpdateRects: number;
  /**
   * Pixels covered by the rects of one FramebufferUpdate, summed: the decode work budget of one update.
   * @default 33554432 (4 × the framebuffer pixel budget: a full frame with room for overlapping copies)
   */
  maxUpdatePixels: number;
}

export const DEFAULT_LIMITS: Readonly<RfbLimits> = Object.freeze({
  maxFramebufferSide: 16384,
  maxFramebufferPixels: 8 * 1024 * 1024,
  maxCursorSide: 256,
  maxCutText: 256 * 1024,
  maxString: 1024,
  maxEncodings: 64,
  maxFence: 64,
  maxScreens: 16,
  maxPendingBytes: 48 * 1024 * 1024,
  handshakeTimeoutMs: 30_000,
  maxUpdateRects: 65535,
  maxUpdatePixels: 4 * 8 * 1024 * 1024,
});

/** Defaults with overrides applied; an override that is undefined keeps the default, a bad one throws. */
export function limitsWith(overrides?: Partial<RfbLimits>): RfbLimits {
  const out: RfbLimits = { ...DEFAULT_LIMITS };
  for (const [k, v] of Object.entries(overrides ?? {}) as [keyof RfbLimits, number | undefined][]) {
    if (v === undefined) continue;
    if (!(k in DEFAULT_LIMITS)) throw new RangeError(`unknown limit ${k}`);
    if (!Number.isSafeInteger(v) || v < 0)
      throw new RangeError(`limit ${k} must be a non-negative integer, got ${v}`);
    out[k] = v;
  }
  return out;
}
