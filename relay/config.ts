// Every relay-level limit and timeout as a named option with its default (DESIGN.md "Limits"; issue #4
// "Operations"). Protocol limits (framebuffer, strings, fences, …) stay in relay/rfb/limits.ts and are
// part of this config as `rfb`. Modules take the values from here; nothing else hard-codes them.

import { AGENT_DEFAULTS } from "./agent/agent.ts";
import { BACKOFF_DEFAULTS } from "./agent/backoff.ts";
import { CONSENT_DEFAULTS } from "./agent/consent.ts";
import { ENROLL_DEFAULTS } from "./agent/enroll.ts";
import { IDENTITY_DEFAULTS } from "./agent/identity.ts";
import { RELAY_TRUST_DEFAULTS } from "./agent/relay-trust.ts";
import { VNC_BRIDGE_DEFAULTS } from "./agent/vnc-bridge.ts";
import { DIRECT_AGENT_DEFAULTS } from "./agent/direct.ts";
import { CONNECT_DIRECT_DEFAULTS } from "./connect/direct.ts";
import { CONNECT_PROXY_DEFAULTS } from "./connect/proxy.ts";
import { AUDIT_DEFAULTS } from "./control/audit.ts";
import { DEVICE_DEFAULTS } from "./control/devices.ts";
import { SESSION_DEFAULTS } from "./control/sessions.ts";
import { TICKET_DEFAULTS } from "./control/tickets.ts";
import { USERS_DEFAULTS } from "./control/users.ts";
import { DIRECT_SESSION_DEFAULTS } from "./gateway/direct.ts";
import { HUB_DEFAULTS } from "./gateway/hub.ts";
import { VIEWER_DEFAULTS } from "./serve/viewer.ts";
import { PIPE_DEFAULTS } from "./session/pipe.ts";
import { DEFAULT_LIMITS, type RfbLimits } from "./rfb/limits.ts";

export interface RelayConfig {
  rfb: RfbLimits;
  /** Seconds a viewer ticket stays redeemable. @default 60 */
  ticketTtlSeconds: number;
  /** Hours a login's bearer token lives. @default 12 */
  tokenTtlHours: number;
  /** Minutes an enrollment token stays usable. @default 15 */
  enrollmentTtlMinutes: number;
  /** Login failures before a lockout, per user and per address. @default 5 */
  loginFailuresBeforeLockout: number;
  /** First lockout in seconds; each further one doubles, up to loginLockoutMaxSeconds. @default 10 */
  loginLockoutSeconds: number;
  /** @default 3600 */
  loginLockoutMaxSeconds: number;
  /** Largest WebSocket message from a viewer, bytes (RFB client messages are small). @default 262144 */
  viewerWsMaxPayload: number;
  /** Largest WebSocket message from an agent's data channel, bytes. @default 16 MiB */
  agentWsMaxPayload: number;
  /** Bytes queued to one viewer above which the session stops being fed; over it past the deadline, closed. @default 16 MiB */
  viewerSendBudget: number;
  /** Milliseconds a viewer may stay over its send budget before it is closed. @default 30000 */
  viewerOverBudgetMs: number;
  /** Seconds a session may carry no bytes in either direction before it is closed. @default 600 */
  sessionIdleSeconds: number;
  /** Viewers per pipe session (the broadcast issue raises it per session). @default 1 */
  viewersPerSession: number;
  /** Concurrent sessions on this node. @default 500 */
  sessionsPerNode: number;
  /** Seconds between agent heartbeats; an agent silent for 3 of them is offline. @default 15 */
  agentHeartbeatSeconds: number;
  /** Milliseconds an agent gets to answer a session request (consent included). @default 45000 */
  consentTimeoutMs: number;
  /** Milliseconds SIGTERM lets sessions finish before closing them with a reason. @default 10000 */
  drainMs: number;
  /** Origins allowed to open viewer WebSockets, besides the relay's own public URL. @default [] */
  allowedOrigins: string[];
}

export const DEFAULT_CONFIG: Readonly<RelayConfig> = Object.freeze({
  rfb: DEFAULT_LIMITS,
  ticketTtlSeconds: 60,
  tokenTtlHours: 12,
  enrollmentTtlMinutes: 15,
  loginFailuresBeforeLockout: 5,
  loginLockoutSeconds: 10,
  loginLockoutMaxSeconds: 3600,
  viewerWsMaxPayload: 256 * 1024,
  agentWsMaxPayload: 16 * 1024 * 1024,
  viewerSendBudget: 16 * 1024 * 1024,
  viewerOverBudgetMs: 30_000,
  sessionIdleSeconds: 600,
  viewersPerSession: 1,
  sessionsPerNode: 500,
  agentHeartbeatSeconds: 15,
  consentTimeoutMs: 45_000,
  drainMs: 10_000,
  allowedOrigins: [],
});

/** Defaults with overrides; numbers must be non-negative safe integers. */
export function configWith(overrides: Partial<RelayConfig> = {}): RelayConfig {
  const out: RelayConfig = { ...DEFAULT_CONFIG, ...overrides, rfb: { ...DEFAULT_LIMITS, ...overrides.rfb } };
  for (const [k, v] of Object.entries(out)) {
    if (typeof v === "number" && (!Number.isSafeInteger(v) || v < 0)) {
      throw new RangeError(`config ${k} must be a non-negative integer, got ${v}`);
    }
  }
  return out;
}

// ---- Every module's own limits and timeouts, in one place -------------------------------------------
// Each module keeps its defaults next to the code that enforces them (with the reason for each value in
// its doc comment); this table is the index, so `relay/config.ts` names every limit of the relay. The
// relay-level values above win where both exist (e.g. ticketTtlSeconds over TICKET_DEFAULTS.ttlSeconds):
// relay/node.ts passes them into the modules.

export const MODULE_DEFAULTS = Object.freeze({
  users: USERS_DEFAULTS,
  audit: AUDIT_DEFAULTS,
  devices: DEVICE_DEFAULTS,
  sessions: SESSION_DEFAULTS,
  tickets: TICKET_DEFAULTS,
  gatewayHub: HUB_DEFAULTS,
  directSession: DIRECT_SESSION_DEFAULTS,
  pipe: PIPE_DEFAULTS,
  viewerPage: VIEWER_DEFAULTS,
  connectProxy: CONNECT_PROXY_DEFAULTS,
  connectDirect: CONNECT_DIRECT_DEFAULTS,
  agent: AGENT_DEFAULTS,
  agentBackoff: BACKOFF_DEFAULTS,
  agentConsent: CONSENT_DEFAULTS,
  agentEnroll: ENROLL_DEFAULTS,
  agentIdentity: IDENTITY_DEFAULTS,
  agentRelayTrust: RELAY_TRUST_DEFAULTS,
  agentVncBridge: VNC_BRIDGE_DEFAULTS,
  agentDirect: DIRECT_AGENT_DEFAULTS,
});
