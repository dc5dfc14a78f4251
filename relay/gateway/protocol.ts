// The gateway protocol between the relay and an agent (DESIGN.md flows; issue #4 "Gateway mode"):
// JSON text messages on the agent's control WebSocket (/ws/agent), and one binary data WebSocket per
// session (/ws/agent/data/:session) carrying RFB bytes. The agent proves possession of its device key by
// signing a fresh server challenge (works behind a TLS-terminating balancer, unlike channel binding).
// Signatures: ECDSA P-256 with SHA-256 over proofPayload(), WebCrypto's IEEE P1363 form (r || s, 64 bytes),
// base64url without padding.

/** Relay → agent, first message on /ws/agent. */
export interface ChallengeMsg {
  type: "challenge";
  /** 32 random bytes, base64url. */
  nonce: string;
}

/** Agent → relay, answer to the challenge. */
export interface HelloMsg {
  type: "hello";
  deviceId: string;
  /** base64url ECDSA P-256 signature over proofPayload("agent", nonce, deviceId). */
  signature: string;
  /** The agent's consent policy, shown to operators. */
  consent: "none" | "notify" | "ask";
  /** The agent's version. */
  version: string;
}

/** Relay → agent: the device is known and its key matched its pin. */
export interface WelcomeMsg {
  type: "welcome";
  deviceId: string;
  /** Seconds between heartbeats the relay expects. */
  heartbeatSeconds: number;
}

export interface PingMsg {
  type: "ping";
  t: number;
}

export interface PongMsg {
  type: "pong";
  t: number;
}

/** Relay → agent: a viewer wants this device. */
export interface SessionRequestMsg {
  type: "session";
  sessionId: string;
  requester: { name: string; role: "admin" | "operator" };
  viewOnly: boolean;
  /** Bearer token the agent presents when it opens /ws/agent/data/:sessionId (single use). */
  dataToken: string;
}

/** Agent → relay: the consent decision for a session. */
export interface ConsentMsg {
  type: "consent";
  sessionId: string;
  granted: boolean;
  /** "policy none", "user accepted", "user refused", "timeout", "command failed", … */
  reason: string;
}

/** Either way: the session ends (the device user ended it, or the relay did). */
export interface EndMsg {
  type: "end";
  sessionId: string;
  /** Who ended it: "device-user", "relay", "viewer", … */
  by: string;
  reason: string;
}

export type RelayToAgent = ChallengeMsg | WelcomeMsg | PingMsg | SessionRequestMsg | EndMsg;
export type AgentToRelay = HelloMsg | PongMsg | ConsentMsg | EndMsg;

/** Domain-separated bytes that get signed: who signs, for what, the nonce and the device. */
export function proofPayload(purpose: "agent" | "relay", nonce: string, deviceId: string): Uint8Array {
  return new TextEncoder().encode(`shadowrelay-proof-v1\n${purpose}\n${nonce}\n${deviceId}\n`);
}

export function toBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64url");
}

export function fromBase64url(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, "base64url"));
}
