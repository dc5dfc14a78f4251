// Result codes of the codec core's exports: every export returns an i32, ≥ 0 is a result (a count, a
// length), < 0 is one of these. Plain constants with no AssemblyScript-only syntax, so the host imports
// this same file (relay/codec/wasm-diff.ts maps them to RfbError codes) and the numbers cannot drift.

/** Reserved for resumable parsers: the input ends before the unit does (noVNC rQwait, STYLE.md). */
export const E_NEED_MORE = -1;
/** Width or height outside 1…16384 (DESIGN.md "Limits"). Host: RfbError BAD_FRAMEBUFFER_SIZE. */
export const E_BAD_DIMENSIONS = -2;
/** The input does not fit its memory region (the 8 Mpx pixel budget). Host: RfbError LIMIT_EXCEEDED. */
export const E_TOO_LARGE = -3;
/** No memory region has this id. Host: a loader bug, RfbError INTERNAL. */
export const E_BAD_REGION = -4;
