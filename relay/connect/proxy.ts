// The native-viewer proxy behind `shadowrelay connect` (DESIGN.md "Native viewer"; issue #4 item 5): a
// loopback TCP port that takes exactly one successful viewer. The viewer authenticates with VNC
// Authentication against a random one-time password (burned after maxFailures wrong answers, expired after
// passwordTtlMs); then the caller's openRelay() opens the ticket-authenticated WebSocket to the relay, we
// join the relay's RFB server there with security None, hand the viewer that ServerInit, and splice. Anything
// that is not RFB (an HTTP request from a web page aimed at the port) is closed at its first wrong byte.
// Loopback only: anything without its own strong authentication must not be reachable from elsewhere
// (bad-inputs.md §c 15); VNC Authentication is DES over 8 characters, fit only for a one-time password.

import { RfbError, toRfbError } from "../rfb/errors.ts";
import type { RfbLimits } from "../rfb/limits.ts";
import { LinkChannel, acceptViewer, hold, joinServer, splice } from "../rfb/splice.ts";
import { listenTcp } from "../rfb/tcp.ts";
import type { ByteChannel } from "../session/channel.ts";
import { log } from "../util/log.ts";
import { ipAddressBytes, isIpAddress } from "../util/x509.ts";

export const CONNECT_PROXY_DEFAULTS = Object.freeze({
  /** Where to listen; must be a loopback address. Port 0 picks a free one. @default "127.0.0.1:0" */
  listen: "127.0.0.1:0",
  /** Wrong VNC Authentication answers before the password is burned and the proxy stops. @default 3 */
  maxFailures: 3,
  /**
   * Milliseconds the one-time password stays usable; then the proxy stops unless a session is already
   * running. @default 120000 (bad-inputs.md A "VNC-auth challenge/response": expires within ≤ 120 s)
   */
  passwordTtlMs: 120_000,
  /** Milliseconds openRelay() may take once a viewer authenticated; then the session fails. @default 30000 */
  relayOpenTimeoutMs: 30_000,
});

/** Letters and digits without the look-alikes 0/O/o, 1/l/I: 56 symbols, 8 of them ≈ 46 bits. */
export const PASSWORD_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";
/** VNC Authentication uses 8 password bytes, no more (vnc-auth.ts). */
export const ONE_TIME_PASSWORD_LENGTH = 8;

export const CONNECT_ERRORS = {
  NOT_LOOPBACK: "the connect proxy listens on loopback addresses only",
  BAD_LISTEN: "listen address must be HOST:PORT",
  BAD_PASSWORD: "the one-time password must be 8 printable ASCII characters",
  BAD_OPTION: "invalid option",
} as const;

export type ConnectErrorCode = keyof typeof CONNECT_ERRORS;

/** A refused proxy configuration (a usage error of `shadowrelay connect`). */
export class ConnectProxyError extends Error {
  readonly code: ConnectErrorCode;
  constructor(code: ConnectErrorCode, detail?: string) {
    super(detail ? `${CONNECT_ERRORS[code]}: ${detail}` : CONNECT_ERRORS[code]);
    this.name = "ConnectProxyError";
    this.code = code;
  }
}

export interface ConnectProxyOptions {
  /** @default CONNECT_PROXY_DEFAULTS.listen */
  listen?: string;
  /** The one-time password; generated (generateOneTimePassword) when absent. */
  password?: string;
  /** @default CONNECT_PROXY_DEFAULTS.maxFailures */
  maxFailures?: number;
  /** @default CONNECT_PROXY_DEFAULTS.passwordTtlMs */
  passwordTtlMs?: number;
  /** @default CONNECT_PROXY_DEFAULTS.relayOpenTimeoutMs */
  relayOpenTimeoutMs?: number;
  /** Opens the channel to the relay's viewer endpoint (WSS /ws/view/:session?ticket=…), after the viewer authenticated. */
  openRelay: () => Promise<ByteChannel>;
  /** Handshake deadline and caps for both halves. */
  limits?: Partial<RfbLimits>;
}

export type ConnectOutcome =
  /** A viewer was bridged to the relay and the session has ended. */
  | "completed"
  /** maxFailures wrong passwords. */
  | "burned"
  /** passwordTtlMs passed without a successful viewer. */
  | "expired"
  /** stop() was called. */
  | "stopped"
  /** A viewer authenticated, but the relay side failed (openRelay, or its handshake). */
  | "failed";

export interface ConnectResult {
  outcome: ConnectOutcome;
  /** Wrong VNC Authentication answers seen. */
  failures: number;
  /** Close reason of the session, or why it failed or ended. */
  reason: string;
  /** The coded error for "failed". */
  error?: RfbError;
  /** Bytes after the handshakes, viewer → relay and relay → viewer ("completed" only, else 0). */
  bytesToRelay: number;
  bytesToViewer: number;
}

export interface ConnectProxy {
  /** The loopback address listened on (as given, "localhost" as 127.0.0.1), and the port. */
  address: string;
  port: number;
  password: string;
  /** Resolves once, when the proxy has stopped; never rejects. */
  done: Promise<ConnectResult>;
  /** Stops listening and ends whatever is in progress ("stopped", unless already done). */
  stop(reason?: string): void;
}

/** A random password of ONE_TIME_PASSWORD_LENGTH from PASSWORD_ALPHABET (CSPRNG, rejection sampling: no bias). */
export function generateOneTimePassword(): string {
  const n = PASSWORD_ALPHABET.length;
  const limit = 256 - (256 % n);
  let out = "";
  while (out.length < ONE_TIME_PASSWORD_LENGTH) {
    for (const b of crypto.getRandomValues(new Uint8Array(16))) {
      if (b < limit && out.length < ONE_TIME_PASSWORD_LENGTH) out += PASSWORD_ALPHABET[b % n];
    }
  }
  return out;
}

/** "HOST:PORT" or "[V6]:PORT" with a loopback host (127.0.0.0/8, ::1, localhost). */
export function parseLoopbackListen(listen: string): { hostname: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(listen);
  if (!m) throw new ConnectProxyError("BAD_LISTEN", JSON.stringify(listen));
  const host = (m[1] ?? m[2])!;
  const port = Number(m[3]);
  if (port > 65535) throw new ConnectProxyError("BAD_LISTEN", JSON.stringify(listen));
  if (host === "localhost") return { hostname: "127.0.0.1", port };
  if (!isIpAddress(host)) throw new ConnectProxyError("NOT_LOOPBACK", host);
  const b = ipAddressBytes(host);
  const zeros = (from: number, to: number): boolean => b.subarray(from, to).every((x) => x === 0);
  const loopback =
    b.length === 4
      ? b[0] === 127
      : (zeros(0, 15) && b[15] === 1) ||
        // ::ffff:127.x.y.z, IPv4-mapped (RFC 4291 §2.5.5.2)
        (zeros(0, 10) && b[10] === 0xff && b[11] === 0xff && b[12] === 127);
  if (!loopback) throw new ConnectProxyError("NOT_LOOPBACK", host);
  return { hostname: host, port };
}

function checkPassword(p: string): Uint8Array {
  if (!/^[\x21-\x7e]{8}$/.test(p)) throw new ConnectProxyError("BAD_PASSWORD");
  return new TextEncoder().encode(p);
}

function positiveInt(v: number, name: string): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new ConnectProxyError("BAD_OPTION", `${name} = ${v}`);
  return v;
}

/**
 * Starts the proxy. Viewers are taken one at a time (a connection while another is in its handshake or
 * session is closed at once, without counting as a failure). Only wrong VNC Authentication answers count
 * towards maxFailures; a viewer that goes away or speaks HTTP does not (it could not have guessed anything).
 * After the first viewer that authenticates the listener stops: single use, whatever the relay side does.
 */
export function startConnectProxy(o: ConnectProxyOptions): ConnectProxy {
  const { hostname, port: wantedPort } = parseLoopbackListen(o.listen ?? CONNECT_PROXY_DEFAULTS.listen);
  const password = o.password ?? generateOneTimePassword();
  const vncPassword = checkPassword(password);
  const maxFailures = positiveInt(o.maxFailures ?? CONNECT_PROXY_DEFAULTS.maxFailures, "maxFailures");
  const ttlMs = positiveInt(o.passwordTtlMs ?? CONNECT_PROXY_DEFAULTS.passwordTtlMs, "passwordTtlMs");
  const relayOpenMs = positiveInt(
    o.relayOpenTimeoutMs ?? CONNECT_PROXY_DEFAULTS.relayOpenTimeoutMs,
    "relayOpenTimeoutMs",
  );

  let state: "idle" | "handshake" | "session" | "done" = "idle";
  let failures = 0;
  /** Aborts the handshake in progress (viewer or relay side) when the proxy stops. */
  let current: AbortController | null = null;
  /** Channels of the session in progress, closed when the proxy stops. */
  const open = new Set<ByteChannel>();
  let resolveDone!: (r: ConnectResult) => void;
  const done = new Promise<ConnectResult>((resolve) => {
    resolveDone = resolve;
  });

  const finish = (outcome: ConnectOutcome, reason: string, extra: Partial<ConnectResult> = {}): void => {
    if (state === "done") return;
    state = "done";
    clearTimeout(ttlTimer);
    listener.stop(true);
    current?.abort(new RfbError("PEER_CLOSED", `connect proxy ${outcome}`));
    for (const ch of open) ch.close(reason);
    open.clear();
    log.info("connect proxy stopped", { outcome, failures, reason });
    resolveDone({ outcome, failures, reason, bytesToRelay: 0, bytesToViewer: 0, ...extra });
  };

  const runSession = async (viewer: ByteChannel, viewerLeftover: Uint8Array, ac: AbortController) => {
    hold(viewer, (reason) => {
      if (!ac.signal.aborted) ac.abort(new RfbError("PEER_CLOSED", `viewer closed: ${reason}`));
    });
    let relay: ByteChannel | null = null;
    try {
      const opening = o.openRelay();
      // A relay channel that opens after the proxy gave up is closed at once.
      opening.then(
        (ch) => {
          if (state === "done" || ac.signal.aborted) ch.close("connect proxy ended");
        },
        () => {},
      );
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        relay = await Promise.race([
          opening,
          new Promise<never>((_, reject) => {
            if (ac.signal.aborted) reject(ac.signal.reason);
            ac.signal.addEventListener("abort", () => reject(ac.signal.reason), { once: true });
            timer = setTimeout(() => {
              const e = new RfbError("HANDSHAKE_TIMEOUT", `the relay did not open within ${relayOpenMs} ms`);
              ac.abort(e);
              reject(e);
            }, relayOpenMs);
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
      open.add(relay);
      const { leftover: relayLeftover, ...server } = await joinServer(relay, {
        ...(o.limits ? { limits: o.limits } : {}),
        signal: ac.signal,
      });
      if (ac.signal.aborted) throw ac.signal.reason;
      viewer.send(server.serverInitBytes);
      current = null;
      log.info("connect proxy: viewer bridged to the relay", {
        width: server.width,
        height: server.height,
      });
      const r = await splice(viewer, relay, { a: viewerLeftover, b: relayLeftover });
      finish("completed", r.reason, { bytesToRelay: r.aToB, bytesToViewer: r.bToA });
    } catch (e) {
      const err = toRfbError(e);
      viewer.close(err.reason);
      relay?.close(err.reason);
      finish("failed", err.message, { error: err });
    }
  };

  const onViewer = (viewer: LinkChannel): void => {
    if (state !== "idle") {
      // One at a time, and nothing after the one session: closed before any byte.
      viewer.close("busy");
      return;
    }
    state = "handshake";
    const ac = new AbortController();
    current = ac;
    open.add(viewer);
    acceptViewer(viewer, {
      security: { vncPassword },
      ...(o.limits ? { limits: o.limits } : {}),
      signal: ac.signal,
    }).then(
      ({ leftover }) => {
        if (state !== "handshake") {
          viewer.close("connect proxy ended");
          return;
        }
        state = "session";
        // Single use: no further connection is even accepted.
        listener.stop(false);
        void runSession(viewer, leftover, ac);
      },
      (e: unknown) => {
        open.delete(viewer);
        if (state !== "handshake") return;
        current = null;
        const err = toRfbError(e);
        if (err.code === "AUTH_FAILED") {
          failures++;
          log.warn("connect proxy: wrong password", { remote: viewer.remote, failures, maxFailures });
          if (failures >= maxFailures) {
            finish("burned", `password burned after ${failures} failed attempts`);
            return;
          }
        } else {
          log.info("connect proxy: viewer refused", { remote: viewer.remote, code: err.code });
        }
        state = "idle";
      },
    );
  };

  let listener: ReturnType<typeof listenTcp>;
  try {
    listener = listenTcp({
      hostname,
      port: wantedPort,
      accept: (link) => {
        const ch = new LinkChannel(link);
        onViewer(ch);
        return ch.handler;
      },
    });
  } catch (e) {
    throw new ConnectProxyError("BAD_LISTEN", `${hostname}:${wantedPort}: ${(e as Error).message}`);
  }
  const ttlTimer = setTimeout(() => {
    if (state === "idle" || state === "handshake") finish("expired", `password expired after ${ttlMs} ms`);
  }, ttlMs);

  return {
    address: hostname,
    port: listener.port,
    password,
    done,
    stop: (reason = "stopped") => finish("stopped", reason),
  };
}
