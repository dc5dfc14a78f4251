// The agent's bridge between a session's data channel to the relay and the device's own VNC server. The
// agent answers the VNC server's authentication itself (--vnc-password-file), so that password never leaves
// the device; towards the relay it is an RFB server offering only security None (the data channel is already
// authenticated: a single-use data token on the agent's pinned connection). After both handshakes the VNC
// server's ServerInit goes to the relay unchanged and the bytes are spliced both ways.

import { RfbError, toRfbError } from "../rfb/errors.ts";
import type { RfbLimits } from "../rfb/limits.ts";
import {
  type AcceptedViewer,
  type JoinedServer,
  type SpliceResult,
  acceptViewer,
  connectTcpChannel,
  hold,
  joinServer,
  splice,
} from "../rfb/splice.ts";
import type { ByteChannel } from "../session/channel.ts";

export const VNC_BRIDGE_DEFAULTS = Object.freeze({
  /** Milliseconds to wait for the TCP connection to the device's VNC server. @default 10000 */
  connectTimeoutMs: 10_000,
});

export interface VncTarget {
  host: string;
  port: number;
  /** The device VNC server's own password (from --vnc-password-file), for VNC Authentication. */
  password?: Uint8Array;
}

export interface VncBridgeOptions {
  /** @default VNC_BRIDGE_DEFAULTS.connectTimeoutMs */
  connectTimeoutMs?: number;
  /** Handshake deadline and string/size caps for both halves. */
  limits?: Partial<RfbLimits>;
  /** Aborting before the splice starts fails the bridge (the signal's RfbError reason) and closes both sides. */
  signal?: AbortSignal;
  /**
   * How to reach the VNC server. The channel must keep what arrives before the handshake attaches (the
   * server's greeting): splice.ts hold() it, as LinkChannel does. @default a TCP connection (connectTcpChannel)
   */
  connect?: (host: string, port: number) => Promise<ByteChannel>;
}

export interface VncBridge {
  /** What the device's VNC server announced (its ServerInit went to the relay verbatim). */
  server: Omit<JoinedServer, "leftover">;
  /** The relay side's handshake with us. */
  viewer: Omit<AcceptedViewer, "leftover">;
  /** Resolves when either side closes (the other is then closed too), with the bytes each way. */
  done: Promise<SpliceResult>;
  /** Ends the session from the device side (the device user, or the agent shutting down). */
  close(reason: string): void;
}

/** Connects within `ms`, or fails; a connection that completes after the deadline is closed. */
async function connectWithin(
  connect: (host: string, port: number) => Promise<ByteChannel>,
  host: string,
  port: number,
  ms: number,
): Promise<ByteChannel> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const attempt = connect(host, port);
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(new RfbError("HANDSHAKE_TIMEOUT", `no connection to the VNC server within ${ms} ms`));
    }, ms);
  });
  attempt.then(
    (ch) => {
      if (timedOut) ch.close("connect timeout");
    },
    () => {},
  );
  try {
    return await Promise.race([attempt, deadline]);
  } catch (e) {
    if (e instanceof RfbError) throw e;
    // No code of its own yet: the relay sees the data channel close with "internal error" and the detail
    // goes to the agent's log (see the report: a proposed VNC_UNREACHABLE code).
    throw new RfbError(
      "INTERNAL",
      `cannot connect to the VNC server ${host}:${port}: ${(e as Error).message}`,
    );
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Bridges `relaySide` (the session's data channel) to the device's VNC server: TCP connect, joinServer with
 * the device's password, then acceptViewer(relaySide, None), the ServerInit forwarded, then splice. Nothing
 * is sent to the relay until the device side is ready, so a VNC server that is down or refuses the password
 * shows up on the relay as a data channel closed before any RFB byte. On failure both sides are closed and
 * the promise rejects with the coded RfbError.
 */
export async function bridgeToVnc(
  relaySide: ByteChannel,
  vnc: VncTarget,
  o: VncBridgeOptions = {},
): Promise<VncBridge> {
  const ac = new AbortController();
  const abortWith = (e: RfbError): void => {
    if (!ac.signal.aborted) ac.abort(e);
  };
  const onOuterAbort = (): void => {
    const r: unknown = o.signal?.reason;
    abortWith(r instanceof RfbError ? r : new RfbError("PEER_CLOSED", "bridge aborted"));
  };
  if (o.signal?.aborted) onOuterAbort();
  o.signal?.addEventListener("abort", onOuterAbort);
  // The relay may close (or, misbehaving, speak) while the device side is set up: hold and watch it.
  hold(relaySide, (reason) => abortWith(new RfbError("PEER_CLOSED", `relay side closed: ${reason}`)));
  let device: ByteChannel | null = null;
  try {
    if (ac.signal.aborted) throw ac.signal.reason;
    device = await connectWithin(
      o.connect ?? connectTcpChannel,
      vnc.host,
      vnc.port,
      o.connectTimeoutMs ?? VNC_BRIDGE_DEFAULTS.connectTimeoutMs,
    );
    if (ac.signal.aborted) throw ac.signal.reason;
    const { leftover: serverLeftover, ...server } = await joinServer(device, {
      ...(vnc.password ? { password: vnc.password } : {}),
      ...(o.limits ? { limits: o.limits } : {}),
      signal: ac.signal,
    });
    const dev = device;
    hold(dev, (reason) => abortWith(new RfbError("PEER_CLOSED", `VNC server closed: ${reason}`)));
    const { leftover: viewerLeftover, ...viewer } = await acceptViewer(relaySide, {
      security: "none",
      ...(o.limits ? { limits: o.limits } : {}),
      signal: ac.signal,
    });
    relaySide.send(server.serverInitBytes);
    const done = splice(dev, relaySide, { a: serverLeftover, b: viewerLeftover });
    return { server, viewer, done, close: (reason) => dev.close(reason) };
  } catch (e) {
    const err = toRfbError(e);
    relaySide.close(err.reason);
    device?.close(err.reason);
    throw err;
  } finally {
    o.signal?.removeEventListener("abort", onOuterAbort);
  }
}
