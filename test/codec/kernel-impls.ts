// The three implementations of CodecKernels every shared case suite runs against (STYLE.md "One shared
// case suite per interface"): the pure-TS twin, the WASM debug build (assertions on) and the WASM release
// build. Each call makes a fresh instance, as a session would.

import { describe } from "bun:test";
import type { CodecKernels } from "../../relay/codec/kernels.ts";
import { TsKernels } from "../../relay/codec/ts-kernels.ts";
import { createWasmKernels } from "../../relay/codec/wasm-kernels.ts";

export interface KernelImpl {
  readonly name: "ts" | "wasm-debug" | "wasm-release";
  make(): Promise<CodecKernels>;
}

export const KERNEL_IMPLS: readonly KernelImpl[] = [
  { name: "ts", make: async () => new TsKernels() },
  { name: "wasm-debug", make: () => createWasmKernels("debug") },
  { name: "wasm-release", make: () => createWasmKernels("release") },
];

/** describe(`${title} [impl]`, …) once per implementation. */
export function forEachKernel(title: string, body: (impl: KernelImpl) => void): void {
  for (const impl of KERNEL_IMPLS) describe(`${title} [${impl.name}]`, () => body(impl));
}

/** A fresh kernel instance with a width × height framebuffer and the given formats (canonical by default). */
export async function kernelsWith(impl: KernelImpl, width: number, height: number): Promise<CodecKernels> {
  const k = await impl.make();
  k.resize(width, height);
  return k;
}
