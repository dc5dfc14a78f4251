// One relay node: the control plane (users, devices, sessions, tickets, audit in bun:sqlite under the data
// dir) and the live sessions it carries. Transport-agnostic: the API (relay/control/api.ts) and the
// WebSocket routes (relay/serve/server.ts) call into it, sessions get ByteChannels. The built-in demo
// device (npm start) appears as a device the relay reaches itself over loopback; enrolled devices are
// reached through their agent's gateway connection (relay/gateway/hub.ts), or in direct mode dialled over
// TLS with the device key checked before any byte (relay/gateway/direct.ts); with the device user's consent.

import type { Database } from "bun:sqlite";
import { type RelayConfig, DEFAULT_CONFIG } from "./config.ts";
import { AuditLog } from "./control/audit.ts";
import { openDatabase } from "./control/db.ts";
import { type Device, DeviceRegistry } from "./control/devices.ts";
import { ControlError } from "./control/errors.ts";
import { type SessionRecord, SessionStore } from "./control/sessions.ts";
import {
  type TicketAudience,
  type TicketClaims,
  issueTicket,
  loadTicketSecret,
  redeemTicket,
  TicketError,
  verifyTicket,
} from "./control/tickets.ts";
import { type AuthUser, type Role, Users } from "./control/users.ts";
import { type DirectGrant, issueDirectGrant, openDirectSession } from "./gateway/direct.ts";
import { GatewayHub } from "./gateway/hub.ts";
import { connectTcpChannel } from "./rfb/splice.ts";
import type { ByteChannel } from "./session/channel.ts";
import { type PipeEnd, type PipeSession, startPipe } from "./session/pipe.ts";
import { log } from "./util/log.ts";

/** The built-in demo device's id in the API. */
export const DEMO_DEVICE_ID = "demo";

export interface DeviceView {
  id: string;
  name: string;
  mode: "builtin" | "gateway" | "direct";
  online: boolean;
  spkiSha256: string | null;
  consent: string;
  lastSeenAt: number | null;
}

export interface NodeMetrics {
  sessionsStarted: number;
  sessionsEnded: number;
  bytesToViewers: number;
  bytesToDevices: number;
  ticketsRefused: number;
  originsRefused: number;
  /** Agents refused at the proof of their key (or for an unknown device). */
  devicesRefused: number;
}

interface Live {
  record: SessionRecord;
  pipe: PipeSession | null;
  viewer: ByteChannel | null;
  /** Ends a session nobody connected to once its last ticket expired. */
  pendingTimer: ReturnType<typeof setTimeout> | null;
}

export interface NodeOptions {
  /** Data directory, or ":memory:" for tests. */
  dataDir: string;
  config?: RelayConfig;
  /** Where the built-in demo device listens, when it runs. */
  demo?: () => { host: string; port: number } | undefined;
  now?: () => number;
  /** The relay's TLS private key (PEM, the key of the certificate agents pinned): signs direct-mode requests. */
  directSigner?: { privateKeyPem: string };
}

export class RelayNode {
  readonly db: Database;
  readonly config: RelayConfig;
  readonly audit: AuditLog;
  readonly users: Users;
  readonly devices: DeviceRegistry;
  readonly sessions: SessionStore;
  readonly hub: GatewayHub;
  readonly metrics: NodeMetrics = {
    sessionsStarted: 0,
    sessionsEnded: 0,
    bytesToViewers: 0,
    bytesToDevices: 0,
    ticketsRefused: 0,
    originsRefused: 0,
    devicesRefused: 0,
  };
  readonly #ticketSecret: Uint8Array;
  readonly #live = new Map<string, Live>();
  /** Who ended a session from outside the pipe (the device user), for the audit. */
  readonly #endedBy = new Map<string, string>();
  readonly #demo: () => { host: string; port: number } | undefined;
  readonly #now: () => number;
  readonly #directSigner: { privateKeyPem: string } | undefined;
  #draining = false;

  constructor(o: NodeOptions) {
    this.config = o.config ?? DEFAULT_CONFIG;
    this.#now = o.now ?? Date.now;
    this.#demo = o.demo ?? (() => undefined);
    this.#directSigner = o.directSigner;
    this.db = openDatabase(o.dataDir);
    this.audit = new AuditLog(this.db, {}, this.#now);
    this.users = new Users(
      this.db,
      { tokenTtlMs: this.config.tokenTtlHours * 3600_000 },
      { audit: this.audit.record, now: this.#now },
    );
    this.devices = new DeviceRegistry(this.db);
    this.sessions = new SessionStore(this.db);
    this.#ticketSecret = loadTicketSecret(this.db);
    this.hub = new GatewayHub({
      devices: this.devices,
      audit: (kind, actor, payload) => {
        if (kind === "device.refused") this.metrics.devicesRefused++;
        this.audit.record(kind, actor, payload);
      },
      now: this.#now,
      heartbeatSeconds: this.config.agentHeartbeatSeconds,
      consentTimeoutMs: this.config.consentTimeoutMs,
    });
    this.hub.onDeviceEnded = (sessionId, by, reason) => {
      const live = this.#live.get(sessionId);
      if (live?.pipe) {
        this.#endedBy.set(sessionId, by === "device-user" ? "device-user" : `device (${by})`);
        live.pipe.end(
          (by === "device-user"
            ? `ended by the device user: ${reason}`
            : `ended by the ${by}: ${reason}`
          ).slice(0, 200),
        );
      }
    };
    // Sessions that were open when the process last stopped cannot be resumed.
    const stale = this.sessions.endAllOpen("relay restarted", "relay", this.#now());
    if (stale > 0) this.audit.append("session.end", "system", { count: stale, reason: "relay restarted" });
  }

  /** First start: creates the admin user with a random password and returns it (printed once), else null. */
  ensureAdmin(password?: string): Promise<string | null> {
    return this.users.ensureAdmin(password);
  }

  get liveSessions(): number {
    return this.#live.size;
  }

  listDevices(): DeviceView[] {
    const out: DeviceView[] = [];
    const demo = this.#demo();
    if (demo) {
      out.push({
        id: DEMO_DEVICE_ID,
        name: "Demo device (built in)",
        mode: "builtin",
        online: true,
        spkiSha256: null,
        consent: "none",
        lastSeenAt: this.#now(),
      });
    }
    // A direct device is dialled per session: "online" means the relay can sign its requests.
    for (const d of this.devices.list())
      out.push({
        ...deviceView(d),
        online: d.mode === "direct" ? this.#directSigner !== undefined : this.hub.isOnline(d.id),
      });
    return out;
  }

  getDevice(id: string): DeviceView {
    const d = this.listDevices().find((x) => x.id === id);
    if (!d) throw new ControlError("NOT_FOUND", "no such device");
    return d;
  }

  /** A new pipe session for `user` on a device, and the first viewer ticket. */
  createSession(
    user: AuthUser,
    deviceId: string,
    o: { viewOnly: boolean; audience?: TicketAudience },
  ): { session: SessionRecord; ticket: string; ticketExpiresAt: number } {
    if (this.#draining) throw new ControlError("UNAVAILABLE", "the relay is shutting down");
    const device = this.getDevice(deviceId);
    if (!device.online) throw new ControlError("UNAVAILABLE", "the device is offline");
    if (this.#live.size >= this.config.sessionsPerNode) {
      throw new ControlError("UNAVAILABLE", "this relay carries its maximum number of sessions");
    }
    const session = this.sessions.create(
      { deviceId, user: user.name, role: user.role, mode: "pipe", viewOnly: o.viewOnly },
      this.#now(),
    );
    this.#live.set(session.id, { record: session, pipe: null, viewer: null, pendingTimer: null });
    this.audit.append("session.create", user.name, {
      session: session.id,
      device: deviceId,
      viewOnly: o.viewOnly,
      role: user.role,
    });
    const t = this.issueTicket(user, session.id, o.audience ?? "browser");
    return { session, ticket: t.ticket, ticketExpiresAt: t.expiresAt };
  }

  /** A further viewer ticket for a session the user may use (its owner, or an admin). */
  issueTicket(
    user: AuthUser,
    sessionId: string,
    audience: TicketAudience,
  ): { ticket: string; expiresAt: number } {
    const s = this.sessionFor(user, sessionId);
    if (s.state === "ended") throw new ControlError("GONE", "the session has ended");
    const issued = issueTicket(
      this.#ticketSecret,
      { session: s.id, device: s.deviceId, user: user.name, role: user.role, audience },
      this.config.ticketTtlSeconds,
      this.#now(),
    );
    this.#armPending(s.id, issued.expiresAt);
    return { ticket: issued.ticket, expiresAt: issued.expiresAt };
  }

  /** A session still waiting for its viewer when its newest ticket expires (plus 5 s) ends. */
  #armPending(sessionId: string, expiresAt: number): void {
    const live = this.#live.get(sessionId);
    if (!live || live.viewer !== null) return;
    if (live.pendingTimer) clearTimeout(live.pendingTimer);
    live.pendingTimer = setTimeout(
      () => {
        if (this.#live.get(sessionId)?.viewer === null) {
          this.#ended(sessionId, { reason: "no viewer connected before the ticket expired", by: "relay" });
        }
      },
      Math.max(0, expiresAt - this.#now()) + 5000,
    );
    live.pendingTimer.unref?.();
  }

  /** The session, if `user` may see it: its owner or an admin. */
  sessionFor(user: AuthUser, sessionId: string): SessionRecord {
    const s = this.sessions.get(sessionId);
    if (!s || (s.user !== user.name && user.role !== "admin"))
      throw new ControlError("NOT_FOUND", "no such session");
    return s;
  }

  listSessions(user: AuthUser, active?: boolean): SessionRecord[] {
    const all = this.sessions.list(active === undefined ? {} : { active });
    return user.role === "admin" ? all : all.filter((s) => s.user === user.name);
  }

  /**
   * What the viewer page shows before it connects: the device's name and whether the session is view-only,
   * from a ticket checked (its MAC and session) but not redeemed — the WebSocket redeems it.
   */
  describeViewer(
    sessionId: string,
    ticket: string,
  ): { title?: string; viewOnly?: boolean; refused?: string } {
    try {
      const claims = verifyTicket(this.#ticketSecret, ticket);
      const s = this.sessions.get(sessionId);
      if (!s || claims.session !== sessionId) return { refused: "This link is for another session." };
      if (s.state === "ended") return { refused: "This session has ended." };
      const device = this.listDevices().find((d) => d.id === s.deviceId);
      return { title: device?.name ?? s.deviceId, viewOnly: s.viewOnly };
    } catch {
      return { refused: "This link is not valid. Ask for a new one." };
    }
  }

  /** Redeems a viewer ticket for a WebSocket upgrade; refusals are audited and coded. */
  redeem(sessionId: string, ticket: string, audience: TicketAudience): TicketClaims {
    try {
      const claims = redeemTicket(
        this.db,
        this.#ticketSecret,
        ticket,
        { session: sessionId, audience },
        this.#now(),
      );
      const live = this.#live.get(sessionId);
      if (!live || live.viewer !== null) {
        throw new ControlError("CONFLICT", "the session is not waiting for a viewer");
      }
      return claims;
    } catch (e) {
      this.metrics.ticketsRefused++;
      const reason = e instanceof TicketError ? e.reason : e instanceof ControlError ? e.code : "error";
      this.audit.append("ticket.refused", "viewer", { session: sessionId.slice(0, 64), reason });
      throw e;
    }
  }

  /** The viewer's channel is open: reach the device and start the pipe. */
  async attachViewer(claims: TicketClaims, viewer: ByteChannel): Promise<void> {
    const live = this.#live.get(claims.session);
    if (!live || live.viewer !== null) {
      viewer.close("session not waiting for a viewer");
      return;
    }
    live.viewer = viewer;
    if (live.pendingTimer) clearTimeout(live.pendingTimer);
    const demo = this.#demo();
    let device: ByteChannel;
    let consent = "not required (built-in device)";
    // The viewer may leave while the device is asked; then the session ends and nothing is bridged.
    let viewerGone = false;
    const viewerLeft = new AbortController();
    const viewerClosed = viewer.onClose;
    viewer.onClose = (reason) => {
      viewerGone = true;
      viewerLeft.abort();
      viewerClosed(reason);
    };
    try {
      if (claims.device === DEMO_DEVICE_ID) {
        if (!demo) throw new ControlError("UNAVAILABLE", "the demo device is not running");
        device = await connectTcpChannel(demo.host, demo.port);
      } else if (this.devices.get(claims.device)?.mode === "direct") {
        const d = this.devices.get(claims.device)!;
        if (!d.address || !this.#directSigner) throw new ControlError("UNAVAILABLE", "the device is offline");
        device = await openDirectSession({
          device: { id: d.id, address: d.address, spkiSha256: d.spkiSha256 },
          signer: this.#directSigner,
          sessionId: claims.session,
          requester: { name: claims.user, role: claims.role },
          viewOnly: live.record.viewOnly,
          audit: (kind, actor, payload) => {
            if (kind === "device.refused") this.metrics.devicesRefused++;
            this.audit.record(kind, actor, payload);
          },
          timeouts: { answerTimeoutMs: this.config.consentTimeoutMs },
          signal: viewerLeft.signal,
        });
        consent = "granted";
      } else {
        device = await this.hub.openSession(claims.device, {
          sessionId: claims.session,
          requester: { name: claims.user, role: claims.role },
          viewOnly: live.record.viewOnly,
        });
        consent = "granted";
      }
    } catch (e) {
      const reason =
        e instanceof ControlError && e.code === "FORBIDDEN" && e.message.startsWith("the device user")
          ? "consent denied"
          : e instanceof ControlError
            ? e.message
            : "device unavailable";
      viewer.close(reason);
      this.#ended(claims.session, { reason, by: "relay", detail: String(e) });
      return;
    }
    if (viewerGone) {
      device.close("the viewer left");
      this.#ended(claims.session, { reason: "the viewer left before the device answered", by: "viewer" });
      return;
    }
    this.sessions.activate(claims.session, this.#now());
    this.metrics.sessionsStarted++;
    this.audit.append("session.start", claims.user, {
      session: claims.session,
      device: claims.device,
      role: claims.role,
      audience: claims.audience,
      viewOnly: live.record.viewOnly,
      mode: live.record.mode,
      consent,
    });
    let idleCheck: ReturnType<typeof setInterval> | undefined;
    live.pipe = startPipe({
      viewer,
      device,
      viewOnly: live.record.viewOnly,
      limits: this.config.rfb,
      sendBudgetBytes: this.config.viewerSendBudget,
      sendBudgetMs: this.config.viewerOverBudgetMs,
      onFirstDrop: (kind) =>
        this.audit.append("session.input-dropped", claims.user, { session: claims.session, kind }),
      onEnd: (end) => {
        clearInterval(idleCheck);
        this.#ended(claims.session, end);
      },
    });
    // The idle timeout: no byte either way for sessionIdleSeconds ends the session with that reason.
    const pipe = live.pipe;
    const idleMs = this.config.sessionIdleSeconds * 1000;
    let lastBytes = -1;
    let lastChange = this.#now();
    idleCheck = setInterval(
      () => {
        const bytes = pipe.bytesToViewer + pipe.bytesToDevice;
        if (bytes !== lastBytes) {
          lastBytes = bytes;
          lastChange = this.#now();
        } else if (this.#now() - lastChange >= idleMs) {
          clearInterval(idleCheck);
          pipe.end("idle timeout");
        }
      },
      Math.max(50, Math.min(30_000, idleMs / 4)),
    );
    idleCheck.unref?.();
  }

  /**
   * `connect --direct` (POST /api/sessions/:id/direct): redeems a native ticket for a session on a
   * direct-mode device and returns a grant the viewer's machine presents to the device itself. The relay
   * carries nothing of such a session: it audits "session.start" (mode "direct-viewer", with the pin) and
   * its own part ends at once. Refusals before the grant leave the session waiting (a view-only session can
   * still be watched through the relay with a new ticket).
   */
  async grantDirect(sessionId: string, ticket: string): Promise<DirectGrant> {
    if (this.#draining) throw new ControlError("UNAVAILABLE", "the relay is shutting down");
    const claims = this.redeem(sessionId, ticket, "native");
    const live = this.#live.get(sessionId)!; // redeem checked that it waits for a viewer
    const d = this.devices.get(claims.device);
    if (d?.mode !== "direct" || !d.address) {
      throw new ControlError("BAD_REQUEST", "the session's device is not in direct mode");
    }
    // Only the relay's pipe drops a view-only viewer's input: such a session stays for the relay path.
    if (live.record.viewOnly) {
      throw new ControlError("FORBIDDEN", "a view-only session cannot be direct from the viewer's machine");
    }
    if (!this.#directSigner) throw new ControlError("UNAVAILABLE", "the device is offline");
    // Claimed before the first await: another ticket for this session is refused (CONFLICT) meanwhile.
    if (live.pendingTimer) clearTimeout(live.pendingTimer);
    this.#live.delete(sessionId);
    let grant: DirectGrant;
    try {
      grant = await issueDirectGrant({
        device: { id: d.id, address: d.address, spkiSha256: d.spkiSha256 },
        signer: this.#directSigner,
        sessionId,
        requester: { name: claims.user, role: claims.role },
        viewOnly: false,
        now: this.#now(),
      });
      this.sessions.activate(sessionId, this.#now());
      this.metrics.sessionsStarted++;
      // Fail closed: no grant leaves the relay without its audit record.
      this.audit.append("session.start", claims.user, {
        session: sessionId,
        device: d.id,
        role: claims.role,
        audience: claims.audience,
        viewOnly: false,
        mode: "direct-viewer",
        spkiSha256: grant.spkiSha256,
        address: d.address,
        consent: "asked by the device's agent",
      });
    } catch (e) {
      const reason = e instanceof ControlError ? e.message : "cannot grant a direct session";
      this.#ended(sessionId, { reason, by: "relay", detail: String(e) });
      throw e;
    }
    this.#ended(sessionId, { reason: "handed to the viewer's machine (direct mode)", by: "relay" });
    return grant;
  }

  /** Ends a session from the API or at shutdown. */
  endSession(user: AuthUser | null, sessionId: string, reason: string): void {
    const s = user ? this.sessionFor(user, sessionId) : this.sessions.get(sessionId);
    if (!s) throw new ControlError("NOT_FOUND", "no such session");
    const live = this.#live.get(sessionId);
    if (live?.pipe) {
      live.pipe.end(reason);
      return;
    }
    this.#ended(sessionId, { reason, by: "relay", endedBy: user?.name ?? "system" });
  }

  #ended(
    sessionId: string,
    end: Partial<PipeEnd> & { reason: string; by: string; detail?: string; endedBy?: string },
  ): void {
    const live = this.#live.get(sessionId);
    if (live?.pendingTimer) clearTimeout(live.pendingTimer);
    this.#live.delete(sessionId);
    const endedBy = this.#endedBy.get(sessionId);
    this.#endedBy.delete(sessionId);
    if (endedBy !== undefined) end = { ...end, endedBy };
    // The hub keeps per-session state until told (late agent messages are then ignored).
    if (
      live &&
      isGatewayDevice(live.record.deviceId) &&
      this.devices.get(live.record.deviceId)?.mode !== "direct"
    ) {
      this.hub.endSession(sessionId, end.reason);
    }
    const record = this.sessions.get(sessionId);
    if (!record || record.state === "ended") return;
    const bytesToViewer = end.bytesToViewer ?? 0;
    const bytesToDevice = end.bytesToDevice ?? 0;
    this.metrics.sessionsEnded++;
    this.metrics.bytesToViewers += bytesToViewer;
    this.metrics.bytesToDevices += bytesToDevice;
    this.sessions.end(
      sessionId,
      { reason: end.reason, by: end.endedBy ?? end.by, bytesToDevice, bytesFromDevice: bytesToViewer },
      this.#now(),
    );
    this.audit.append("session.end", end.endedBy ?? end.by, {
      session: sessionId,
      device: record.deviceId,
      user: record.user,
      reason: end.reason,
      ...(end.error ? { error: end.error } : {}),
      bytesToViewer,
      bytesToDevice,
      ...(end.dropped ? { dropped: end.dropped } : {}),
    });
    if (live?.viewer && !live.pipe) live.viewer.close(end.reason);
    log.info("session ended", { session: sessionId, reason: end.reason, by: end.by, detail: end.detail });
  }

  /** SIGTERM: refuse new sessions, let live ones run until the deadline, then end them with a reason. */
  async drain(deadlineMs = this.config.drainMs): Promise<void> {
    this.#draining = true;
    // Sessions nobody has connected to yet end at once; carried ones get until the deadline.
    for (const [id, live] of [...this.#live])
      if (live.viewer === null) this.endSession(null, id, "relay shutting down");
    const until = this.#now() + deadlineMs;
    while (this.#live.size > 0 && this.#now() < until) await Bun.sleep(50);
    for (const id of [...this.#live.keys()]) this.endSession(null, id, "relay shutting down");
  }

  close(): void {
    this.hub.close();
    this.db.close();
  }

  roleAllows(user: AuthUser, need: Role): boolean {
    return need === "operator" || user.role === "admin";
  }
}

function deviceView(d: Device): DeviceView {
  return {
    id: d.id,
    name: d.name,
    mode: d.mode,
    online: false,
    spkiSha256: d.spkiSha256,
    consent: d.consent,
    lastSeenAt: d.lastSeenAt ?? null,
  };
}

/** Every device but the built-in demo is reached through an agent. */
function isGatewayDevice(deviceId: string): boolean {
  return deviceId !== DEMO_DEVICE_ID;
}
