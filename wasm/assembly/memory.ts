// The codec core's static memory map: named regions at fixed, 64 KiB-aligned offsets, laid out one after
// the other. The host reads each region's offset and size through regionPtr / regionSize (index.ts) and
// never hard-codes them; it imports only the region ids below. Plain constants with no
// AssemblyScript-only syntax, so the host can import the ids from this same file.
//
//   [0, 64 KiB)              guard: never used, a stray write through a null pointer lands here
//   FB_A       32 MiB        the session framebuffer at the pixel budget: 8 Mpx × 4 B (relay/rfb/limits.ts);
//                            decoders write here, encoders read here
//   FB_B       32 MiB        the previous frame: compare-on-write diffs FB_A against it, then copies forward
//   IN         33 MiB        decoder input: one rect body (or its inflated data), at most a Raw rect at the
//                            pixel budget (32 MiB) plus slack for per-tile headers
//   OUT        33 MiB        encoder output: one rect body before zlib, worst case Raw or Hextile's raw
//                            tiles at the pixel budget plus one mask byte per tile
//   BLOCK_MAP  64 KiB        one byte per 64×64 block: (16384 / 64)² = 65 536 blocks at the side limit
//   SCRATCH    1 MiB         rect list: 16 B (x, y, w, h as u32) per block, one rect per changed block
//   WORK       1 MiB         kernel scratch: palettes, hash tables, row buffers (each kernel documents its use)
//   PF_LUT     512 KiB       pixel-format tables: input pixel → canonical for 8/16 bpp (65 536 × u32),
//                            output channel tables canonical → viewer bits (3 × 256 × u32)
//   REGIONS_END = 139 067 392 B = 2122 pages; static data and the stub heap start here (asconfig memoryBase)

export const REGION_FB_A = 0;
export const REGION_FB_B = 1;
export const REGION_BLOCK_MAP = 2;
export const REGION_SCRATCH = 3;
export const REGION_IN = 4;
export const REGION_OUT = 5;
export const REGION_WORK = 6;
export const REGION_PF_LUT = 7;
export const REGION_COUNT = 8;

/** Largest framebuffer side (DESIGN.md "Limits", TigerVNC maxPixelBufferWidth). */
export const MAX_SIDE = 16384;
/** Pixel budget of one framebuffer: relay/rfb/limits.ts maxFramebufferPixels. */
export const MAX_PIXELS = 8 * 1024 * 1024;
/** Canonical framebuffer pixels are R,G,B,X: 4 bytes (relay/rfb/pixel-format.ts CANONICAL_FORMAT). */
export const BYTES_PER_PIXEL = 4;
/** Diff block side, as TigerVNC ComparingUpdateTracker (rfb-codecs.md §5). */
export const BLOCK_SIZE = 64;
/** One rect in SCRATCH: x, y, w, h as u32. */
export const RECT_BYTES = 16;

export const PAGE_SIZE = 65536;
export const GUARD_SIZE = PAGE_SIZE;

export const FB_SIZE = MAX_PIXELS * BYTES_PER_PIXEL;
export const IO_SIZE = FB_SIZE + 1024 * 1024;
export const FB_A_PTR = GUARD_SIZE;
export const FB_B_PTR = FB_A_PTR + FB_SIZE;
export const IN_PTR = FB_B_PTR + FB_SIZE;
export const IN_SIZE = IO_SIZE;
export const OUT_PTR = IN_PTR + IN_SIZE;
export const OUT_SIZE = IO_SIZE;
export const BLOCK_MAP_PTR = OUT_PTR + OUT_SIZE;
export const BLOCK_MAP_SIZE = (MAX_SIDE / BLOCK_SIZE) * (MAX_SIDE / BLOCK_SIZE);
export const SCRATCH_PTR = BLOCK_MAP_PTR + BLOCK_MAP_SIZE;
export const SCRATCH_SIZE = BLOCK_MAP_SIZE * RECT_BYTES;
export const WORK_PTR = SCRATCH_PTR + SCRATCH_SIZE;
export const WORK_SIZE = 1024 * 1024;
export const PF_LUT_PTR = WORK_PTR + WORK_SIZE;
export const PF_LUT_SIZE = 512 * 1024;
/** Input 8/16 bpp pixel → canonical u32, 65 536 entries. */
export const PF_IN_LUT_PTR = PF_LUT_PTR;
/** Output: canonical 8-bit channel → viewer channel bits in place, three tables (R, G, B) of 256 u32. */
export const PF_OUT_LUT_PTR = PF_LUT_PTR + 65536 * 4;
export const REGIONS_END = PF_LUT_PTR + PF_LUT_SIZE;
