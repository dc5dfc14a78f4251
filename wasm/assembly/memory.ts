// The codec core's static memory map: named regions at fixed, 64 KiB-aligned offsets, laid out one after
// the other. The host reads each region's offset and size through regionPtr / regionSize (index.ts) and
// never hard-codes them; it imports only the region ids below. Plain constants with no
// AssemblyScript-only syntax, so the host can import the ids from this same file.
//
//   [0, 64 KiB)              guard: never used, a stray write through a null pointer lands here
//   FB_A       32 MiB        framebuffer at the pixel budget: 8 Mpx × 4 B (relay/rfb/limits.ts)
//   FB_B       32 MiB        the second framebuffer (the diff compares FB_A against FB_B)
//   BLOCK_MAP  64 KiB        one byte per 64×64 block: (16384 / 64)² = 65 536 blocks at the side limit
//   SCRATCH    1 MiB         rect list: 16 B (x, y, w, h as u32) per block, one rect per changed block
//   REGIONS_END = 68 288 512 B = 1042 pages; static data and the stub heap start here (asconfig memoryBase)

export const REGION_FB_A = 0;
export const REGION_FB_B = 1;
export const REGION_BLOCK_MAP = 2;
export const REGION_SCRATCH = 3;
export const REGION_COUNT = 4;

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
export const FB_A_PTR = GUARD_SIZE;
export const FB_B_PTR = FB_A_PTR + FB_SIZE;
export const BLOCK_MAP_PTR = FB_B_PTR + FB_SIZE;
export const BLOCK_MAP_SIZE = (MAX_SIDE / BLOCK_SIZE) * (MAX_SIDE / BLOCK_SIZE);
export const SCRATCH_PTR = BLOCK_MAP_PTR + BLOCK_MAP_SIZE;
export const SCRATCH_SIZE = BLOCK_MAP_SIZE * RECT_BYTES;
export const REGIONS_END = SCRATCH_PTR + SCRATCH_SIZE;
