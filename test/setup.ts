// Preloaded by bun test (bunfig.toml): makes sure the WASM builds exist before any test imports the loader.
// `npm test` builds them first; this covers `bun test` run by hand on a fresh checkout.

import { existsSync } from "node:fs";
import { resolve } from "node:path";

const root = resolve(import.meta.dir, "..");
const buildDir = process.env.SHADOWRELAY_WASM_BUILD_DIR ?? resolve(root, "wasm/build");
if (!existsSync(resolve(buildDir, "release.wasm")) || !existsSync(resolve(buildDir, "debug.wasm"))) {
  const r = Bun.spawnSync([process.execPath, "wasm/build.ts"], {
    cwd: root,
    stdout: "inherit",
    stderr: "inherit",
  });
  if (r.exitCode !== 0) throw new Error("building the WASM core failed (npm run build:wasm)");
}
