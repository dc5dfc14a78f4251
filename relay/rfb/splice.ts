// RFB handshake splicers: each half plays one role of the handshake on a ByteChannel and stops at the point
// where the two halves can be joined byte for byte. `acceptViewer` plays the server up to ClientInit
// (without ServerInit: the real one comes from the far side); `joinServer` plays the client up to and
// including ServerInit. `splice` then forwards raw bytes both ways. Used by the agent's VNC bridge (the
// device's password answered on the device, None towards the relay) and by the native-viewer proxy (a
// one-time VNC password on loopback, None towards the ticket-authenticated relay WebSocket).
//
// Both halves are resumable (any chunking gives the same result), bounded by limits.handshakeTimeoutMs, and
// fail with coded RfbErrors after closing the channel with the error's reason. Bytes that arrive after a
// half finished and before the next consumer attaches are held (hold/attach below), never dropped: a VNC
// server may send a Bell or ServerCutText at any time after ServerInit.

import { ByteQueue } from "./byte-queue.ts";
import { readReason } from "./shared-messages.ts";
import { PIXEL_FORMAT_LENGTH, SecurityType, VERSION_LENGTH } from "./constants.ts";
import { RfbError, toRfbError } from "./errors.ts";
import { type RfbLimits, limitsWith } from "./limits.ts";
import { type PixelFormat, readPixelFormat, validatePixelFormat } from "./pixel-format.ts";
import { checkFramebufferSize } from "./pseudo.ts";
import type { Link, LinkHandler } from "./tcp.ts";
import { connectTcp } from "./tcp.ts";
import { type Version, clientVersionFor, parseVersion, serverVersionFor } from "./version.ts";
import {
  VNC_AUTH_CHALLENGE_LENGTH,
  VNC_PASSWORD_LENGTH,
  randomChallenge,
  verifyVncAuthResponse,
  vncAuthResponse,
} from "./vnc-auth.ts";
import {
  clientInitMsg,
  securityResultMsg,
  securityType33Msg,
  securityTypesMsg,
  versionString,
} from "./writer.ts";
import type { ByteChannel } from "../session/channel.ts";

// ---------------------------------------------------------------------------------------------------------
// Holding a channel between consumers

interface Hold {
  chunks: Uint8Array[];
  size: number;
  /** The close reason once the channel closed while held. */
  closed: string | null;
  onClosed: ((reason: string) => void) | null;
}

const holds = new WeakMap<ByteChannel, Hold>();

/**
 * Buffers what `ch` receives (copies, at most maxBytes, else the channel is closed with LIMIT_EXCEEDED) and
 * records its close, until attach() hands both to a consumer. Calling it on a held channel only replaces
 * `onClosed`, which runs when the held channel closes (at once if it already has).
 */
export function hold(
  ch: ByteChannel,
  onClosed?: (reason: string) => void,
  maxBytes: number = limitsWith().maxPendingBytes,
): void {
  const existing = holds.get(ch);
  if (existing) {
    existing.onClosed = onClosed ?? null;
    if (existing.closed !== null) onClosed?.(existing.closed);
    return;
  }
  const h: Hold = { chunks: [], size: 0, closed: null, onClosed: onClosed ?? null };
  holds.set(ch, h);
  ch.onData = (bytes) => {
    if (h.closed !== null) return;
    h.size += bytes.byteLength;
    if (h.size > maxBytes) {
      ch.close(new RfbError("LIMIT_EXCEEDED").reason);
      return;
    }
    h.chunks.push(bytes.slice());
  };
  ch.onClose = (reason) => {
    if (h.closed !== null) return;
    h.closed = reason;
    h.onClosed?.(reason);
  };
}

/** Sets the consumer's handlers and replays what was held (data in order, then the close, if any). */
export function attach(
  ch: ByteChannel,
  handlers: { onData: (bytes: Uint8Array) => void; onClose: (reason: string) => void },
): void {
  const h = holds.get(ch);
  holds.delete(ch);
  ch.onData = handlers.onData;
  ch.onClose = handlers.onClose;
  if (!h) return;
  for (const c of h.chunks) handlers.onData(c);
  if (h.closed !== null) handlers.onClose(h.closed);
}

// ---------------------------------------------------------------------------------------------------------
// The handshake driver shared by both halves

interface DriverOptions {
  limits: RfbLimits;
  signal: AbortSignal | undefined;
}

/**
 * Feeds the channel's bytes to `step` until it returns a value (done) or throws. On done the channel is held
 * and the unconsumed bytes come back as `leftover`. On any failure (a throw, the deadline, the peer closing,
 * the signal) the channel is closed with the coded reason and the promise rejects with the RfbError.
 */
function drive<T>(
  ch: ByteChannel,
  o: DriverOptions,
  begin: () => void,
  step: (q: ByteQueue) => T | undefined,
): Promise<T & { leftover: Uint8Array }> {
  return new Promise((resolve, reject) => {
    const q = new ByteQueue(o.limits.maxPendingBytes, 4096);
    let settled = false;
    const finish = (): void => {
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener("abort", onAbort);
    };
    const fail = (e: unknown, closeChannel = true): void => {
      if (settled) return;
      finish();
      const err = toRfbError(e);
      ch.onData = () => {};
      ch.onClose = () => {};
      if (closeChannel) ch.close(err.reason);
      reject(err);
    };
    const onAbort = (): void => {
      const r: unknown = o.signal?.reason;
      fail(r instanceof RfbError ? r : new RfbError("PEER_CLOSED", "handshake aborted"));
    };
    const timer = setTimeout(
      () => fail(new RfbError("HANDSHAKE_TIMEOUT", `no handshake within ${o.limits.handshakeTimeoutMs} ms`)),
      o.limits.handshakeTimeoutMs,
    );
    if (o.signal?.aborted) {
      onAbort();
      return;
    }
    o.signal?.addEventListener("abort", onAbort);
    const onData = (bytes: Uint8Array): void => {
      if (settled) return;
      try {
        q.push(bytes);
        const done = step(q); // steps as far as the buffered bytes go
        if (done === undefined) return;
        finish();
        const leftover = q.take(q.length);
        hold(ch, undefined, o.limits.maxPendingBytes);
        resolve({ ...done, leftover });
      } catch (e) {
        fail(e);
      }
    };
    const onClose = (reason: string): void =>
      fail(new RfbError("PEER_CLOSED", `closed during the handshake: ${reason}`), false);
    try {
      begin();
    } catch (e) {
      fail(e);
      return;
    }
    attach(ch, { onData, onClose });
  });
}

// ---------------------------------------------------------------------------------------------------------
// Server half

export type ViewerSecurity =
  | "none"
  | {
      /** The password viewers must answer for (1…8 bytes, no NUL: only 8 bytes count in VNC Authentication). */
      vncPassword: Uint8Array;
      /** Source of the 16-byte challenge. @default randomChallenge (the platform CSPRNG); tests fix it */
      challenge?: () => Uint8Array;
    };

export interface AcceptViewerOptions {
  security: ViewerSecurity;
  limits?: Partial<RfbLimits>;
  /** Aborting fails the handshake with the signal's reason (an RfbError) and closes the channel. */
  signal?: AbortSignal;
}

export interface AcceptedViewer {
  /** ClientInit shared-flag, for the record: sharing is relay policy (bad-inputs.md A "shared-flag"). */
  shared: boolean;
  version: Version;
  securityType: number;
  /** Bytes the viewer sent after ClientInit in the same chunk (later ones are held for attach/splice). */
  leftover: Uint8Array;
}

const RFB_PREFIX = [0x52, 0x46, 0x42, 0x20]; // "RFB "

/**
 * Plays the RFB server on `ch` through ClientInit: offers 3.8 (accepts 3.3, 3.5 as 3.3, 3.7, 3.8), offers
 * exactly the configured security type and accepts only that one, checks a VNC Authentication response in
 * constant time, sends the SecurityResult (a failure carries its reason in 3.8), reads ClientInit. Sends no
 * ServerInit. A peer whose first bytes are not "RFB " (an HTTP request from a web page) fails at the first
 * wrong byte with NOT_RFB.
 */
export function acceptViewer(ch: ByteChannel, o: AcceptViewerOptions): Promise<AcceptedViewer> {
  const limits = limitsWith(o.limits);
  const auth = o.security === "none" ? null : o.security;
  if (auth) {
    const p = auth.vncPassword;
    if (p.length === 0 || p.length > VNC_PASSWORD_LENGTH || p.includes(0)) {
      throw new RangeError("a VNC password is 1…8 bytes without NUL");
    }
  }
  const offered = auth ? SecurityType.VncAuth : SecurityType.None;
  let state: "version" | "security" | "response" | "init" = "version";
  let version: Version = { major: 3, minor: 8 };
  let challenge: Uint8Array | null = null;

  const chosen = (): void => {
    if (auth) {
      challenge = (auth.challenge ?? randomChallenge)();
      if (challenge.length !== VNC_AUTH_CHALLENGE_LENGTH) throw new RfbError("INTERNAL", "bad challenge");
      ch.send(challenge);
      state = "response";
    } else {
      if (version.minor >= 8) ch.send(securityResultMsg(true, 8)); // 3.3/3.7 send none after None
      state = "init";
    }
  };

  return drive<Omit<AcceptedViewer, "leftover">>(
    ch,
    { limits, signal: o.signal },
    () => ch.send(versionString(3, 8)),
    (q) => {
      for (;;) {
        switch (state) {
          case "version": {
            for (let i = 0; i < RFB_PREFIX.length && i < q.length; i++) {
              if (q.u8(i) !== RFB_PREFIX[i]) throw new RfbError("NOT_RFB", "not an RFB ProtocolVersion");
            }
            if (!q.has(VERSION_LENGTH)) return undefined;
            version = serverVersionFor(parseVersion(q.peek(0, VERSION_LENGTH)));
            q.skip(VERSION_LENGTH);
            if (version.minor >= 7) {
              ch.send(securityTypesMsg([offered]));
              state = "security";
            } else {
              ch.send(securityType33Msg(offered)); // 3.3: the server decides (rfbproto.rst "Security")
              chosen();
            }
            break;
          }
          case "security": {
            if (!q.has(1)) return undefined;
            const t = q.u8(0);
            q.skip(1);
            if (t !== offered) {
              // Only what we offered (RealVNC CVE-2006-2369 accepted an unoffered None).
              ch.send(securityResultMsg(false, version.minor, "security type not offered"));
              throw new RfbError("SECURITY_NOT_OFFERED", `viewer chose security type ${t}`);
            }
            chosen();
            break;
          }
          case "response": {
            if (!q.has(VNC_AUTH_CHALLENGE_LENGTH)) return undefined;
            const response = q.take(VNC_AUTH_CHALLENGE_LENGTH);
            const c = challenge!;
            challenge = null;
            if (!verifyVncAuthResponse(c, response, auth!.vncPassword)) {
              ch.send(securityResultMsg(false, version.minor, "authentication failed"));
              throw new RfbError("AUTH_FAILED", "wrong VNC Authentication response");
            }
            ch.send(securityResultMsg(true, version.minor));
            state = "init";
            break;
          }
          case "init": {
            if (!q.has(1)) return undefined;
            const shared = q.u8(0) !== 0;
            q.skip(1);
            return { shared, version, securityType: offered };
          }
        }
      }
    },
  );
}

// ---------------------------------------------------------------------------------------------------------
// Client half

export interface JoinServerOptions {
  /** For VNC Authentication; without it only security None is chosen. */
  password?: Uint8Array;
  limits?: Partial<RfbLimits>;
  signal?: AbortSignal;
}

export interface JoinedServer {
  /** The whole ServerInit message as received, to forward verbatim. */
  serverInitBytes: Uint8Array;
  width: number;
  height: number;
  pixelFormat: PixelFormat;
  name: string;
  version: Version;
  securityType: number;
  /** Bytes the server sent after ServerInit in the same chunk (later ones are held for attach/splice). */
  leftover: Uint8Array;
}

/** A failure reason at `off` (shared-messages.ts readReason); undefined = need more. */
function reasonAt(q: ByteQueue, off: number, limits: RfbLimits): string | undefined {
  return readReason(q, off, limits.maxString) ?? undefined;
}

/**
 * Plays the RFB client on `ch` through ServerInit: answers 3.3, 3.7 or 3.8 as clientVersionFor() maps the
 * server's version, picks the first security type the server lists that it can do (None; VNC
 * Authentication when it has a password), reads SecurityResult (and its reason in 3.8), sends ClientInit
 * with shared = true, and reads and validates ServerInit (size caps, sane pixel format, name ≤ maxString).
 */
export function joinServer(ch: ByteChannel, o: JoinServerOptions = {}): Promise<JoinedServer> {
  const limits = limitsWith(o.limits);
  let state: "version" | "security" | "challenge" | "result" | "init" = "version";
  let version: Version = { major: 3, minor: 8 };
  let securityType = 0;
  const fixedInit = 4 + PIXEL_FORMAT_LENGTH + 4;

  const sendClientInit = (): void => {
    ch.send(clientInitMsg(true)); // never exclusive: other viewers of the device stay connected
    state = "init";
  };
  const chosen = (t: number): void => {
    securityType = t;
    if (t === SecurityType.VncAuth) state = "challenge";
    else if (version.minor >= 8) state = "result";
    else sendClientInit(); // 3.3 and 3.7 send no SecurityResult after None
  };

  return drive<Omit<JoinedServer, "leftover">>(
    ch,
    { limits, signal: o.signal },
    () => {},
    (q) => {
      for (;;) {
        switch (state) {
          case "version": {
            if (!q.has(VERSION_LENGTH)) return undefined;
            version = clientVersionFor(parseVersion(q.peek(0, VERSION_LENGTH)));
            q.skip(VERSION_LENGTH);
            ch.send(versionString(version.major, version.minor));
            state = "security";
            break;
          }
          case "security": {
            if (version.minor >= 7) {
              if (!q.has(1)) return undefined;
              const n = q.u8(0);
              if (n === 0) {
                const reason = reasonAt(q, 1, limits);
                if (reason === undefined) return undefined;
                throw new RfbError("SECURITY_REFUSED", `server said: ${reason}`);
              }
              if (!q.has(1 + n)) return undefined;
              const types = [...q.peek(1, n)];
              q.skip(1 + n);
              const t = types.find(
                (x) => x === SecurityType.None || (x === SecurityType.VncAuth && o.password !== undefined),
              );
              if (t === undefined) {
                throw new RfbError(
                  types.includes(SecurityType.VncAuth) ? "AUTH_REQUIRED" : "SECURITY_REFUSED",
                  `server offers security types ${types.join(",")}`,
                );
              }
              ch.send(new Uint8Array([t]));
              chosen(t);
            } else {
              if (!q.has(4)) return undefined;
              const t = q.u32(0);
              if (t === SecurityType.Invalid) {
                const reason = reasonAt(q, 4, limits);
                if (reason === undefined) return undefined;
                throw new RfbError("SECURITY_REFUSED", `server said: ${reason}`);
              }
              q.skip(4);
              if (t !== SecurityType.None && t !== SecurityType.VncAuth) {
                throw new RfbError("SECURITY_REFUSED", `server chose security type ${t}`);
              }
              if (t === SecurityType.VncAuth && o.password === undefined) {
                throw new RfbError("AUTH_REQUIRED", "server requires VNC Authentication");
              }
              chosen(t);
            }
            break;
          }
          case "challenge": {
            if (!q.has(VNC_AUTH_CHALLENGE_LENGTH)) return undefined;
            ch.send(vncAuthResponse(q.take(VNC_AUTH_CHALLENGE_LENGTH), o.password!));
            state = "result";
            break;
          }
          case "result": {
            if (!q.has(4)) return undefined;
            const result = q.u32(0);
            if (result === 0) {
              q.skip(4);
              sendClientInit();
              break;
            }
            if (version.minor >= 8) {
              const reason = reasonAt(q, 4, limits);
              if (reason === undefined) return undefined;
              throw new RfbError("AUTH_FAILED", `server said: ${reason}`);
            }
            throw new RfbError("AUTH_FAILED", `SecurityResult ${result}`);
          }
          case "init": {
            if (!q.has(fixedInit)) return undefined;
            const width = q.u16(0);
            const height = q.u16(2);
            checkFramebufferSize(width, height, limits);
            const pixelFormat = readPixelFormat(q.peek(4, PIXEL_FORMAT_LENGTH));
            validatePixelFormat(pixelFormat);
            const nameLen = q.u32(4 + PIXEL_FORMAT_LENGTH);
            if (nameLen > limits.maxString) {
              throw new RfbError("LIMIT_EXCEEDED", `desktop name of ${nameLen} bytes`);
            }
            if (!q.has(fixedInit + nameLen)) return undefined;
            const serverInitBytes = q.take(fixedInit + nameLen);
            const name = new TextDecoder("utf-8").decode(serverInitBytes.subarray(fixedInit));
            return { serverInitBytes, width, height, pixelFormat, name, version, securityType };
          }
        }
      }
    },
  );
}

// ---------------------------------------------------------------------------------------------------------
// Splice

export interface SpliceResult {
  /** Which side closed first. */
  closedBy: "a" | "b";
  /** Its close reason, also given to the other side. */
  reason: string;
  /** Bytes forwarded from a to b and from b to a, leftovers included. */
  aToB: number;
  bToA: number;
}

/**
 * Forwards raw bytes both ways: first the leftovers (bytes a and b sent past their handshakes), then what
 * was held, then everything live. When either side closes (or is closed by the caller), the other is closed
 * with the same reason and the promise resolves. Backpressure is the transports' own: a TCP link closes a
 * peer that stops reading past its queue cap, a relay WebSocket past its backpressure limit.
 */
export function splice(
  a: ByteChannel,
  b: ByteChannel,
  leftovers: { a?: Uint8Array; b?: Uint8Array } = {},
): Promise<SpliceResult> {
  return new Promise((resolve) => {
    let aToB = 0;
    let bToA = 0;
    let ended = false;
    const end = (closedBy: "a" | "b", reason: string): void => {
      if (ended) return;
      ended = true;
      (closedBy === "a" ? b : a).close(reason);
      resolve({ closedBy, reason, aToB, bToA });
    };
    if (leftovers.a?.length) {
      b.send(leftovers.a);
      aToB += leftovers.a.length;
    }
    if (leftovers.b?.length) {
      a.send(leftovers.b);
      bToA += leftovers.b.length;
    }
    attach(a, {
      onData: (bytes) => {
        if (ended) return;
        aToB += bytes.byteLength;
        b.send(bytes);
      },
      onClose: (reason) => end("a", reason),
    });
    attach(b, {
      onData: (bytes) => {
        if (ended) return;
        bToA += bytes.byteLength;
        a.send(bytes);
      },
      onClose: (reason) => end("b", reason),
    });
  });
}

// ---------------------------------------------------------------------------------------------------------
// TCP links as ByteChannels

/**
 * A relay/rfb/tcp.ts Link as a ByteChannel. Held from the start (hold above), so a server's greeting that
 * arrives before the handshake attaches is kept. close() ends the link once queued bytes are flushed and
 * reports onClose(reason) once, like the in-memory channel; the link's own close reports "peer closed".
 */
export class LinkChannel implements ByteChannel {
  onData: (bytes: Uint8Array) => void = () => {};
  onClose: (reason: string) => void = () => {};
  /** What tcp.ts calls: give it to listenTcp's accept / connectTcp's open. */
  readonly handler: LinkHandler;
  #closed = false;
  #reported = false;
  readonly #link: Link;

  constructor(link: Link) {
    this.#link = link;
    hold(this);
    this.handler = {
      data: (bytes) => {
        if (!this.#closed) this.onData(bytes);
      },
      close: () => {
        // Bun fires this synchronously inside our own close(): then our reason is already on its way.
        const ours = this.#closed;
        this.#closed = true;
        if (!ours) this.#report(new RfbError("PEER_CLOSED").reason);
      },
    };
  }

  get buffered(): number {
    return this.#link.buffered;
  }

  /** The peer's address, for logs. */
  get remote(): string {
    return this.#link.remote;
  }

  send(bytes: Uint8Array): void {
    if (!this.#closed) this.#link.write(bytes);
  }

  close(reason = "normal"): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#link.end();
    queueMicrotask(() => this.#report(reason));
  }

  #report(reason: string): void {
    if (this.#reported) return;
    this.#reported = true;
    this.onClose(reason);
  }
}

/** Connects over TCP and returns the link as a ByteChannel (held until a handshake attaches). */
export async function connectTcpChannel(hostname: string, port: number): Promise<LinkChannel> {
  let ch: LinkChannel | null = null;
  await connectTcp({
    hostname,
    port,
    open: (link) => {
      ch = new LinkChannel(link);
      return ch.handler;
    },
  });
  if (!ch) throw new RfbError("INTERNAL", `no connection to ${hostname}:${port}`);
  return ch;
}
