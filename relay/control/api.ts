// The relay's HTTP API (DESIGN.md "Contract"): JSON over HTTPS, bearer tokens from /api/login, every
// error a ControlError mapped once to a status and a JSON body. Routes are thin: the work is RelayNode's
// (relay/node.ts) and the control modules'. `shadowrelay admin` is a client of exactly these routes.

import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { DEMO_DEVICE_ID, type RelayNode } from "../node.ts";
import { ControlError, toControlError } from "./errors.ts";
import type { TicketAudience } from "./tickets.ts";
import type { AuthUser, Role } from "./users.ts";

type Env = { Variables: { user: AuthUser } };

export interface ApiOptions {
  /** The relay's public base URL (https://host:port), for viewer and WebSocket URLs in responses. */
  publicUrl: () => string;
  /** SHA-256 of the relay's TLS certificate, lowercase hex: what agents pin at enrollment. */
  certSha256: string;
  /** The address of the caller, for the login throttle (from the server's requestIP). */
  remote?: (c: Context) => string | null;
}

const JSON_LIMIT = 64 * 1024;

function bearer(c: Context): string | null {
  const h = c.req.header("authorization");
  const m = h === undefined ? null : /^Bearer ([A-Za-z0-9_-]{16,128})$/.exec(h);
  return m ? m[1]! : null;
}

async function jsonBody(c: Context): Promise<Record<string, unknown>> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw new ControlError("BAD_REQUEST", "the body must be a JSON object");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ControlError("BAD_REQUEST", "the body must be a JSON object");
  }
  return body as Record<string, unknown>;
}

/** A path parameter (always present on its route; checked so the types say so). */
function param(c: Context, name: string): string {
  const v = c.req.param(name);
  if (v === undefined || v.length === 0 || v.length > 128)
    throw new ControlError("BAD_REQUEST", `bad ${name}`);
  return v;
}

function str(body: Record<string, unknown>, key: string, max = 256): string {
  const v = body[key];
  if (typeof v !== "string" || v.length === 0 || v.length > max) {
    throw new ControlError("BAD_REQUEST", `${key} must be a non-empty string of at most ${max} characters`);
  }
  return v;
}

function optBool(body: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const v = body[key];
  if (v === undefined) return fallback;
  if (typeof v !== "boolean") throw new ControlError("BAD_REQUEST", `${key} must be true or false`);
  return v;
}

function audienceOf(v: unknown): TicketAudience {
  if (v === undefined || v === "browser") return "browser";
  if (v === "native") return "native";
  throw new ControlError("BAD_REQUEST", 'audience must be "browser" or "native"');
}

/** Prometheus text exposition (version 0.0.4): HELP, TYPE and one sample per metric. */
function metricsText(node: RelayNode): string {
  const m = node.metrics;
  const logins = node.users.stats();
  const lines: string[] = [];
  const metric = (name: string, type: "counter" | "gauge", help: string, value: number) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${value}`);
  };
  metric("shadowrelay_sessions_active", "gauge", "Sessions carried now.", node.liveSessions);
  metric(
    "shadowrelay_sessions_started_total",
    "counter",
    "Sessions whose viewer connected.",
    m.sessionsStarted,
  );
  metric("shadowrelay_sessions_ended_total", "counter", "Sessions ended.", m.sessionsEnded);
  metric("shadowrelay_viewers_connected", "gauge", "Viewers connected now.", node.liveSessions);
  metric(
    "shadowrelay_devices_online",
    "gauge",
    "Devices reachable now.",
    node.listDevices().filter((d) => d.online).length,
  );
  metric(
    "shadowrelay_bytes_to_viewers_total",
    "counter",
    "Bytes sent to viewers by ended sessions.",
    m.bytesToViewers,
  );
  metric(
    "shadowrelay_bytes_to_devices_total",
    "counter",
    "Bytes sent to devices by ended sessions.",
    m.bytesToDevices,
  );
  metric("shadowrelay_auth_failures_total", "counter", "Failed logins.", logins.failed);
  metric("shadowrelay_logins_locked_total", "counter", "Logins refused by the lockout.", logins.locked);
  metric("shadowrelay_tickets_refused_total", "counter", "Viewer tickets refused.", m.ticketsRefused);
  metric(
    "shadowrelay_devices_refused_total",
    "counter",
    "Agents refused at the proof of their device key.",
    m.devicesRefused,
  );
  metric(
    "shadowrelay_origins_refused_total",
    "counter",
    "Viewer WebSockets refused for their Origin.",
    m.originsRefused,
  );
  return `${lines.join("\n")}\n`;
}

export function createApi(node: RelayNode, o: ApiOptions): Hono<Env> {
  const api = new Hono<Env>();
  api.use(
    "/api/*",
    bodyLimit({
      maxSize: JSON_LIMIT,
      onError: (c) => c.json({ error: "BAD_REQUEST", message: "body too large" }, 413),
    }),
  );

  api.onError((e, c) => {
    const err = toControlError(e);
    if (err.code === "INTERNAL") console.error(e);
    if (err.retryAfterMs !== undefined) c.header("retry-after", String(Math.ceil(err.retryAfterMs / 1000)));
    return c.json(err.toJSON(), err.status as 400);
  });

  const auth = (need: Role) => async (c: Context<Env>, next: () => Promise<void>) => {
    const token = bearer(c);
    const user = token === null ? null : node.users.authenticate(token, Date.now());
    if (!user) throw new ControlError("UNAUTHORIZED", "log in first: POST /api/login");
    if (!node.roleAllows(user, need)) throw new ControlError("FORBIDDEN", "this needs the admin role");
    c.set("user", user);
    await next();
  };

  api.post("/api/login", async (c) => {
    const body = await jsonBody(c);
    const result = await node.users.login(
      str(body, "name", 64),
      str(body, "password", 1024),
      Date.now(),
      o.remote?.(c) ?? null,
    );
    return c.json(result);
  });
  api.post("/api/logout", auth("operator"), (c) => {
    node.users.logout(bearer(c)!);
    return c.json({ ok: true });
  });
  api.get("/api/me", auth("operator"), (c) => c.json(c.get("user")));

  api.get("/api/users", auth("admin"), (c) => c.json(node.users.listUsers()));
  api.post("/api/users", auth("admin"), async (c) => {
    const body = await jsonBody(c);
    const role = body.role === undefined ? "operator" : body.role;
    if (role !== "admin" && role !== "operator")
      throw new ControlError("BAD_REQUEST", 'role must be "admin" or "operator"');
    const user = await node.users.createUser(
      str(body, "name", 64),
      role,
      str(body, "password", 1024),
      c.get("user").name,
    );
    return c.json(user, 201);
  });
  api.post("/api/users/:name/password", auth("admin"), async (c) => {
    const body = await jsonBody(c);
    await node.users.setPassword(param(c, "name"), str(body, "password", 1024), c.get("user").name);
    return c.json({ ok: true });
  });
  api.post("/api/users/:name/disable", auth("admin"), (c) => {
    node.users.setDisabled(param(c, "name"), true, c.get("user").name);
    return c.json({ ok: true });
  });

  api.post("/api/enrollments", auth("admin"), async (c) => {
    const body = await jsonBody(c);
    const e = node.devices.createEnrollment({
      name: str(body, "name", 256),
      ttlSeconds: node.config.enrollmentTtlMinutes * 60,
      createdBy: c.get("user").name,
    });
    node.audit.append("enroll.token", c.get("user").name, { enrollment: e.id, name: body.name });
    return c.json(
      {
        ...e,
        command: `shadowrelay agent --relay ${o.publicUrl()} --enroll ${e.token} --state ./agent-state --vnc 127.0.0.1:5900`,
      },
      201,
    );
  });

  // The agent's enrollment: the one-time token is the credential; the device's public key gets pinned.
  api.post("/api/enroll", async (c) => {
    const body = await jsonBody(c);
    const spki = new Uint8Array(Buffer.from(str(body, "spki", 2048), "base64"));
    const name = body.name === undefined ? undefined : str(body, "name", 256);
    const address = body.address === undefined ? undefined : str(body, "address", 300);
    const device = await node.devices.enroll(str(body, "token", 256), {
      spkiDer: spki,
      ...(name !== undefined ? { name } : {}),
      ...(address !== undefined ? { address } : {}),
    });
    node.audit.append("device.enrolled", device.id, {
      device: device.id,
      name: device.name,
      spkiSha256: device.spkiSha256,
      mode: device.mode,
      remote: o.remote?.(c) ?? null,
    });
    return c.json({ device, relay: { certSha256: o.certSha256 } }, 201);
  });

  api.get("/api/devices", auth("operator"), (c) => c.json(node.listDevices()));
  api.get("/api/devices/:id", auth("operator"), (c) => c.json(node.getDevice(param(c, "id"))));
  api.delete("/api/devices/:id", auth("admin"), (c) => {
    const id = param(c, "id");
    if (id === DEMO_DEVICE_ID)
      throw new ControlError("BAD_REQUEST", "the built-in demo device cannot be deleted");
    node.devices.delete(id);
    node.audit.append("device.delete", c.get("user").name, { device: id });
    return c.json({ ok: true });
  });

  api.post("/api/devices/:id/sessions", auth("operator"), async (c) => {
    const body = await jsonBody(c);
    const mode = body.mode ?? "pipe";
    if (mode !== "pipe") throw new ControlError("BAD_REQUEST", 'mode must be "pipe" in this version');
    const audience = audienceOf(body.audience);
    const { session, ticket, ticketExpiresAt } = node.createSession(c.get("user"), param(c, "id"), {
      viewOnly: optBool(body, "viewOnly", false),
      audience,
    });
    return c.json(
      {
        id: session.id,
        ticket,
        viewerUrl: `${o.publicUrl()}/view/${session.id}?ticket=${ticket}`,
        wsUrl: `${o.publicUrl().replace(/^http/, "ws")}/ws/view/${session.id}?ticket=${ticket}`,
        expiresAt: ticketExpiresAt,
        session,
      },
      201,
    );
  });
  api.post("/api/sessions/:id/tickets", auth("operator"), async (c) => {
    const body = await jsonBody(c);
    const id = param(c, "id");
    const t = node.issueTicket(c.get("user"), id, audienceOf(body.audience));
    return c.json({
      ticket: t.ticket,
      expiresAt: t.expiresAt,
      viewerUrl: `${o.publicUrl()}/view/${id}?ticket=${t.ticket}`,
      wsUrl: `${o.publicUrl().replace(/^http/, "ws")}/ws/view/${id}?ticket=${t.ticket}`,
    });
  });
  // `connect --direct`: no bearer; the native ticket in the body is the credential (redeemed by grantDirect).
  api.post("/api/sessions/:id/direct", async (c) => {
    const body = await jsonBody(c);
    return c.json(await node.grantDirect(param(c, "id"), str(body, "ticket", 2048)));
  });
  api.get("/api/sessions", auth("operator"), (c) => {
    const active = c.req.query("active");
    return c.json(node.listSessions(c.get("user"), active === undefined ? undefined : active !== "false"));
  });
  api.get("/api/sessions/:id", auth("operator"), (c) =>
    c.json(node.sessionFor(c.get("user"), param(c, "id"))),
  );
  api.delete("/api/sessions/:id", auth("operator"), (c) => {
    node.endSession(c.get("user"), param(c, "id"), "ended by an operator");
    return c.json({ ok: true });
  });

  api.get("/api/audit", auth("admin"), (c) => {
    const q = c.req.query();
    const limit = q.limit === undefined ? 200 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
      throw new ControlError("BAD_REQUEST", "limit must be 1…10000");
    return c.json(
      node.audit.list({
        ...(q.kind ? { kind: q.kind } : {}),
        ...(q.actor ? { actor: q.actor } : {}),
        ...(q.since ? { since: q.since } : {}),
        ...(q.until ? { until: q.until } : {}),
        limit,
        order: "desc",
      }),
    );
  });
  api.get("/api/audit/verify", auth("admin"), (c) => c.json(node.audit.verify()));

  api.get("/metrics", (c) => c.text(metricsText(node), 200, { "content-type": "text/plain; version=0.0.4" }));
  return api;
}
