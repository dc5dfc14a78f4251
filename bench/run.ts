// Runs the benchmark suites: every bench/*.bench.ts, or only those whose file names contain one of the
// words given as arguments (`bun bench/run.ts diff`). Each suite runs in its own Bun process, so one
// suite's JIT state and heap cannot colour the next one's figures. Prints the machine first, as
// bench/RESULTS.md records it.

import { readdirSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";

const dir = import.meta.dir;
const suites = readdirSync(dir)
  .filter((f) => f.endsWith(".bench.ts"))
  .sort();
const words = process.argv.slice(2);
const selected = words.length === 0 ? suites : suites.filter((f) => words.some((w) => f.includes(w)));
if (selected.length === 0) {
  console.error(`bench: nothing matches ${words.join(" ")}; suites: ${suites.join(", ")}`);
  process.exit(1);
}

const cpu = /^model name\s*:\s*(.+)$/m.exec(readCpuInfo())?.[1] ?? "unknown CPU";
console.log(
  `machine: ${cpu}, ${availableParallelism()} cores; Bun ${Bun.version}; ${new Date().toISOString()}`,
);

let failed = 0;
for (const suite of selected) {
  console.log(`\n# ${suite}`);
  const run = Bun.spawnSync([process.execPath, join(dir, suite)], { stdout: "inherit", stderr: "inherit" });
  if (run.exitCode !== 0) {
    console.error(`bench: ${suite} failed (exit ${run.exitCode})`);
    failed++;
  }
}
process.exit(failed === 0 ? 0 : 1);

function readCpuInfo(): string {
  try {
    return readFileSync("/proc/cpuinfo", "utf8");
  } catch {
    return "";
  }
}
