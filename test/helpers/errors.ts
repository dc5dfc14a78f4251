// The code of the RfbError a call throws: undefined when it does not throw, a marked string when it throws
// anything else (so a plain Error never passes for a coded one).

import { RfbError } from "../../relay/rfb/errors.ts";

export function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof RfbError ? e.code : `not an RfbError: ${e}`;
  }
  return undefined;
}
