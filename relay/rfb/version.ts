// ProtocolVersion (RFC 6143 §7.1.1, rfbproto.rst "ProtocolVersion"): exactly "RFB xxx.yyy\n". Odd versions
// real servers send are mapped the way the spec and the major viewers do (rfb-codecs.md §1.1).

import { RfbError } from "./errors.ts";

export interface Version {
  major: number;
  minor: number;
}

const VERSION_RE = /^RFB (\d{3})\.(\d{3})\n$/;

/** Parses 12 bytes; anything that is not a version string (an HTTP request, say) is NOT_RFB. */
export function parseVersion(b: Uint8Array): Version {
  let s = "";
  for (const c of b) s += String.fromCharCode(c);
  const m = VERSION_RE.exec(s);
  if (!m)
    throw new RfbError(s.startsWith("RFB ") ? "BAD_VERSION" : "NOT_RFB", JSON.stringify(s.slice(0, 12)));
  return { major: Number(m[1]), minor: Number(m[2]) };
}

/**
 * The version a client answers to a server's version: 3.3 for anything below 3.7 (3.5 and UltraVNC's 3.6
 * included), 3.7 for 3.7, and 3.8 for 3.8 and every later one (Apple's 3.889, 4.x, 5.0), as TigerVNC
 * and noVNC do. 000.000 (UltraVNC repeater) and anything below 3.3 is refused.
 */
export function clientVersionFor(server: Version): Version {
  if (server.major < 3 || (server.major === 3 && server.minor < 3)) {
    throw new RfbError("UNSUPPORTED_VERSION", `server version ${server.major}.${server.minor}`);
  }
  if (server.major === 3 && server.minor < 7) return { major: 3, minor: 3 };
  if (server.major === 3 && server.minor === 7) return { major: 3, minor: 7 };
  return { major: 3, minor: 8 };
}

/**
 * The version a server (we offer 3.8) uses for a client's answer: 3.3 (and 3.5, which the spec says to
 * read as 3.3), 3.7 or 3.8. A client may not ask for more than was offered; anything else is refused.
 */
export function serverVersionFor(client: Version, offeredMinor = 8): Version {
  if (client.major === 3) {
    if (client.minor === 3 || client.minor === 5) return { major: 3, minor: 3 };
    if (client.minor === 7 && offeredMinor >= 7) return { major: 3, minor: 7 };
    if (client.minor === 8 && offeredMinor >= 8) return { major: 3, minor: 8 };
  }
  throw new RfbError("UNSUPPORTED_VERSION", `client version ${client.major}.${client.minor}`);
}
