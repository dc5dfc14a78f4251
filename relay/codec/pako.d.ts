// Minimal types for pako 2.2.0 (a devDependency: an independent zlib for tests, and a measured candidate in
// bench/zlib.bench.ts). Only what this repo calls is declared; no @types/pako is installed.

declare module "pako" {
  /** 0 none, 1 partial, 2 sync, 3 full, 4 finish, 5 block (zlib.h). */
  type FlushMode = 0 | 1 | 2 | 3 | 4 | 5 | boolean;

  interface InflateOptions {
    windowBits?: number;
    raw?: boolean;
    chunkSize?: number;
    dictionary?: Uint8Array;
  }

  interface DeflateOptions {
    level?: number;
    windowBits?: number;
    memLevel?: number;
    strategy?: number;
    raw?: boolean;
    chunkSize?: number;
    dictionary?: Uint8Array;
  }

  class Inflate {
    constructor(options?: InflateOptions);
    /** zlib status after an error or the stream's end; 0 while all is well. */
    err: number;
    msg: string;
    ended: boolean;
    result: Uint8Array;
    /** False once the stream has failed or ended. */
    push(data: Uint8Array, flush?: FlushMode): boolean;
    onData(chunk: Uint8Array): void;
    onEnd(status: number): void;
  }

  class Deflate {
    constructor(options?: DeflateOptions);
    err: number;
    msg: string;
    result: Uint8Array;
    push(data: Uint8Array, flush?: FlushMode): boolean;
    onData(chunk: Uint8Array): void;
    onEnd(status: number): void;
  }

  function inflate(data: Uint8Array, options?: InflateOptions): Uint8Array;
  function inflateRaw(data: Uint8Array, options?: InflateOptions): Uint8Array;
  function deflate(data: Uint8Array, options?: DeflateOptions): Uint8Array;
  function deflateRaw(data: Uint8Array, options?: DeflateOptions): Uint8Array;

  const constants: {
    readonly Z_NO_FLUSH: 0;
    readonly Z_PARTIAL_FLUSH: 1;
    readonly Z_SYNC_FLUSH: 2;
    readonly Z_FULL_FLUSH: 3;
    readonly Z_FINISH: 4;
    readonly Z_BLOCK: 5;
  };

  const pako: {
    Inflate: typeof Inflate;
    Deflate: typeof Deflate;
    inflate: typeof inflate;
    inflateRaw: typeof inflateRaw;
    deflate: typeof deflate;
    deflateRaw: typeof deflateRaw;
    constants: typeof constants;
  };
  export default pako;
  export { Inflate, Deflate, inflate, inflateRaw, deflate, deflateRaw, constants };
}
