// The RFB server role (the demo device, and the relay towards its viewers), independent of the transport:
// feed() it the bytes a viewer sends, it calls send() with the bytes to write. It offers 3.8, accepts 3.3,
// 3.5 (as 3.3), 3.7 and 3.8, offers only the security types it was configured with and accepts only one
// of those, then reads client messages and tracks the viewer's pixel format and encodings. Protocol errors
// are thrown as RfbError from feed(); a failed authentication sends its SecurityResult first.

import { ByteQueue } from "./byte-queue.ts";
import { SecurityType, VERSION_LENGTH } from "./constants.ts";
import { RfbError } from "./errors.ts";
import { type RfbLimits, limitsWith } from "./limits.ts";
import { type ClientMessage, ClientMessageReader } from "./client-messages.ts";
import { CANONICAL_FORMAT, type PixelFormat } from "./pixel-format.ts";
import { type Version, parseVersion, serverVersionFor } from "./version.ts";
import { randomChallenge, verifyVncAuthResponse } from "./vnc-auth.ts";
import {
  securityResultMsg,
  securityType33Msg,
  securityTypesMsg,
  serverInitMsg,
  versionString,
} from "./writer.ts";

export interface RfbServerOptions {
  send(bytes: Uint8Array): void;
  /** Security types to offer, in our order of preference. @default [None] */
  securityTypes?: number[];
  /** Checks a VNC Authentication response against the challenge; required when VncAuth is offered. */
  checkVncAuth?(challenge: Uint8Array, response: Uint8Array): boolean;
  /** Or simply the password to check against (plaintext is needed: DES challenge–response). */
  password?: string | Uint8Array;
  width: number;
  height: number;
  /** The pixel format announced in ServerInit. @default CANONICAL_FORMAT */
  pixelFormat?: PixelFormat;
  name: string;
  limits?: Partial<RfbLimits>;
  onReady?(info: ViewerInfo): void;
  onMessage?(m: ClientMessage): void;
}

export interface ViewerInfo {
  version: Version;
  securityType: number;
  shared: boolean;
}

type State = "version" | "security" | "response" | "init" | "ready" | "failed";

export class RfbServerConnection {
  readonly limits: RfbLimits;
  info: ViewerInfo | null = null;
  /** The viewer's current pixel format (ServerInit's until it sends SetPixelFormat). */
  pixelFormat: PixelFormat;
  /** The viewer's encodings in its order of preference. */
  encodings: number[] = [];
  private state: State = "version";
  private version: Version = { major: 3, minor: 8 };
  private challenge: Uint8Array | null = null;
  private securityType = 0;
  private readonly q: ByteQueue;
  private readonly reader: ClientMessageReader;
  private readonly o: RfbServerOptions;
  private readonly offered: number[];

  constructor(o: RfbServerOptions) {
    this.o = o;
    this.limits = limitsWith(o.limits);
    this.q = new ByteQueue(this.limits.maxPendingBytes, 4096);
    this.reader = new ClientMessageReader(this.limits);
    this.pixelFormat = o.pixelFormat ?? CANONICAL_FORMAT;
    this.offered = o.securityTypes ?? [SecurityType.None];
    for (const t of this.offered) {
      if (t !== SecurityType.None && t !== SecurityType.VncAuth)
        throw new RfbError("INTERNAL", `cannot offer type ${t}`);
    }
    if (this.offered.includes(SecurityType.VncAuth) && !o.checkVncAuth && o.password === undefined) {
      throw new RfbError("INTERNAL", "VncAuth offered without a password or checker");
    }
  }

  /** Sends our ProtocolVersion; call once when the transport is open. */
  start(): void {
    this.o.send(versionString(3, 8));
  }

  get ready(): boolean {
    return this.state === "ready";
  }

  feed(chunk: Uint8Array): void {
    if (this.state === "failed") return;
    try {
      this.q.push(chunk);
      while (this.step()) {}
    } catch (e) {
      this.state = "failed";
      throw e;
    }
  }

  private step(): boolean {
    const q = this.q;
    switch (this.state) {
      case "version": {
        if (!q.has(VERSION_LENGTH)) {
          // Fail fast on an HTTP request aimed at an RFB port (bad-inputs.md A: cross-protocol requests).
          if (q.has(4) && !(q.u8(0) === 0x52 && q.u8(1) === 0x46 && q.u8(2) === 0x42 && q.u8(3) === 0x20)) {
            throw new RfbError("NOT_RFB", "not an RFB ProtocolVersion");
          }
          return false;
        }
        this.version = serverVersionFor(parseVersion(q.peek(0, VERSION_LENGTH)));
        q.skip(VERSION_LENGTH);
        if (this.version.minor >= 7) {
          this.o.send(securityTypesMsg(this.offered));
          this.state = "security";
        } else {
          // 3.3: the server decides (rfbproto.rst "Security"); we pick our first preference.
          const t = this.offered[0]!;
          this.o.send(securityType33Msg(t));
          this.chosen(t);
        }
        return true;
      }
      case "security": {
        if (!q.has(1)) return false;
        const t = q.u8(0);
        q.skip(1);
        if (!this.offered.includes(t)) {
          // Accept only what we offered (RealVNC CVE-2006-2369 accepted None when it had not offered it).
          if (this.version.minor >= 8) this.o.send(securityResultMsg(false, 8, "security type not offered"));
          throw new RfbError("SECURITY_NOT_OFFERED", `viewer chose security type ${t}`);
        }
        this.chosen(t);
        return true;
      }
      case "response": {
        if (!q.has(16)) return false;
        const response = q.take(16);
        const challenge = this.challenge!;
        this.challenge = null;
        const ok = this.o.checkVncAuth
          ? this.o.checkVncAuth(challenge, response)
          : verifyVncAuthResponse(challenge, response, this.o.password ?? "");
        if (!ok) {
          this.o.send(securityResultMsg(false, this.version.minor, "authentication failed"));
          throw new RfbError("AUTH_FAILED", "wrong VNC Authentication response");
        }
        this.o.send(securityResultMsg(true, this.version.minor));
        this.state = "init";
        return true;
      }
      case "init": {
        if (!q.has(1)) return false;
        // The shared-flag is read and ignored: sharing is policy, a viewer may never kick the others
        // (bad-inputs.md A "Client shared-flag").
        const shared = q.u8(0) !== 0;
        q.skip(1);
        this.o.send(serverInitMsg(this.o.width, this.o.height, this.pixelFormat, this.o.name));
        this.info = { version: this.version, securityType: this.securityType, shared };
        this.state = "ready";
        this.o.onReady?.(this.info);
        return true;
      }
      case "ready": {
        const m = this.reader.next(q);
        if (m === null) return false;
        if (m.type === "SetPixelFormat") this.pixelFormat = m.pf;
        else if (m.type === "SetEncodings") this.encodings = m.encodings;
        this.o.onMessage?.(m);
        return true;
      }
      case "failed":
        return false;
    }
  }

  private chosen(t: number): void {
    this.securityType = t;
    if (t === SecurityType.VncAuth) {
      const challenge = randomChallenge();
      this.challenge = challenge;
      this.o.send(challenge);
      this.state = "response";
    } else {
      if (this.version.minor >= 8) this.o.send(securityResultMsg(true, 8));
      this.state = "init";
    }
  }
}
