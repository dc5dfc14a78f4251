// Every recorded session of ../shared/corpus/ (TigerVNC Xvnc 1.12: raw, copyrect+zrle, rre+raw, hextile,
// zrle, tight) decoded from its first byte by the relay's replay path — SessionDecoder over each kernel
// implementation (TS twin, WASM debug, WASM release) — equals the expected framebuffer in R,G,B at every
// checkpoint; and a flipped bit in a pixel nothing later redraws shows up as exactly one bad pixel.

import { expect, test } from "bun:test";
import { replay } from "../../relay/replay.ts";
import { type CorpusSession, compareRgb, loadCorpus, loadExpectedFinal } from "../helpers/corpus.ts";
import { forEachKernel } from "./kernel-impls.ts";

const SESSIONS: readonly CorpusSession[] = ["raw", "copyrect", "rre", "hextile", "zrle", "tight"];

/** Mismatched pixels at each checkpoint (afterUpdate → count). */
function checkpoints(
  name: CorpusSession,
  kernels: Parameters<typeof replay>[0]["kernels"],
  server?: Uint8Array,
): Map<number, number> {
  const { s2c, c2s, index } = loadCorpus(name);
  const wanted = new Set(index.checkpoints.map((c) => c.afterUpdate));
  const got = new Map<number, number>();
  const result = replay({
    server: server ?? s2c,
    client: c2s,
    kernels,
    onUpdate(update, pixels) {
      if (wanted.has(update)) got.set(update, compareRgb(pixels, loadExpectedFinal()));
    },
  });
  expect(result.updates).toBe(index.updates.length);
  expect(result.rects).toBe(index.updates.flatMap((u) => u.rects).filter((r) => r.enc >= 0).length);
  return got;
}

forEachKernel("corpus replay", (impl) => {
  for (const name of SESSIONS) {
    test(`${name}: pixel-exact at every checkpoint`, async () => {
      const got = checkpoints(name, await impl.make());
      expect([...got.keys()]).toEqual(loadCorpus(name).index.checkpoints.map((c) => c.afterUpdate));
      for (const bad of got.values()) expect(bad).toBe(0);
    }, 60_000);
  }
});

test("a flipped bit in a hextile rect body is one bad pixel at every checkpoint", async () => {
  const { s2c, index } = loadCorpus("hextile");
  // The first rect of the first update: tiles of the photo nothing later redraws. Its first tile is Raw
  // (mask 0x01 right after the 12-byte header), so byte 13 is the red channel of pixel (0, 0).
  const rect = index.updates[0]!.rects[0]!;
  const body = rect.offset + 12;
  expect(s2c[body]).toBe(0x01);
  const flipped = s2c.slice();
  flipped[body + 1]! ^= 1;
  const { TsKernels } = await import("../../relay/codec/ts-kernels.ts");
  const got = checkpoints("hextile", new TsKernels(), flipped);
  for (const bad of got.values()) expect(bad).toBe(1);
});
