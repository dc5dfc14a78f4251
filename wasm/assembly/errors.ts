// Result codes of the codec core's exports: every export returns an i32, ≥ 0 is a result (a count, a
// length), < 0 is one of these. Plain constants with no AssemblyScript-only syntax, so the host imports
// this same file (relay/codec/wasm-kernels.ts maps them to RfbError codes) and the numbers cannot drift.

/** Reserved for resumable parsers: the input ends before the unit does (noVNC rQwait, STYLE.md). */
export const E_NEED_MORE = -1;
/** Width or height outside 1…16384 (DESIGN.md "Limits"). Host: RfbError BAD_FRAMEBUFFER_SIZE. */
export const E_BAD_DIMENSIONS = -2;
/** The input does not fit its memory region (the 8 Mpx pixel budget). Host: RfbError LIMIT_EXCEEDED. */
export const E_TOO_LARGE = -3;
/** No memory region has this id. Host: a loader bug, RfbError INTERNAL. */
export const E_BAD_REGION = -4;
/** A rect (or CopyRect source) lies outside the framebuffer, checked per dimension. Host: RECT_OUT_OF_BOUNDS. */
export const E_OUT_OF_BOUNDS = -5;
/** The data ends before the rect is complete (a declared count or length needs more bytes). Host: BAD_RECT. */
export const E_TRUNCATED = -6;
/** Bytes are left over after the rect is complete (lengths must cover exactly the data). Host: BAD_RECT. */
export const E_TRAILING = -7;
/** Malformed rect data: a subrect outside its tile, an unknown subencoding, a run past the tile. Host: BAD_RECT. */
export const E_BAD_DATA = -8;
/** A palette index ≥ the palette size, or a palette size the encoding does not allow. Host: BAD_RECT. */
export const E_BAD_PALETTE = -9;
/** A pixel format the kernel cannot use (colour-mapped, bpp not 8/16/32). Host: BAD_PIXEL_FORMAT. */
export const E_BAD_FORMAT = -10;
/** A valid but refused feature (a Tight JPEG sub-rect: the relay never asks for lossy input). Host: UNSUPPORTED. */
export const E_UNSUPPORTED = -11;
