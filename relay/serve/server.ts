// `shadowrelay serve`: the one place that starts Bun.serve (STYLE.md "thin adapters"). It opens the data
// directory and its TLS identity, starts the injected demo device when asked, serves the Hono app over
// TLS only, and stops in order: stop accepting, let in-flight requests finish until a deadline, then cut
// what is left, then stop the demo device.

import packageJson from "../../package.json" with { type: "json" };
import { type RelayConfig, DEFAULT_CONFIG } from "../config.ts";
import { createApi } from "../control/api.ts";
import { ControlError } from "../control/errors.ts";
import type { TicketClaims } from "../control/tickets.ts";
import { RelayNode } from "../node.ts";
import { log } from "../util/log.ts";
import { viewerRoutes } from "./viewer.ts";
import { WsChannel, WsClose, type WsData, WsTextChannel } from "./ws.ts";
import { isDnsName, isIpAddress } from "../util/x509.ts";
import { createApp, type DemoAddress, formatHostPort } from "./app.ts";
import { type DataDir, openDataDir } from "./data-dir.ts";

/** A running demo device (relay/demo); injected so this module does not depend on it. */
export interface DemoHandle extends DemoAddress {
  stop(): Promise<void>;
}

export interface DemoDependency {
  start(): Promise<DemoHandle>;
}

export interface ServerOptions {
  /** host:port or [v6]:port. @default "0.0.0.0:8443" */
  listen?: string;
  dataDir: string;
  /** How devices and viewers reach this relay from outside; its host is added to a generated certificate. */
  publicUrl?: string;
  certFile?: string;
  keyFile?: string;
  demo?: DemoDependency;
  /** Seconds an idle HTTP connection stays open. @default 30 (Bun's default is 10; 0 disables; max 255) */
  idleTimeoutSeconds?: number;
  /** Milliseconds stop() waits for in-flight requests before closing them. @default 5000 */
  stopGraceMs?: number;
  /** Reported by /healthz. @default package.json version */
  version?: string;
  /** Relay limits and timeouts. @default DEFAULT_CONFIG (relay/config.ts) */
  config?: RelayConfig;
  /** The first admin's password on a first start. @default random, returned once in adminPassword */
  adminPassword?: string;
}

export interface RunningServer {
  /** A URL that reaches the listener from this machine (wildcard listens map to loopback). */
  url: string;
  /** --public-url when given, else `url`. */
  publicUrl: string;
  hostname: string;
  port: number;
  tls: Pick<DataDir, "certFile" | "keyFile" | "certPem" | "certSha256Hex" | "spkiSha256Hex" | "generated">;
  demo: DemoAddress | undefined;
  /** The control plane and live sessions. */
  node: RelayNode;
  /** Set on the first start only: the password of the user "admin" (printed once, never stored in clear). */
  adminPassword: string | null;
  /** Graceful stop; safe to call more than once. */
  stop(): Promise<void>;
}

export class ServeError extends Error {
  override name = "ServeError";
}

export const DEFAULT_LISTEN = "0.0.0.0:8443";
const DEFAULT_IDLE_TIMEOUT_S = 30;
const DEFAULT_STOP_GRACE_MS = 5000;

export interface ListenAddress {
  /** Without brackets, as Bun.serve wants it. */
  hostname: string;
  port: number;
}

/** Parses `host:port`, `[v6]:port`; the port may be 0 (any free port). */
export function parseListen(text: string): ListenAddress {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  if (m === null) {
    throw new ServeError(`--listen ${JSON.stringify(text)}: expected host:port or [ipv6]:port`);
  }
  const hostname = m[1]!;
  const port = Number(m[2]);
  if (port > 65535) throw new ServeError(`--listen ${JSON.stringify(text)}: port out of range`);
  if (text.startsWith("[") && !isIpAddress(hostname)) {
    throw new ServeError(`--listen ${JSON.stringify(text)}: not an IPv6 address in brackets`);
  }
  if (!isIpAddress(hostname) && !isDnsName(hostname)) {
    throw new ServeError(`--listen ${JSON.stringify(text)}: bad host`);
  }
  return { hostname, port };
}

const WILDCARDS: Readonly<Record<string, string>> = { "0.0.0.0": "127.0.0.1", "::": "::1" };

/** The host a local client uses to reach a listener on `hostname`. */
function localHost(hostname: string): string {
  return WILDCARDS[hostname] ?? hostname;
}

function sanNames(hosts: readonly string[]): { dnsNames: string[]; ipAddresses: string[] } {
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const h of hosts) {
    if (h in WILDCARDS) continue;
    if (isIpAddress(h)) ipAddresses.push(h);
    else if (isDnsName(h)) dnsNames.push(h.toLowerCase());
    else log.warn("host cannot be put in the certificate", { host: h });
  }
  return { dnsNames, ipAddresses };
}

function parsePublicUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ServeError(`--public-url ${JSON.stringify(text)} is not a URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new ServeError(`--public-url ${JSON.stringify(text)}: expected https://`);
  }
  return url;
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const listen = parseListen(options.listen ?? DEFAULT_LISTEN);
  const publicUrl = options.publicUrl === undefined ? undefined : parsePublicUrl(options.publicUrl);
  const idleTimeout = options.idleTimeoutSeconds ?? DEFAULT_IDLE_TIMEOUT_S;
  if (!Number.isInteger(idleTimeout) || idleTimeout < 0 || idleTimeout > 255) {
    throw new ServeError(`idle timeout ${idleTimeout}s: Bun accepts whole seconds 0…255`);
  }
  const stopGraceMs = options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;

  // URL.hostname keeps the brackets of an IPv6 literal; the certificate wants the bare address.
  const publicHost = publicUrl?.hostname.replace(/^\[(.*)\]$/, "$1");
  const names = sanNames([listen.hostname, ...(publicHost !== undefined ? [publicHost] : [])]);
  const data = await openDataDir(options.dataDir, {
    ...(options.certFile !== undefined ? { certFile: options.certFile } : {}),
    ...(options.keyFile !== undefined ? { keyFile: options.keyFile } : {}),
    ...names,
  });

  const demo = options.demo === undefined ? undefined : await options.demo.start();
  const demoAddress: DemoAddress | undefined =
    demo === undefined ? undefined : { host: demo.host, port: demo.port };

  const config = options.config ?? DEFAULT_CONFIG;
  const node = new RelayNode({
    dataDir: data.dir,
    config,
    demo: () => demoAddress,
    directSigner: { privateKeyPem: data.keyPem },
  });
  const adminPassword = await node.ensureAdmin(options.adminPassword);

  const clock = () => performance.now();
  const app = createApp({
    version: options.version ?? packageJson.version,
    startedAt: clock(),
    now: clock,
    demo: () => demoAddress,
  });
  // The public base URL is known once the listener has its port.
  let publicBase = "";
  app.route(
    "/",
    createApi(node, {
      publicUrl: () => publicBase,
      certSha256: data.certSha256Hex,
      remote: (c) => remoteOf(c.req.raw),
    }),
  );
  app.route("/", viewerRoutes({ describe: (session, ticket) => node.describeViewer(session, ticket) }));
  const remotes = new WeakMap<Request, string>();
  const remoteOf = (req: Request): string | null => remotes.get(req) ?? null;

  /** Same-origin, or listed in config.allowedOrigins: browsers always send Origin on a WebSocket upgrade. */
  const originAllowed = (origin: string, req: Request): boolean => {
    const host = req.headers.get("host");
    if (host !== null && origin === `https://${host}`) return true;
    if (publicBase !== "" && origin === new URL(publicBase).origin) return true;
    return config.allowedOrigins.includes(origin);
  };

  /** GET /ws/view/:session?ticket=…: Origin, then the ticket (redeemed once), then the upgrade. */
  const upgradeViewer = (req: Request, srv: Bun.Server<WsData>, session: string): Response | undefined => {
    const url = new URL(req.url);
    const origin = req.headers.get("origin");
    if (origin !== null && !originAllowed(origin, req)) {
      node.metrics.originsRefused++;
      node.audit.append("origin.refused", "viewer", {
        session: session.slice(0, 64),
        origin: origin.slice(0, 200),
      });
      return new Response("forbidden origin", { status: 403 });
    }
    let claims: TicketClaims;
    try {
      claims = node.redeem(
        session,
        url.searchParams.get("ticket") ?? "",
        origin === null ? "native" : "browser",
      );
    } catch (e) {
      const status = e instanceof ControlError ? e.status : 401;
      return new Response(e instanceof ControlError ? e.message : "refused", { status });
    }
    const data: WsData = {
      route: "view",
      params: { session },
      claims,
      maxMessage: config.viewerWsMaxPayload,
    };
    if (srv.upgrade(req, { data })) return undefined;
    return new Response("expected a WebSocket upgrade", { status: 426 });
  };

  let server: Bun.Server<WsData>;
  try {
    server = Bun.serve<WsData>({
      hostname: listen.hostname,
      port: listen.port,
      tls: { cert: data.certPem, key: data.keyPem },
      idleTimeout,
      // Bun's development mode (picked from NODE_ENV) answers errors with stack traces; never on a relay.
      development: false,
      // Bun 1.4.5 turns SO_REUSEPORT on whenever development is false: a second relay (or anything else) on
      // this port would then silently share the connections instead of failing with EADDRINUSE.
      reusePort: false,
      fetch: (request, srv) => {
        const ip = srv.requestIP(request);
        if (ip) remotes.set(request, ip.address);
        const path = new URL(request.url).pathname;
        const view = /^\/ws\/view\/([A-Za-z0-9_-]{1,128})$/.exec(path);
        if (view) return upgradeViewer(request, srv, view[1]!);
        if (path === "/ws/agent") {
          const data: WsData = {
            route: "agent",
            params: { remote: ip?.address ?? "?" },
            maxMessage: 64 * 1024,
          };
          return srv.upgrade(request, { data })
            ? undefined
            : new Response("expected a WebSocket upgrade", { status: 426 });
        }
        const agentData = /^\/ws\/agent\/data\/([A-Za-z0-9_-]{1,128})$/.exec(path);
        if (agentData) {
          const token = /^Bearer (\S{16,256})$/.exec(request.headers.get("authorization") ?? "")?.[1];
          if (token === undefined || !node.hub.takeDataToken(agentData[1]!, token)) {
            return new Response("no such session or token", { status: 401 });
          }
          const data: WsData = {
            route: "agent-data",
            params: { session: agentData[1]! },
            maxMessage: config.agentWsMaxPayload,
          };
          return srv.upgrade(request, { data })
            ? undefined
            : new Response("expected a WebSocket upgrade", { status: 426 });
        }
        return app.fetch(request, { server: srv });
      },
      websocket: {
        // One value per server: the largest route's; each route checks its own (WsData.maxMessage).
        maxPayloadLength: Math.max(config.viewerWsMaxPayload, config.agentWsMaxPayload),
        // Bun's own cap on a socket's queue; the pipe's send budget (relay/session/pipe.ts) acts well before.
        backpressureLimit: 64 * 1024 * 1024,
        closeOnBackpressureLimit: true,
        idleTimeout: 0,
        open(ws) {
          const d = ws.data;
          if (d.route === "agent") {
            const text = new WsTextChannel(ws);
            d.channel = text;
            node.hub.acceptAgent(text, d.params.remote ?? "?");
            return;
          }
          const channel = new WsChannel(ws);
          d.channel = channel;
          if (d.route === "agent-data") {
            node.hub.attachData(d.params.session!, channel);
          } else if (d.route === "view" && d.claims) {
            node.attachViewer(d.claims, channel).catch((err: unknown) => {
              log.error("viewer attach failed", { err });
              channel.close("internal error", WsClose.Internal);
            });
          } else {
            channel.close("unknown route", WsClose.Policy);
          }
        },
        message(ws, message) {
          ws.data.channel?.data(message);
        },
        close(ws, code, reason) {
          ws.data.channel?.closed(code, reason);
        },
      },
      error(err) {
        log.error("unhandled request error", { err });
        return new Response("internal error", { status: 500 });
      },
    });
  } catch (err) {
    await demo?.stop().catch((e: unknown) => log.warn("demo device did not stop cleanly", { err: e }));
    const reason = err instanceof Error ? err.message : String(err);
    const where = formatHostPort(listen.hostname, listen.port);
    throw new ServeError(`cannot serve TLS on ${where}: ${reason}`, { cause: err });
  }

  // Undefined only for unix-socket servers, which this never starts.
  const port = server.port ?? listen.port;
  const url = `https://${formatHostPort(localHost(listen.hostname), port)}`;
  const publicText = publicUrl === undefined ? url : publicUrl.href.replace(/\/$/, "");
  publicBase = publicText;

  log.info("relay listening", {
    listen: formatHostPort(listen.hostname, port),
    url,
    publicUrl: publicText,
    certSha256: data.certSha256Hex,
    spkiSha256: data.spkiSha256Hex,
    certGenerated: data.generated,
    ...(demoAddress !== undefined ? { demo: formatHostPort(demoAddress.host, demoAddress.port) } : {}),
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      // Sessions first: no new ones, live ones run until the drain deadline, then end with a reason.
      await node.drain();
      // Agents are told "relay shutting down" (1001) now, not cut by the connection deadline below.
      node.hub.close();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<"deadline">((resolve) => {
        timer = setTimeout(() => resolve("deadline"), stopGraceMs);
      });
      // stop() closes the listener at once and resolves when the last connection has gone.
      const outcome = await Promise.race([server.stop(false).then(() => "drained" as const), deadline]);
      clearTimeout(timer);
      if (outcome === "deadline") {
        log.warn("connections still open at the stop deadline; closing them", { graceMs: stopGraceMs });
        await server.stop(true);
      }
      if (demo !== undefined) {
        await demo.stop().catch((err: unknown) => log.warn("demo device did not stop cleanly", { err }));
      }
      node.close();
      log.info("relay stopped", { url });
    })();
    return stopping;
  };

  return {
    url,
    publicUrl: publicText,
    hostname: listen.hostname,
    port,
    tls: {
      certFile: data.certFile,
      keyFile: data.keyFile,
      certPem: data.certPem,
      certSha256Hex: data.certSha256Hex,
      spkiSha256Hex: data.spkiSha256Hex,
      generated: data.generated,
    },
    demo: demoAddress,
    node,
    adminPassword,
    stop,
  };
}
