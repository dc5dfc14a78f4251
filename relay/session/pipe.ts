// The pipe session (DESIGN.md "Session engines"): one viewer, one device, the device's update stream
// forwarded byte for byte once the relay has done both handshakes itself. Towards the device (the agent
// presents an RFB 3.8 handshake offering None) the relay is an RFB client; towards the viewer (a ticket-
// checked WebSocket, or the `connect` proxy that already authenticated its viewer locally) it is an RFB
// server offering None, or VNC Authentication when it must check a password itself. The viewer's version
// exchange starts at once; its ServerInit waits until the device's is known (size, pixel format, the name
// sanitised), all under one handshake deadline. Then both directions are parsed, never merely copied:
//   device → viewer  ServerMessageReader frames every message and rect under the limits, and the exact
//                    bytes of each whole unit are forwarded (coalesced into one send per chunk received);
//   viewer → device  ClientMessageReader parses every message; a view-only viewer's input (keys, pointer,
//                    clipboard, QEMU keys, SetDesktopSize) is dropped and counted, SetEncodings is cut down
//                    to what the relay can frame, an unknown message ends the session (no length to skip).
// Both handshakes are written here from the lower-level pieces rather than with RfbClient/RfbServerConnection:
// RfbClient sends its own SetPixelFormat and SetEncodings after ServerInit (the device must get the
// viewer's, and nothing the viewer did not ask for), and RfbServerConnection answers ClientInit at once
// with a size fixed at construction (the viewer's ServerInit must wait for the device's).
// Forwarding relies on ByteQueue consuming by moving its read index only: a view of the queued bytes taken
// before a run of next() calls still holds those bytes until the next push.
// Transport-agnostic: both sides are ByteChannels (relay/session/channel.ts). One error boundary
// (STYLE.md 5): anything either side makes the parsers throw ends this session only, with a coded reason,
// and onEnd is called exactly once.

import { defaultRegistry } from "../codec/registry.ts";
import { ByteQueue } from "../rfb/byte-queue.ts";
import { type ClientMessage, ClientMessageReader } from "../rfb/client-messages.ts";
import { readReason } from "../rfb/shared-messages.ts";
import {
  PIXEL_FORMAT_LENGTH,
  PseudoEncoding,
  RECT_HEADER_LENGTH,
  SecurityType,
  VERSION_LENGTH,
} from "../rfb/constants.ts";
import { RfbError, type RfbErrorCode, toRfbError } from "../rfb/errors.ts";
import { type RfbLimits, limitsWith } from "../rfb/limits.ts";
import { type PixelFormat, readPixelFormat, validatePixelFormat } from "../rfb/pixel-format.ts";
import { FRAMED_PSEUDO, checkFramebufferSize } from "../rfb/pseudo.ts";
import { type ServerMessage, ServerMessageReader } from "../rfb/server-messages.ts";
import { type Version, clientVersionFor, parseVersion, serverVersionFor } from "../rfb/version.ts";
import { randomChallenge, verifyVncAuthResponse } from "../rfb/vnc-auth.ts";
import {
  clientInitMsg,
  desktopNameBody,
  securityResultMsg,
  securityType33Msg,
  securityTypesMsg,
  serverInitMsg,
  setEncodingsMsg,
  versionString,
} from "../rfb/writer.ts";
import { log } from "../util/log.ts";
import type { ByteChannel } from "./channel.ts";

/** Tunables of a pipe session (the protocol caps are RfbLimits, relay/rfb/limits.ts). */
export interface PipeTuning {
  /**
   * Bytes the viewer's transport may hold unsent (ByteChannel.buffered) before the viewer counts as slow.
   * @default 16 MiB (two full 1080p Raw frames at 32 bpp)
   */
  sendBudgetBytes: number;
  /**
   * How long the viewer may stay over sendBudgetBytes — over it at every send and still over it when the
   * deadline passes — before the session is closed. @default 30000 ms
   */
  sendBudgetMs: number;
  /**
   * Unsent bytes at which the session is closed at once, whatever the deadline. ByteChannel has no pause,
   * so the pipe keeps forwarding while a viewer is slow; this bounds what one session can pin in memory.
   * @default 64 MiB (the TCP adapter's own queue cap, relay/rfb/tcp.ts)
   */
  sendHardCapBytes: number;
  /**
   * Longest desktop name passed on to the viewer, in UTF-8 bytes, after control and format characters
   * were replaced (the device may send up to limits.maxString). @default 256
   */
  maxNameBytes: number;
  /**
   * Viewer bytes that may wait unparsed: a whole ClientCutText (limits.maxCutText) plus what a viewer may
   * pipeline before its ServerInit. @default 1 MiB
   */
  viewerMaxPendingBytes: number;
  /**
   * ClientInit shared-flag sent to the device: true so that shadowing never disconnects the device's
   * other VNC clients (the viewer's own flag is ignored, bad-inputs.md A "Client shared-flag"). @default true
   */
  deviceShared: boolean;
}

export const PIPE_DEFAULTS: Readonly<PipeTuning> = Object.freeze({
  sendBudgetBytes: 16 * 1024 * 1024,
  sendBudgetMs: 30_000,
  sendHardCapBytes: 64 * 1024 * 1024,
  maxNameBytes: 256,
  viewerMaxPendingBytes: 1024 * 1024,
  deviceShared: true,
});

/**
 * VNC Authentication towards the viewer. RFB allows one attempt per connection, so the failure count lives
 * on this object: pass the same object to every pipe that checks the same one-time password; once
 * `failures` reaches `maxFailures` the password is burned and every later attempt is refused before a
 * challenge is sent. The pipe only ever increments `failures`; single use after a success is the caller's
 * (the native proxy's listener accepts one connection).
 */
export interface ViewerPassword {
  /** The plaintext (DES challenge–response needs it); only the first 8 bytes count (vnc-auth.ts). */
  vncPassword: Uint8Array;
  maxFailures: number;
  /** Failed attempts so far. @default 0 */
  failures?: number;
}

export type PipeSide = "viewer" | "device" | "relay";

/** Viewer messages that never reached the device. */
export interface PipeDropped {
  /** KeyEvent and QEMU extended key events. */
  keys: number;
  pointer: number;
  /** ClientCutText: view-only, or longer than limits.maxCutText (skipped unread). */
  clipboard: number;
  /** SetDesktopSize from a view-only viewer, EnableContinuousUpdates (never negotiated). */
  other: number;
}

export type DropKind = keyof PipeDropped;

export interface PipeEnd {
  /** Short text for the audit; never contains peer-supplied bytes. */
  reason: string;
  /**
   * Whose doing the end was: the side that closed, sent something invalid, stalled the handshake past the
   * deadline or stopped reading (send budget); "relay" for end() and internal errors.
   */
  by: PipeSide;
  error?: RfbErrorCode;
  /** More detail for logs (an error's message, a transport's close reason), peer text made printable. */
  detail?: string;
  /** Every byte handed to each channel, handshakes included. */
  bytesToViewer: number;
  bytesToDevice: number;
  dropped: PipeDropped;
}

/** The device as the viewer is told about it. */
export interface PipeDeviceInfo {
  /** The version the relay speaks with the device. */
  version: Version;
  width: number;
  height: number;
  /** The device's own pixel format, passed on unchanged in the viewer's ServerInit. */
  pixelFormat: PixelFormat;
  /** Sanitised and capped (maxNameBytes). */
  name: string;
}

export interface PipeOptions extends Partial<PipeTuning> {
  /** The viewer's transport: the relay is its RFB server. */
  viewer: ByteChannel;
  /** The device's VNC server through the agent: the relay is its RFB client. */
  device: ByteChannel;
  /** Drop keys, pointer, clipboard and SetDesktopSize from the viewer. */
  viewOnly: boolean;
  /** @default "none" (the ticket or the connect proxy has authenticated the viewer) */
  viewerSecurity?: "none" | ViewerPassword;
  /** Protocol caps for both sides; handshakeTimeoutMs bounds both handshakes together. */
  limits?: Partial<RfbLimits>;
  /** Called once both handshakes are done, before the first forwarded byte. */
  onReady?(device: PipeDeviceInfo): void;
  /** The first drop of each kind (to audit it once; later drops are only counted). */
  onFirstDrop?(kind: DropKind): void;
  /** Called exactly once, whatever ends the session. */
  onEnd(end: PipeEnd): void;
}

type ViewerState = "version" | "security" | "response" | "init" | "waiting" | "ready";
type DeviceState = "version" | "security" | "result" | "init" | "ready";

/** A message forwarded unchanged (else: null = dropped, bytes = sent instead). */
const FORWARD = Symbol("forward");
type Verdict = typeof FORWARD | Uint8Array | null;

/**
 * Pseudo-encodings a viewer may ask the device for. Everything the core frames (relay/rfb/pseudo.ts), the
 * Fence capability, and the compression/quality hints, which change no framing (a Tight JPEG rect is framed
 * by its compact length) — except:
 *   ExtendedMouseButtons (-316): it makes PointerEvent longer when bit 7 of the mask is set, which
 *     ClientMessageReader does not frame;
 *   ContinuousUpdates (-313): a pixel-format change must land on an update boundary the relay can see. With
 *     request/response there is no update in flight when a viewer changes format (TigerVNC and noVNC only
 *     change it with no request outstanding); with continuous updates an old-format update could still be
 *     on its way and would be misframed.
 */
function relayablePseudo(e: number): boolean {
  if (e === PseudoEncoding.ExtendedMouseButtons) return false;
  if (FRAMED_PSEUDO.has(e) || e === PseudoEncoding.Fence) return true;
  return (
    (e >= PseudoEncoding.CompressLevel0 && e <= PseudoEncoding.CompressLevel9) ||
    (e >= PseudoEncoding.QualityLevel0 && e <= PseudoEncoding.QualityLevel9)
  );
}

/** A viewer's encodings cut down to what the relay frames, in the viewer's order (already de-duplicated). */
export function relayableEncodings(encodings: readonly number[]): number[] {
  return encodings.filter((e) => (e >= 0 ? defaultRegistry.has(e) : relayablePseudo(e)));
}

const utf8 = new TextEncoder();
/** Controls, format characters (bidi overrides, zero-width), separators, private use, lone surrogates. */
const UNSAFE_CHARS = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cs}]/gu;

/**
 * A device-supplied name fit to show: control and format characters replaced with "?", cut to maxBytes of
 * UTF-8 at a character boundary (bad-inputs.md A "ServerInit name-length"; escaping is still the UI's job).
 */
export function sanitizeName(name: string, maxBytes: number): string {
  const clean = name.replace(UNSAFE_CHARS, "?");
  if (utf8.encode(clean).length <= maxBytes) return clean;
  let out = "";
  let bytes = 0;
  for (const ch of clean) {
    const n = utf8.encode(ch).length;
    if (bytes + n > maxBytes) break;
    bytes += n;
    out += ch;
  }
  return out;
}

/** U32 length + Latin-1 text: the reason after a refused security negotiation (rfbproto.rst "Security"). */
function reasonBytes(text: string): Uint8Array {
  const out = new Uint8Array(4 + text.length);
  new DataView(out.buffer).setUint32(0, text.length);
  for (let i = 0; i < text.length; i++) out[4 + i] = text.charCodeAt(i) & 0xff;
  return out;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** PIPE_DEFAULTS with the options' overrides; a byte count or deadline that is not a non-negative integer throws. */
export function tuningWith(o: Partial<PipeTuning>): PipeTuning {
  const count = (k: Exclude<keyof PipeTuning, "deviceShared">): number => {
    const v = o[k] ?? PIPE_DEFAULTS[k];
    if (!Number.isSafeInteger(v) || v < 0)
      throw new RangeError(`${k} must be a non-negative integer, got ${v}`);
    return v;
  };
  return {
    sendBudgetBytes: count("sendBudgetBytes"),
    sendBudgetMs: count("sendBudgetMs"),
    sendHardCapBytes: count("sendHardCapBytes"),
    maxNameBytes: count("maxNameBytes"),
    viewerMaxPendingBytes: count("viewerMaxPendingBytes"),
    deviceShared: o.deviceShared ?? PIPE_DEFAULTS.deviceShared,
  };
}

export class PipeSession {
  readonly limits: RfbLimits;
  readonly tuning: Readonly<PipeTuning>;
  /** Set once both handshakes are done. */
  device: PipeDeviceInfo | null = null;
  bytesToViewer = 0;
  bytesToDevice = 0;
  readonly dropped: PipeDropped = { keys: 0, pointer: 0, clipboard: 0, other: 0 };
  private readonly o: PipeOptions;
  private readonly viewer: ByteChannel;
  private readonly dev: ByteChannel;
  private readonly password: ViewerPassword | null;
  private readonly vq: ByteQueue;
  private readonly dq: ByteQueue;
  private readonly clientReader: ClientMessageReader;
  private serverReader: ServerMessageReader | null = null;
  private vState: ViewerState = "version";
  private dState: DeviceState = "version";
  private viewerMinor = 8;
  private deviceVersion: Version = { major: 3, minor: 8 };
  private challenge: Uint8Array | null = null;
  /** Every encoding ever forwarded to the device (see forwardEncodings). */
  private readonly accepted = new Set<number>();
  /** A viewer SetPixelFormat that arrived inside an update: applies when that update ends. */
  private pendingPf: PixelFormat | null = null;
  private handshakeTimer: ReturnType<typeof setTimeout> | null = null;
  private budgetTimer: ReturnType<typeof setTimeout> | null = null;
  private ended = false;

  constructor(o: PipeOptions) {
    this.o = o;
    this.viewer = o.viewer;
    this.dev = o.device;
    this.limits = limitsWith(o.limits);
    this.tuning = tuningWith(o);
    const tuning = this.tuning;
    this.password = o.viewerSecurity === undefined || o.viewerSecurity === "none" ? null : o.viewerSecurity;
    this.vq = new ByteQueue(tuning.viewerMaxPendingBytes, 4096);
    this.dq = new ByteQueue(this.limits.maxPendingBytes);
    this.clientReader = new ClientMessageReader(this.limits);
  }

  /** Wires both channels, starts the deadline and sends the relay's ProtocolVersion to the viewer. */
  start(): void {
    this.viewer.onData = (b) => this.guard("viewer", () => this.viewerData(b));
    this.dev.onData = (b) => this.guard("device", () => this.deviceData(b));
    this.viewer.onClose = (r) => this.peerClosed("viewer", r);
    this.dev.onClose = (r) => this.peerClosed("device", r);
    this.handshakeTimer = setTimeout(() => {
      this.handshakeTimer = null;
      const side: PipeSide = this.dState !== "ready" ? "device" : "viewer";
      this.fail(side, new RfbError("HANDSHAKE_TIMEOUT", `${side} handshake not finished`));
    }, this.limits.handshakeTimeoutMs);
    this.guard("relay", () => this.toViewer(versionString(3, 8)));
  }

  get ready(): boolean {
    return this.vState === "ready";
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Ends the session from outside (admin, device user, shutdown): both sides closed with `reason`. */
  end(reason = "ended by the relay"): void {
    this.finish({ reason, by: "relay" });
  }

  // ---- the one error boundary ---------------------------------------------------------------------

  private guard(side: PipeSide, fn: () => void): void {
    if (this.ended) return;
    try {
      fn();
    } catch (e) {
      const err = toRfbError(e);
      if (err.code === "INTERNAL") log.error("pipe session internal error", { err: err.message });
      this.fail(err.code === "INTERNAL" ? "relay" : side, err);
    }
  }

  private fail(by: PipeSide, err: RfbError): void {
    this.finish({ reason: err.reason, by, error: err.code, detail: err.message });
  }

  private peerClosed(side: "viewer" | "device", transportReason: string): void {
    this.finish({
      reason: `${side} closed`,
      by: side,
      detail: sanitizeName(String(transportReason), 128),
    });
  }

  private finish(e: { reason: string; by: PipeSide; error?: RfbErrorCode; detail?: string }): void {
    if (this.ended) return;
    this.ended = true;
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    if (this.budgetTimer) clearTimeout(this.budgetTimer);
    this.handshakeTimer = null;
    this.budgetTimer = null;
    // The side that closed is closed already; close() is safe to call twice (ByteChannel).
    this.viewer.close(e.reason);
    this.dev.close(e.reason);
    const end: PipeEnd = {
      reason: e.reason,
      by: e.by,
      ...(e.error ? { error: e.error } : {}),
      ...(e.detail ? { detail: e.detail } : {}),
      bytesToViewer: this.bytesToViewer,
      bytesToDevice: this.bytesToDevice,
      dropped: { ...this.dropped },
    };
    try {
      this.o.onEnd(end);
    } catch (err) {
      log.error("pipe onEnd threw", { err: String(err) });
    }
  }

  // ---- sending ------------------------------------------------------------------------------------

  private toViewer(b: Uint8Array): void {
    if (this.ended || b.length === 0) return;
    this.viewer.send(b);
    this.bytesToViewer += b.length;
    this.checkBudget();
  }

  private toDevice(b: Uint8Array): void {
    if (this.ended || b.length === 0) return;
    this.dev.send(b);
    this.bytesToDevice += b.length;
  }

  /**
   * Backpressure without a pause: ByteChannel cannot stop the device, so the pipe keeps forwarding and
   * only watches the viewer's queue. Past the hard cap the session closes at once; over the budget it gets
   * sendBudgetMs to recover (any send that finds the queue back under the budget cancels the deadline).
   */
  private checkBudget(): void {
    const buffered = this.viewer.buffered;
    const t = this.tuning;
    if (buffered > t.sendHardCapBytes) {
      this.fail(
        "viewer",
        new RfbError(
          "LIMIT_EXCEEDED",
          `viewer send queue ${buffered} B over the hard cap ${t.sendHardCapBytes} B`,
        ),
      );
    } else if (buffered > t.sendBudgetBytes) {
      this.budgetTimer ??= setTimeout(() => {
        this.budgetTimer = null;
        const now = this.viewer.buffered;
        if (now > t.sendBudgetBytes) {
          this.fail(
            "viewer",
            new RfbError(
              "LIMIT_EXCEEDED",
              `viewer send queue over ${t.sendBudgetBytes} B for ${t.sendBudgetMs} ms (${now} B)`,
            ),
          );
        }
      }, t.sendBudgetMs);
    } else if (this.budgetTimer) {
      clearTimeout(this.budgetTimer);
      this.budgetTimer = null;
    }
  }

  /** Forwards view[from, to) as one copy (the queue's buffer is reused by the next push). */
  // Views, not copies: ByteChannel.send() does not keep the bytes after it returns (channel.ts), and the
  // view is valid until the next push into the queue. A copy per chunk was 22 % of the relay's JS thread
  // (bench/RESULTS.md "Pipe vs websockify").
  private forwardSpan(view: Uint8Array, from: number, to: number): void {
    if (to > from) this.toViewer(view.subarray(from, to));
  }

  private forwardSpanToDevice(view: Uint8Array, from: number, to: number): void {
    if (to > from) this.toDevice(view.subarray(from, to));
  }

  // ---- viewer side: the relay as RFB server -------------------------------------------------------

  private viewerData(b: Uint8Array): void {
    this.vq.push(b);
    if (this.vState === "ready") this.pumpViewer();
    else while (!this.ended && this.viewerStep()) {}
  }

  private viewerStep(): boolean {
    const q = this.vq;
    switch (this.vState) {
      case "version": {
        if (!q.has(VERSION_LENGTH)) {
          // An HTTP request at an RFB port is refused at once (bad-inputs.md A, cross-protocol requests).
          if (q.has(4) && !(q.u8(0) === 0x52 && q.u8(1) === 0x46 && q.u8(2) === 0x42 && q.u8(3) === 0x20)) {
            throw new RfbError("NOT_RFB", "not an RFB ProtocolVersion");
          }
          return false;
        }
        const v = serverVersionFor(parseVersion(q.peek(0, VERSION_LENGTH)));
        q.skip(VERSION_LENGTH);
        this.viewerMinor = v.minor;
        const offered = this.password ? SecurityType.VncAuth : SecurityType.None;
        if (this.password && (this.password.failures ?? 0) >= this.password.maxFailures) {
          // Burned: refused before a challenge is sent (3.3: type 0 + reason; 3.7+: no types + reason).
          const why = reasonBytes("too many authentication failures");
          this.toViewer(concat(v.minor >= 7 ? securityTypesMsg([]) : securityType33Msg(0), why));
          throw new RfbError("AUTH_FAILED", "one-time password burned after too many failures");
        }
        if (v.minor >= 7) {
          this.toViewer(securityTypesMsg([offered]));
          this.vState = "security";
        } else {
          this.toViewer(securityType33Msg(offered));
          this.securityChosen(offered);
        }
        return true;
      }
      case "security": {
        if (!q.has(1)) return false;
        const t = q.u8(0);
        q.skip(1);
        const offered = this.password ? SecurityType.VncAuth : SecurityType.None;
        if (t !== offered) {
          // Only the type we offered (RealVNC CVE-2006-2369 accepted None when it had not offered it).
          if (this.viewerMinor >= 8) this.toViewer(securityResultMsg(false, 8, "security type not offered"));
          throw new RfbError("SECURITY_NOT_OFFERED", `viewer chose security type ${t}`);
        }
        this.securityChosen(t);
        return true;
      }
      case "response": {
        if (!q.has(16)) return false;
        const response = q.take(16);
        const challenge = this.challenge!;
        this.challenge = null;
        const pw = this.password!;
        if (!verifyVncAuthResponse(challenge, response, pw.vncPassword)) {
          pw.failures = (pw.failures ?? 0) + 1;
          this.toViewer(securityResultMsg(false, this.viewerMinor, "authentication failed"));
          throw new RfbError("AUTH_FAILED", `wrong VNC Authentication response (failure ${pw.failures})`);
        }
        this.toViewer(securityResultMsg(true, this.viewerMinor));
        this.vState = "init";
        return true;
      }
      case "init": {
        if (!q.has(1)) return false;
        q.skip(1); // the shared-flag: ignored, sharing is relay policy (bad-inputs.md A)
        this.vState = "waiting";
        this.bothReady();
        return false;
      }
      case "waiting":
      case "ready":
        return false;
    }
  }

  private securityChosen(t: number): void {
    if (t === SecurityType.VncAuth) {
      this.challenge = randomChallenge();
      this.toViewer(this.challenge);
      this.vState = "response";
    } else {
      if (this.viewerMinor >= 8) this.toViewer(securityResultMsg(true, 8));
      this.vState = "init";
    }
  }

  /** Viewer messages after its ServerInit: parsed, filtered, forwarded byte-exact where allowed. */
  private pumpViewer(): void {
    const q = this.vq;
    const base = q.consumed;
    const view = q.peek(0, q.length); // stays valid until the next push
    let from = 0;
    for (;;) {
      const start = q.consumed - base;
      const m = this.clientReader.next(q);
      if (m === null) break;
      const end = q.consumed - base;
      const verdict = this.viewerMessage(m);
      if (verdict !== FORWARD) {
        this.forwardSpanToDevice(view, from, start);
        if (verdict) this.toDevice(verdict);
        from = end;
      }
      if (this.ended) return;
    }
    this.forwardSpanToDevice(view, from, q.consumed - base);
  }

  private drop(kind: DropKind): null {
    if (this.dropped[kind]++ === 0) this.o.onFirstDrop?.(kind);
    return null;
  }

  private viewerMessage(m: ClientMessage): Verdict {
    const viewOnly = this.o.viewOnly;
    switch (m.type) {
      case "SetPixelFormat": {
        // The device applies it between updates; the reader must switch at the same point.
        const r = this.serverReader!;
        if (r.inUpdate) this.pendingPf = m.pf;
        else {
          r.pf = m.pf;
          this.pendingPf = null;
        }
        return FORWARD;
      }
      case "SetEncodings":
        return this.forwardEncodings(m.encodings);
      case "FramebufferUpdateRequest":
      case "ClientFence":
        return FORWARD;
      case "KeyEvent":
      case "QemuKeyEvent":
        return viewOnly ? this.drop("keys") : FORWARD;
      case "PointerEvent":
        return viewOnly ? this.drop("pointer") : FORWARD;
      case "ClientCutText":
        // Over maxCutText the reader skipped the text unread: nothing left to forward.
        return viewOnly || m.text === null ? this.drop("clipboard") : FORWARD;
      case "SetDesktopSize":
        return viewOnly ? this.drop("other") : FORWARD;
      case "EnableContinuousUpdates":
        // ContinuousUpdates is never passed to the device (relayablePseudo), so this was never allowed.
        return this.drop("other");
    }
  }

  /**
   * Only encodings the relay frames reach the device, so it can never send a rect we cannot delimit. The
   * reader accepts the union of every list forwarded so far: an update the device began under the previous
   * list may still be arriving, and each of those encodings is one we can frame and the viewer asked for.
   */
  private forwardEncodings(encodings: readonly number[]): Uint8Array {
    const kept = relayableEncodings(encodings);
    for (const e of kept) this.accepted.add(e);
    this.serverReader!.encodings = new Set(this.accepted);
    return setEncodingsMsg(kept);
  }

  // ---- device side: the relay as RFB client -------------------------------------------------------

  private deviceData(b: Uint8Array): void {
    this.dq.push(b);
    if (this.dState !== "ready") while (!this.ended && this.deviceStep()) {}
    // Device bytes after its ServerInit wait until the viewer has had its own.
    if (!this.ended && this.vState === "ready") this.pumpDevice();
  }

  /** A failure reason from the device at `off` (shared-messages.ts readReason); null: need more. */
  private deviceReason(off: number): string | null {
    return readReason(this.dq, off, this.limits.maxString);
  }

  private deviceStep(): boolean {
    const q = this.dq;
    switch (this.dState) {
      case "version": {
        if (!q.has(VERSION_LENGTH)) return false;
        this.deviceVersion = clientVersionFor(parseVersion(q.peek(0, VERSION_LENGTH)));
        q.skip(VERSION_LENGTH);
        this.toDevice(versionString(this.deviceVersion.major, this.deviceVersion.minor));
        this.dState = "security";
        return true;
      }
      case "security":
        return this.deviceSecurity();
      case "result": {
        if (!q.has(4)) return false;
        if (q.u32(0) === 0) {
          q.skip(4);
          this.sendClientInit();
          return true;
        }
        const reason = this.deviceReason(4);
        if (reason === null) return false;
        throw new RfbError("SECURITY_REFUSED", `device said: ${reason}`);
      }
      case "init":
        return this.deviceServerInit();
      case "ready":
        return false;
    }
  }

  /** The agent answered the device's own authentication; towards the relay only None is acceptable. */
  private deviceSecurity(): boolean {
    const q = this.dq;
    if (this.deviceVersion.minor >= 7) {
      if (!q.has(1)) return false;
      const n = q.u8(0);
      if (n === 0) {
        const reason = this.deviceReason(1);
        if (reason === null) return false;
        throw new RfbError("SECURITY_REFUSED", `device said: ${reason}`);
      }
      if (!q.has(1 + n)) return false;
      const offered = [...q.peek(1, n)];
      q.skip(1 + n);
      if (!offered.includes(SecurityType.None)) {
        throw new RfbError(
          offered.includes(SecurityType.VncAuth) ? "AUTH_REQUIRED" : "SECURITY_REFUSED",
          `device offers security types ${offered.join(",")}`,
        );
      }
      this.toDevice(new Uint8Array([SecurityType.None]));
      if (this.deviceVersion.minor >= 8) this.dState = "result";
      else this.sendClientInit(); // 3.7 sends no SecurityResult after None
      return true;
    }
    if (!q.has(4)) return false;
    const t = q.u32(0);
    if (t === SecurityType.Invalid) {
      const reason = this.deviceReason(4);
      if (reason === null) return false;
      throw new RfbError("SECURITY_REFUSED", `device said: ${reason}`);
    }
    q.skip(4);
    if (t !== SecurityType.None) {
      throw new RfbError(
        t === SecurityType.VncAuth ? "AUTH_REQUIRED" : "SECURITY_REFUSED",
        `device chose security type ${t}`,
      );
    }
    this.sendClientInit();
    return true;
  }

  private sendClientInit(): void {
    this.toDevice(clientInitMsg(this.tuning.deviceShared));
    this.dState = "init";
  }

  private deviceServerInit(): boolean {
    const q = this.dq;
    const fixed = 4 + PIXEL_FORMAT_LENGTH + 4;
    if (!q.has(fixed)) return false;
    const width = q.u16(0);
    const height = q.u16(2);
    checkFramebufferSize(width, height, this.limits);
    const pf = readPixelFormat(q.peek(4, PIXEL_FORMAT_LENGTH));
    validatePixelFormat(pf);
    const nameLen = q.u32(4 + PIXEL_FORMAT_LENGTH);
    if (nameLen > this.limits.maxString)
      throw new RfbError("LIMIT_EXCEEDED", `desktop name of ${nameLen} bytes`);
    if (!q.has(fixed + nameLen)) return false;
    q.skip(fixed);
    const raw = new TextDecoder("utf-8", { fatal: false }).decode(q.take(nameLen));
    this.device = {
      version: this.deviceVersion,
      width,
      height,
      pixelFormat: pf,
      name: sanitizeName(raw, this.tuning.maxNameBytes),
    };
    // No SetPixelFormat or SetEncodings of our own: the viewer's are the ones the device gets, so until
    // the viewer sends them the device keeps its native format (the one the viewer is told) and Raw only.
    this.serverReader = new ServerMessageReader({
      limits: this.limits,
      pf,
      width,
      height,
      encodings: new Set(this.accepted),
      codecs: defaultRegistry,
    });
    this.dState = "ready";
    this.bothReady();
    return false;
  }

  /** Both handshakes done: the viewer gets its ServerInit, then whatever either side has queued. */
  private bothReady(): void {
    if (this.vState !== "waiting" || this.dState !== "ready" || this.ended) return;
    const d = this.device!;
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.toViewer(serverInitMsg(d.width, d.height, d.pixelFormat, d.name));
    this.vState = "ready";
    this.o.onReady?.(d);
    this.guard("viewer", () => this.pumpViewer());
    this.guard("device", () => this.pumpDevice());
  }

  /** Device messages after both ServerInits: framed under the limits, the exact bytes forwarded. */
  private pumpDevice(): void {
    const q = this.dq;
    const r = this.serverReader!;
    const base = q.consumed;
    const view = q.peek(0, q.length); // stays valid until the next push
    let from = 0;
    for (;;) {
      const start = q.consumed - base;
      const m = r.next(q);
      if (m === null) break;
      const end = q.consumed - base;
      const verdict = this.deviceMessage(m, view, start);
      if (verdict !== FORWARD) {
        this.forwardSpan(view, from, start);
        if (verdict) this.toViewer(verdict);
        from = end;
      }
      if (m.type === "FramebufferUpdateEnd" && this.pendingPf) {
        r.pf = this.pendingPf;
        this.pendingPf = null;
      }
      if (this.ended) return;
    }
    this.forwardSpan(view, from, q.consumed - base);
  }

  private deviceMessage(m: ServerMessage, view: Uint8Array, start: number): Verdict {
    switch (m.type) {
      case "DesktopName": {
        // The same treatment as the ServerInit name: the rect is rebuilt around the sanitised name.
        const header = view.subarray(start, start + RECT_HEADER_LENGTH);
        return concat(header, desktopNameBody(sanitizeName(m.name, this.tuning.maxNameBytes)));
      }
      case "ServerCutText":
        // Over maxCutText the reader skipped it unread; a cut-off clipboard would be wrong, so nothing goes.
        return m.text === null ? null : FORWARD;
      case "EndOfContinuousUpdates":
        // Continuous updates were never negotiated (relayablePseudo); a viewer that saw this would start
        // using them, and its EnableContinuousUpdates is dropped: it would wait for updates forever.
        return null;
      default:
        return FORWARD;
    }
  }
}

/** Creates and starts a pipe session. */
export function startPipe(o: PipeOptions): PipeSession {
  const s = new PipeSession(o);
  s.start();
  return s;
}
