// `connect --direct` end to end on loopback: a real Xvnc with a VNC password behind our direct agent, a real
// relay (startServer: its data dir, TLS key and enrollment), and the viewer's machine: it asks for a grant
// with its native ticket, runs the loopback proxy with a one-time password and, once the viewer
// authenticated, dials the device itself — the key checked against the pin before any byte, the relay-signed
// request, the consent answer. Our RfbClient sees the X display exactly while the relay carries nothing. A
// grant with another key's pin never reaches the device; a grant used twice is refused by the agent (replay).
//
// The grant route (POST /api/sessions/:id/direct) is not in relay/control/api.ts yet: `grantDirect` below is
// the RelayNode method proposed for relay/node.ts, written against the node's public members, and a small
// TLS server with the relay's certificate serves it as the route would.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import type { Server } from "bun";
import { type DirectAgentEvent, type DirectAgentHandle, startDirectAgent } from "../../relay/agent/direct.ts";
import { enrollAgent } from "../../relay/agent/enroll.ts";
import { directOpener, fetchDirectGrant, openDirectGrant } from "../../relay/connect/direct.ts";
import { startConnectProxy } from "../../relay/connect/proxy.ts";
import { ControlError } from "../../relay/control/errors.ts";
import { type DirectGrant, issueDirectGrant, parseDirectGrant } from "../../relay/gateway/direct.ts";
import type { RelayNode } from "../../relay/node.ts";
import { Encoding } from "../../relay/rfb/constants.ts";
import { type RunningServer, startServer } from "../../relay/serve/server.ts";
import { generateSelfSigned } from "../../relay/util/x509.ts";
import { connectClient } from "../helpers/rfb-peer.ts";
import { compareImages, describeStats, EXACT } from "../peers/images.ts";
import {
  captureX,
  freePort,
  killAll,
  makeTempDir,
  PAINT_PEERS,
  paint,
  requirePeer,
  startXvnc,
  XVNC_PEERS,
  type Xvnc,
} from "../peers/rig.ts";

const ok = requirePeer(...XVNC_PEERS, ...PAINT_PEERS);
const ADMIN = "connect-direct-admin-pw";
const VNC_PASSWORD = "directpw";

let relay: RunningServer;
let signerPem = "";
let route: Server<undefined>;
let xvnc: Xvnc;
let agent: DirectAgentHandle;
const events: DirectAgentEvent[] = [];
let deviceId = "";
let token = "";
const fakes: { stop(closeActive?: boolean): void }[] = [];

/** The RelayNode method proposed for relay/node.ts (there: #live, #ended and #directSigner directly). */
async function grantDirect(node: RelayNode, sessionId: string, ticket: string): Promise<DirectGrant> {
  const claims = node.redeem(sessionId, ticket, "native");
  const record = node.sessions.get(sessionId)!;
  const d = node.devices.get(claims.device);
  if (d?.mode !== "direct" || !d.address)
    throw new ControlError("BAD_REQUEST", "the session's device is not in direct mode");
  // Only the relay's pipe drops a view-only viewer's input: such a session stays for the relay path.
  if (record.viewOnly) throw new ControlError("FORBIDDEN", "a view-only session cannot be direct");
  let grant: DirectGrant;
  try {
    grant = await issueDirectGrant({
      device: { id: d.id, address: d.address, spkiSha256: d.spkiSha256 },
      signer: { privateKeyPem: signerPem },
      sessionId,
      requester: { name: claims.user, role: claims.role },
      viewOnly: record.viewOnly,
    });
  } catch (e) {
    node.endSession(null, sessionId, e instanceof ControlError ? e.message : "cannot grant");
    throw e;
  }
  node.sessions.activate(sessionId);
  node.metrics.sessionsStarted++;
  node.audit.append("session.start", claims.user, {
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
  node.endSession(null, sessionId, "handed to the viewer's machine (direct mode)");
  return grant;
}

async function api(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${relay.url}${path}`, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    tls: { ca: relay.tls.certPem },
  });
  return (await res.json()) as Record<string, unknown>;
}

/** A native session on the direct device: its id and ticket. */
async function nativeSession(viewOnly = false): Promise<{ id: string; ticket: string }> {
  const s = await api("POST", `/api/devices/${deviceId}/sessions`, { audience: "native", viewOnly });
  expect(typeof s.ticket).toBe("string");
  return { id: s.id as string, ticket: s.ticket as string };
}

function routeUrl(): string {
  return `https://127.0.0.1:${route.port}`;
}

async function rejection(p: Promise<unknown>): Promise<ControlError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ControlError) return e;
    throw e;
  }
  throw new Error("expected a rejection");
}

// Skips only outside CI, loudly: requirePeer() throws when CI=true, so in CI these tests always run.
describe.skipIf(!ok)(
  "connect --direct: viewer's machine → (TLS, pinned key, relay-signed grant) → agent → Xvnc",
  () => {
    beforeAll(async () => {
      xvnc = await startXvnc({ width: 640, height: 400, password: VNC_PASSWORD });
      await paint(xvnc, { pattern: "test" });
      relay = await startServer({
        listen: "127.0.0.1:0",
        dataDir: makeTempDir("shadowrelay-connect-direct-"),
        adminPassword: ADMIN,
      });
      signerPem = readFileSync(relay.tls.keyFile, "utf8");
      token = (await api("POST", "/api/login", { name: "admin", password: ADMIN })).token as string;
      const enrollment = await api("POST", "/api/enrollments", { name: "direct-viewer-pc" });
      const stateDir = makeTempDir("shadowrelay-connect-direct-agent-");
      const port = freePort();
      const enrolled = await enrollAgent({
        relayUrl: relay.url,
        token: enrollment.token as string,
        stateDir,
        relayFingerprint: relay.tls.certSha256Hex,
        address: `127.0.0.1:${port}`,
      });
      deviceId = enrolled.device.id;
      agent = await startDirectAgent({
        stateDir,
        listen: `127.0.0.1:${port}`,
        vnc: { host: "127.0.0.1", port: xvnc.port },
        vncPassword: new TextEncoder().encode(VNC_PASSWORD),
        consent: "none",
        onEvent: (e) => events.push(e),
      });
      // The route as api.ts would serve it: no bearer, the ticket in the body is the credential.
      route = Bun.serve({
        hostname: "127.0.0.1",
        port: 0,
        tls: { cert: relay.tls.certPem, key: signerPem },
        fetch: async (req) => {
          const m = /^\/api\/sessions\/([^/]{1,128})\/direct$/.exec(new URL(req.url).pathname);
          if (req.method !== "POST" || m === null) return new Response("not found", { status: 404 });
          try {
            const body = (await req.json()) as { ticket?: unknown };
            if (typeof body.ticket !== "string") throw new ControlError("BAD_REQUEST", "ticket missing");
            return Response.json(await grantDirect(relay.node, m[1]!, body.ticket));
          } catch (e) {
            const err = e instanceof ControlError ? e : new ControlError("INTERNAL", "internal error");
            return Response.json(err.toJSON(), { status: err.status });
          }
        },
      });
    }, 60_000);

    afterAll(async () => {
      for (const f of fakes) f.stop(true);
      route?.stop(true);
      await agent?.stop();
      await relay?.stop();
      await xvnc?.stop();
      await killAll();
    });

    test("our client through the proxy sees the X display exactly; the relay audits the start and carries nothing", async () => {
      const s = await nativeSession();
      const before = relay.node.metrics.bytesToViewers;
      const proxy = startConnectProxy({
        openRelay: directOpener({
          relayUrl: routeUrl(),
          sessionId: s.id,
          ticket: s.ticket,
          caPem: relay.tls.certPem,
        }),
      });
      const c = await connectClient(proxy.port, {
        password: proxy.password,
        encodings: [Encoding.ZRLE, Encoding.Raw],
      });
      await c.until(() => c.client.ready, "handshake");
      await c.update(false);
      const fb = c.client.fb!;
      const rgba = fb.data.slice();
      for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255;
      const exact = compareImages({ width: fb.width, height: fb.height, rgba }, await captureX(xvnc), EXACT);
      expect({ ok: exact.ok, stats: describeStats(exact) }).toEqual({ ok: true, stats: expect.any(String) });
      expect(agent.sessions()).toEqual([s.id]);
      c.close();
      const result = await proxy.done;
      expect(result.outcome).toBe("completed");
      expect(result.bytesToViewer).toBeGreaterThan((640 * 400) / 16);

      // The relay: one start (direct-viewer, with the pin) and its part ended; no byte carried, nothing live.
      const starts = relay.node.audit
        .list({ kind: "session.start" })
        .filter((r) => r.payload.session === s.id);
      expect(starts.map((r) => [r.payload.mode, r.payload.spkiSha256, r.payload.device])).toEqual([
        ["direct-viewer", agent.spkiSha256, deviceId],
      ]);
      expect(relay.node.sessions.get(s.id)).toMatchObject({
        state: "ended",
        endReason: "handed to the viewer's machine (direct mode)",
        bytesFromDevice: 0,
      });
      expect(relay.node.metrics.bytesToViewers).toBe(before);
      expect(relay.node.liveSessions).toBe(0);
      expect(JSON.stringify(relay.node.audit.list({}))).not.toContain(VNC_PASSWORD);
    }, 60_000);

    test("a grant with another key's pin is refused before any byte; the same grant used twice is a replay", async () => {
      const s = await nativeSession();
      const grant = await fetchDirectGrant({
        relayUrl: routeUrl(),
        sessionId: s.id,
        ticket: s.ticket,
        caPem: relay.tls.certPem,
      });
      expect(grant).toMatchObject({ deviceId, address: relay.node.devices.get(deviceId)!.address });
      const seen = events.length;

      // Another device's key: the real agent presents its own, so nothing is sent.
      const other = await generateSelfSigned({ commonName: "another-device" });
      const mismatch = await rejection(openDirectGrant({ ...grant, spkiSha256: other.spkiSha256Hex }));
      expect([mismatch.code, mismatch.message]).toEqual(["FORBIDDEN", "device key mismatch"]);

      // An impostor at another address presenting that other key receives not a byte either.
      let accepted = 0;
      let received = 0;
      const impostor = Bun.listen({
        hostname: "127.0.0.1",
        port: 0,
        tls: { cert: other.certPem, key: other.keyPem },
        socket: {
          open() {
            accepted++;
          },
          handshake() {},
          data(_s, d) {
            received += d.byteLength;
          },
        },
      });
      fakes.push(impostor);
      const elsewhere = await rejection(openDirectGrant({ ...grant, address: `127.0.0.1:${impostor.port}` }));
      expect([elsewhere.code, elsewhere.message]).toEqual(["FORBIDDEN", "device key mismatch"]);
      await Bun.sleep(200);
      expect([accepted, received]).toEqual([1, 0]);

      // The agent never saw the request: it is still unused, and the genuine pin opens the session with it.
      expect(events.slice(seen)).toEqual([]);
      const first = await openDirectGrant(grant);
      expect(agent.sessions()).toEqual([s.id]);
      first.close("done");

      // Used twice: the agent refuses the nonce (through the proxy too: the viewer's session fails).
      const again = await rejection(openDirectGrant(grant));
      expect([again.code, again.message]).toEqual([
        "UNAVAILABLE",
        "the device refused the relay's request: replay",
      ]);
      const proxy = startConnectProxy({ openRelay: () => openDirectGrant(grant) });
      const c = await connectClient(proxy.port, { password: proxy.password }).catch((e: unknown) => e);
      const result = await proxy.done;
      expect(result.outcome).toBe("failed");
      expect(result.reason).toEndWith("the device refused the relay's request: replay");
      if (c && typeof c === "object" && "close" in c) (c as { close(): void }).close();
      expect(
        events
          .slice(seen)
          .filter((e) => e.type === "refused")
          .map((e) => (e.type === "refused" ? e.reason : "")),
      ).toEqual(["replay", "replay"]);
    }, 60_000);

    test("the relay refuses a ticket used twice and a view-only session; a tampered grant is not a grant", async () => {
      const s = await nativeSession();
      const o = { relayUrl: routeUrl(), sessionId: s.id, ticket: s.ticket, caPem: relay.tls.certPem };
      await fetchDirectGrant(o);
      const twice = await rejection(fetchDirectGrant(o));
      expect([twice.code, twice.message]).toEqual(["CONFLICT", "ticket has already been used"]);

      const v = await nativeSession(true);
      const viewOnly = await rejection(fetchDirectGrant({ ...o, sessionId: v.id, ticket: v.ticket }));
      expect(viewOnly.code).toBe("FORBIDDEN");
      expect(viewOnly.message).toContain("view-only");
      expect(relay.node.sessions.get(v.id)?.state).toBe("pending");
      relay.node.endSession(null, v.id, "test done");
      // issueDirectGrant refuses one itself, whatever its caller checked.
      const signed = await rejection(
        issueDirectGrant({
          device: { id: deviceId, address: "127.0.0.1:1", spkiSha256: agent.spkiSha256 },
          signer: { privateKeyPem: signerPem },
          sessionId: v.id,
          requester: { name: "alice", role: "operator" },
          viewOnly: true,
        }),
      );
      expect(signed.code).toBe("FORBIDDEN");

      // Another session's id in the URL: the ticket is bound to its own session.
      const w = await nativeSession();
      const crossed = await rejection(fetchDirectGrant({ ...o, sessionId: w.id, ticket: s.ticket }));
      expect([crossed.code, crossed.message]).toEqual(["FORBIDDEN", "ticket is for another session"]);
      relay.node.endSession(null, w.id, "test done");

      // The relay's certificate is checked: another CA is refused before any ticket is sent.
      const stranger = await generateSelfSigned({ commonName: "not-the-relay" });
      const untrusted = await rejection(fetchDirectGrant({ ...o, caPem: stranger.certPem }));
      expect([untrusted.code, untrusted.message]).toEqual([
        "UNAVAILABLE",
        "cannot reach the relay for a direct grant",
      ]);

      const grant = await issueDirectGrant({
        device: { id: deviceId, address: "127.0.0.1:1", spkiSha256: agent.spkiSha256 },
        signer: { privateKeyPem: signerPem },
        sessionId: "abc",
        requester: { name: "alice", role: "operator" },
        viewOnly: false,
      });
      expect(parseDirectGrant(JSON.parse(JSON.stringify(grant)))).toEqual(grant);
      expect(parseDirectGrant({ ...grant, extra: 1 })).toBe("not a direct grant");
      expect(parseDirectGrant({ ...grant, spkiSha256: "00" })).toBe("bad spkiSha256");
      expect(parseDirectGrant({ ...grant, address: "nowhere" })).toBe("bad address");
      expect(parseDirectGrant({ ...grant, request: { ...grant.request, signature: "x" } })).toBe(
        "bad request: bad signature encoding",
      );
    }, 60_000);
  },
);
