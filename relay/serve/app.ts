// The relay's HTTP application (Hono): what `shadowrelay serve` answers before the API and the web console
// are mounted on it. Runtime-agnostic on purpose (STYLE.md "thin adapters"): server.ts owns Bun.serve and
// TLS; this file only maps requests to responses, so it is testable with `app.request()` alone.

import { Hono } from "hono";
import { log } from "../util/log.ts";

export interface DemoAddress {
  host: string;
  port: number;
}

export interface AppDeps {
  /** The relay's version (package.json). */
  version: string;
  /** When the process started serving, ms on the `now` clock. */
  startedAt: number;
  /** Clock in ms. @default Date.now */
  now?: () => number;
  /** Where the built-in demo device listens, when it runs; read per request because it starts later. */
  demo?: () => DemoAddress | undefined;
}

export interface Health {
  status: "ok";
  version: string;
  uptimeSeconds: number;
  demo: boolean;
}

const ESCAPES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Text for HTML element content and quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

/** host:port, with IPv6 literals in brackets (RFC 3986 §3.2.2) so the port is unambiguous. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

// No script, no styles, nothing from elsewhere: the page is text, and the policy says so to the browser.
const PAGE_HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "content-security-policy":
    "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
} as const;

function homePage(version: string, demo: DemoAddress | undefined): string {
  const demoPart =
    demo === undefined
      ? ""
      : `<h2>Demo device</h2>
<p>A built-in demo device with a moving test picture is running at <code>${escapeHtml(formatHostPort(demo.host, demo.port))}</code> (RFB).</p>
`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>shadowrelay</title>
</head>
<body>
<h1>shadowrelay</h1>
<p>shadowrelay is a relay for shadowing the screens of remote managed devices over VNC (RFB): devices
dial out to it, administrators watch and, when allowed, control them from a browser or a native VNC viewer.
Devices have pinned keys, every viewer holds a short-lived one-time ticket, and every session is audited.</p>
<p>The web console arrives with a later release. Until then the relay is driven with
<code>shadowrelay admin</code> and the HTTP API.</p>
${demoPart}<p><a href="/healthz">Health</a> · version ${escapeHtml(version)}</p>
</body>
</html>
`;
}

export function createApp(deps: AppDeps): Hono {
  const now = deps.now ?? Date.now;
  const app = new Hono();

  app.get("/healthz", (c) => {
    const body: Health = {
      status: "ok",
      version: deps.version,
      uptimeSeconds: Math.max(0, Math.floor((now() - deps.startedAt) / 1000)),
      demo: deps.demo?.() !== undefined,
    };
    c.header("cache-control", "no-store");
    return c.json(body);
  });

  app.get("/", (c) => c.body(homePage(deps.version, deps.demo?.()), 200, PAGE_HEADERS));

  app.onError((err, c) => {
    // The detail goes to the log, never to the client.
    log.error("request failed", { method: c.req.method, path: c.req.path, err });
    return c.json({ error: "internal error" }, 500);
  });

  return app;
}
