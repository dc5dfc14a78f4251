#!/usr/bin/env bun
// `shadowrelay`: the command line (DESIGN.md "Contract"). Parses arguments and hands off to the module that
// does the work; nothing here speaks a protocol.

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { type ParseArgsConfig, parseArgs } from "node:util";
import packageJson from "../package.json" with { type: "json" };
import { adminCommand } from "./admin.ts";
import { startAgent } from "./agent/agent.ts";
import { startDirectAgent } from "./agent/direct.ts";
import { enrollAgent } from "./agent/enroll.ts";
import { TsKernels } from "./codec/ts-kernels.ts";
import { directOpener } from "./connect/direct.ts";
import { startConnectProxy } from "./connect/proxy.ts";
import { openWsChannel } from "./connect/ws-client.ts";
import { createWasmKernels } from "./codec/wasm-kernels.ts";
import { startDemoDevice } from "./demo/server.ts";
import { canonicalToRgba, readRecording, replay } from "./replay.ts";
import { toRfbError } from "./rfb/errors.ts";
import { encodePng } from "./util/png.ts";
import { readVncPasswordFile } from "./rfb/vnc-auth.ts";
import { DEFAULT_LISTEN, parseListen, startServer } from "./serve/server.ts";
import { log } from "./util/log.ts";

const USAGE = `shadowrelay ${packageJson.version}: shadow remote devices' screens over VNC

Usage:
  shadowrelay serve [--listen 0.0.0.0:8443] [--data DIR] [--public-url URL] [--demo] [--cert F --key F]
  shadowrelay demo --listen HOST:PORT [--password-file F]
  shadowrelay connect --relay URL --ticket T [--direct] [--listen 127.0.0.1:0] [--exec CMD] [--ca FILE | --insecure]
  shadowrelay admin [--relay URL] [--ca FILE | --insecure] <login|users|devices|enroll|session|ticket|sessions|end|audit|verify> …
  shadowrelay agent --relay URL --enroll TOKEN --state DIR [--relay-fingerprint HEX] [--name N]
  shadowrelay agent --state DIR --vnc HOST:PORT [--vnc-password-file F] [--consent none|notify|ask] [--consent-command CMD]
  shadowrelay replay --server S2C[.gz] [--client C2S[.gz]] --out FILE.png|FILE.rgba [--at-update N]

Run 'shadowrelay <command> --help' for a command's options.`;

const PENDING: Record<string, string> = {};

function fail(msg: string): never {
  process.stderr.write(`shadowrelay: ${msg}\n`);
  process.exit(2);
}

function waitForSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (sig: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info("stopping", { signal: sig });
    stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));
}

async function demo(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: "string", default: "127.0.0.1:5999" },
      "password-file": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(`shadowrelay demo --listen HOST:PORT [--password-file F]

Runs the built-in demo device alone: an RFB server with a changing 1280x720 desktop that draws the
pointer's trail and echoes typed text. Any VNC viewer can connect to it. With --password-file (a file
written by vncpasswd -f), viewers must pass VNC Authentication.`);
    return;
  }
  const addr = parseListen(values.listen);
  const password = values["password-file"]
    ? readVncPasswordFile(new Uint8Array(readFileSync(values["password-file"]))).password
    : undefined;
  const dev = await startDemoDevice({
    host: addr.hostname,
    port: addr.port,
    ...(password ? { password } : {}),
  });
  const shown = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  console.log(
    `demo device listening on ${shown}:${dev.port} (${password ? "VNC Authentication" : "no password"})`,
  );
  waitForSignal(() => dev.stop());
}

async function serve(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: "string", default: DEFAULT_LISTEN },
      data: { type: "string", default: "data" },
      "public-url": { type: "string" },
      demo: { type: "boolean", default: false },
      cert: { type: "string" },
      key: { type: "string" },
      redis: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(`shadowrelay serve [--listen 0.0.0.0:8443] [--data DIR] [--public-url URL] [--demo] [--cert F --key F]

Runs a relay node over TLS. The first start creates the data directory and a self-signed certificate
(or uses --cert/--key). --demo also starts the built-in demo device on 127.0.0.1.`);
    return;
  }
  if (values.redis) fail("--redis (cluster state) is not available yet; run a single node without it");
  if ((values.cert === undefined) !== (values.key === undefined)) fail("--cert and --key go together");
  const server = await startServer({
    listen: values.listen,
    dataDir: values.data,
    ...(values["public-url"] ? { publicUrl: values["public-url"] } : {}),
    ...(values.cert ? { certFile: values.cert } : {}),
    ...(values.key ? { keyFile: values.key } : {}),
    ...(values.demo ? { demo: { start: () => startDemoDevice({ host: "127.0.0.1", port: 0 }) } } : {}),
    // DESIGN.md: the first admin's password may come from the environment instead of being generated.
    ...(process.env.SHADOWRELAY_ADMIN_PASSWORD
      ? { adminPassword: process.env.SHADOWRELAY_ADMIN_PASSWORD }
      : {}),
  });
  const lines = [
    "",
    `shadowrelay ${packageJson.version} is running`,
    `  web:        ${server.publicUrl}/   (health: ${server.publicUrl}/healthz)`,
    `  TLS:        ${server.tls.generated ? "self-signed certificate created in" : "certificate from"} ${server.tls.certFile}`,
    `              SHA-256 ${server.tls.certSha256Hex}`,
  ];
  if (server.demo) {
    lines.push(
      `  demo device: 127.0.0.1:${server.demo.port} (RFB, loopback only; try: vncviewer 127.0.0.1::${server.demo.port})`,
    );
  }
  if (server.adminPassword !== null) {
    lines.push(
      `  first start: user "admin", password ${server.adminPassword}   (shown once; change it with: shadowrelay admin passwd admin)`,
    );
  }
  lines.push(
    `  login:      shadowrelay admin --relay ${server.publicUrl} login admin   (the web console arrives with issue #6)`,
    "  stop:       Ctrl+C",
    "",
  );
  console.log(lines.join("\n"));
  waitForSignal(() => server.stop());
}

const REPLAY_HELP = `shadowrelay replay --server S2C[.gz] [--client C2S[.gz]] --out FILE.png|FILE.rgba [--at-update N] [--core wasm|ts]

Decodes a recorded RFB session with the relay's own decoders and writes its framebuffer. --server is the
server-to-client byte stream from its first byte ("RFB 003.008"); --client, the client-to-server bytes,
tells which security type, pixel format and encodings the client chose (without it: the security type is
inferred and ServerInit's pixel format assumed). .gz files are unpacked. --at-update N stops after update
N (0-based, as a corpus index's afterUpdate). The output is a PNG, or raw RGBA (A = 255) for .rgba.
--core ts uses the pure-TypeScript twin instead of the WASM codec core. Exit 1 with the error's code on
the first bad byte.`;

/** parseArgs, with a usage error (unknown option, missing value) as exit status 2 like every other. */
function parseOrFail<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    fail(e instanceof Error ? e.message : String(e));
  }
}

async function replayCommand(argv: string[]): Promise<void> {
  const { values } = parseOrFail({
    args: argv,
    options: {
      server: { type: "string" },
      client: { type: "string" },
      out: { type: "string" },
      "at-update": { type: "string" },
      core: { type: "string", default: "wasm" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(REPLAY_HELP);
    return;
  }
  if (!values.server || !values.out) fail(`replay needs --server and --out\n\n${REPLAY_HELP}`);
  if (!values.out.endsWith(".png") && !values.out.endsWith(".rgba")) fail("--out must end in .png or .rgba");
  let atUpdate: number | undefined;
  if (values["at-update"] !== undefined) {
    atUpdate = Number(values["at-update"]);
    if (!Number.isInteger(atUpdate) || atUpdate < 0) fail("--at-update takes an update number ≥ 0");
  }
  if (values.core !== "wasm" && values.core !== "ts") fail("--core is wasm or ts");
  const kernels = values.core === "ts" ? new TsKernels() : await createWasmKernels("release");
  const server = readRecording(values.server);
  const client = values.client ? readRecording(values.client) : undefined;
  const started = performance.now();
  let result: ReturnType<typeof replay>;
  try {
    result = replay({
      server,
      kernels,
      ...(client ? { client } : {}),
      ...(atUpdate !== undefined ? { atUpdate } : {}),
    });
  } catch (e) {
    const err = toRfbError(e);
    process.stderr.write(`shadowrelay replay: ${err.message}\n`);
    process.exit(1);
  }
  const seconds = (performance.now() - started) / 1000;
  const rgba = canonicalToRgba(result.pixels);
  writeFileSync(
    values.out,
    values.out.endsWith(".png") ? encodePng(result.width, result.height, rgba) : rgba,
  );
  const mpx = result.pixelsDecoded / 1e6;
  console.log(
    `${values.out}: ${result.width}x${result.height} "${result.desktopName}" after ${result.updates} updates, ` +
      `${result.rects} rects, ${mpx.toFixed(2)} Mpx decoded in ${(seconds * 1000).toFixed(0)} ms ` +
      `(${(mpx / seconds).toFixed(0)} Mpx/s, ${kernels.name})${result.complete ? "" : "; the recording ends mid-message"}`,
  );
}

const CONNECT_HELP = `shadowrelay connect --relay URL --ticket T [--direct] [--listen 127.0.0.1:0] [--exec CMD] [--ca FILE | --insecure]

Lets a native VNC viewer shadow a session: listens on loopback for one viewer, prints the address and a
one-time VNC password (8 characters, single use, burned after 3 wrong answers, valid 2 minutes), and when
the viewer has authenticated, bridges it over WSS to the relay's /ws/view/<session>. The ticket comes from
"POST /api/devices/:id/sessions" with audience "native" (shadowrelay admin session DEVICE --native).
--exec starts the viewer: {addr} becomes host::port (TigerVNC's form), {host} and {port} the parts, and
{password} the one-time password, e.g. --exec "vncviewer {addr}". The relay's certificate is pinned
with --ca (default: data/tls/cert.pem when it exists).
--direct (a session on a direct-mode device): once the viewer has authenticated, asks the relay for a
one-time grant (POST /api/sessions/<id>/direct with the ticket), dials the device itself over TLS 1.3,
checks its key against the pinned one before sending anything, and presents the relay-signed grant; the
relay authorises and audits but carries no screen data. View-only sessions cannot be direct.`;

/** The session id a ticket names (its payload is readable; only the relay can check its MAC). */
function ticketSession(ticket: string): string {
  const payload = ticket.split(".")[0] ?? "";
  try {
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { session?: unknown };
    if (typeof claims.session === "string" && /^[A-Za-z0-9_-]{1,128}$/.test(claims.session))
      return claims.session;
  } catch {
    // fall through
  }
  fail("--ticket is not a shadowrelay viewer ticket");
}

/** --ca FILE, or data/tls/cert.pem when present; --insecure only when asked. */
function trustOptions(values: { ca?: string | undefined; insecure?: boolean | undefined }): {
  caPem?: string;
  insecure?: boolean;
} {
  if (values.insecure) {
    process.stderr.write("shadowrelay: --insecure: the relay's certificate is NOT checked\n");
    return { insecure: true };
  }
  const file = values.ca ?? (existsSync("data/tls/cert.pem") ? "data/tls/cert.pem" : undefined);
  return file === undefined ? {} : { caPem: readFileSync(file, "utf8") };
}

async function connectCommand(argv: string[]): Promise<void> {
  const { values } = parseOrFail({
    args: argv,
    options: {
      relay: { type: "string" },
      ticket: { type: "string" },
      listen: { type: "string", default: "127.0.0.1:0" },
      exec: { type: "string" },
      direct: { type: "boolean", default: false },
      ca: { type: "string" },
      insecure: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(CONNECT_HELP);
    return;
  }
  if (!values.relay || !values.ticket) fail(`connect needs --relay and --ticket\n\n${CONNECT_HELP}`);
  const session = ticketSession(values.ticket);
  const base = values.relay.replace(/\/$/, "").replace(/^http/, "ws");
  const wsUrl = `${base}/ws/view/${session}?ticket=${encodeURIComponent(values.ticket)}`;
  const trust = trustOptions(values);
  let proxy: ReturnType<typeof startConnectProxy>;
  try {
    const openRelay = values.direct
      ? directOpener({ relayUrl: values.relay, sessionId: session, ticket: values.ticket, ...trust })
      : () => openWsChannel(wsUrl, trust);
    proxy = startConnectProxy({ listen: values.listen, openRelay });
  } catch (e) {
    fail(e instanceof Error ? e.message : String(e));
  }
  const host = proxy.address.includes(":") ? `[${proxy.address}]` : proxy.address;
  console.log(
    `viewer address: ${host}:${proxy.port}   (TigerVNC: vncviewer ${proxy.address}::${proxy.port})`,
  );
  console.log(`one-time VNC password: ${proxy.password}   (single use; 3 wrong answers burn it)`);
  let child: ReturnType<typeof Bun.spawn> | undefined;
  if (values.exec) {
    const argvExec = values.exec
      .split(/\s+/)
      .filter((w) => w.length > 0)
      .map((w) =>
        w
          .replaceAll("{addr}", `${proxy.address}::${proxy.port}`)
          .replaceAll("{host}", proxy.address)
          .replaceAll("{port}", String(proxy.port))
          .replaceAll("{password}", proxy.password),
      );
    child = Bun.spawn(argvExec, { stdout: "inherit", stderr: "inherit", stdin: "ignore" });
  }
  process.on("SIGINT", () => proxy.stop("interrupted"));
  process.on("SIGTERM", () => proxy.stop("terminated"));
  const result = await proxy.done;
  child?.kill();
  console.log(`session ${result.outcome}: ${result.reason}`);
  process.exit(result.outcome === "completed" ? 0 : 1);
}

const AGENT_HELP = `shadowrelay agent --relay URL --enroll TOKEN --state DIR [--relay-fingerprint HEX] [--name N] [--listen HOST:PORT [--address HOST:PORT]]
shadowrelay agent --state DIR --vnc HOST:PORT [--vnc-password-file F] [--consent none|notify|ask] [--consent-command CMD] [--max-sessions N] [--listen HOST:PORT]

The device side. Enrollment (once): generates the device's key pair, pins the relay's certificate (its
SHA-256 from --relay-fingerprint, which "admin enroll" prints; without it, trusted on first use with a
warning) and stores the identity under --state (0600). Then run it: it keeps a control connection to the
relay (reconnecting with back-off), proves the device key on every connection, asks the device user for
consent as the policy says (ask: --consent-command runs with the requester's name and role as arguments,
exit status 0 = yes; a timeout = no), and bridges each granted session to the device's VNC server,
answering its VNC password itself (--vnc-password-file, a vncpasswd -f file) so it never leaves the device.
SIGUSR1 ends the current sessions as the device user; SIGINT/SIGTERM stop the agent.
Direct mode: enroll with --listen (and --address, where the relay dials, when listening on a wildcard) and
run with --listen: the agent then serves TLS 1.3 with a certificate of the device key, and the relay dials
it per session, checks the key against its pin before any byte, and signs its request with its own key,
which the agent checks against the relay certificate it pinned.`;

async function agentCommand(argv: string[]): Promise<void> {
  const { values } = parseOrFail({
    args: argv,
    options: {
      relay: { type: "string" },
      enroll: { type: "string" },
      state: { type: "string" },
      "relay-fingerprint": { type: "string" },
      name: { type: "string" },
      force: { type: "boolean", default: false },
      vnc: { type: "string" },
      "vnc-password-file": { type: "string" },
      consent: { type: "string", default: "ask" },
      "consent-command": { type: "string" },
      "max-sessions": { type: "string" },
      listen: { type: "string" },
      address: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(AGENT_HELP);
    return;
  }
  if (!values.state) fail(`agent needs --state\n\n${AGENT_HELP}`);
  if (values.enroll !== undefined) {
    if (!values.relay) fail("agent --enroll needs --relay");
    const address = values.address ?? values.listen;
    if (address !== undefined && /^(0\.0\.0\.0|\[::\]):/.test(address)) {
      fail("agent --enroll --listen on a wildcard address needs --address HOST:PORT (where the relay dials)");
    }
    const r = await enrollAgent({
      ...(address !== undefined ? { address } : {}),
      relayUrl: values.relay,
      token: values.enroll,
      stateDir: values.state,
      force: values.force,
      ...(values.name ? { name: values.name } : {}),
      ...(values["relay-fingerprint"] ? { relayFingerprint: values["relay-fingerprint"] } : {}),
    });
    console.log(
      `enrolled as device ${r.device.id} ("${r.device.name}"); identity in ${r.identityFile}; relay certificate ` +
        `SHA-256 ${r.relayCert.sha256Hex}${r.trustedOnFirstUse ? " (trusted on first use)" : " (matched)"}`,
    );
    return;
  }
  if (!values.vnc) fail(`agent needs --vnc HOST:PORT (or --enroll)\n\n${AGENT_HELP}`);
  const vnc = parseListen(values.vnc);
  const consent = values.consent;
  if (consent !== "none" && consent !== "notify" && consent !== "ask")
    fail("--consent is none, notify or ask");
  const vncPassword = values["vnc-password-file"]
    ? readVncPasswordFile(new Uint8Array(readFileSync(values["vnc-password-file"]))).password
    : undefined;
  const maxSessions = values["max-sessions"] === undefined ? undefined : Number(values["max-sessions"]);
  if (
    maxSessions !== undefined &&
    (!Number.isInteger(maxSessions) || maxSessions < 1 || maxSessions > 1000)
  ) {
    fail("--max-sessions takes a number of sessions, 1…1000");
  }
  if (values.listen !== undefined) {
    const direct = await startDirectAgent({
      stateDir: values.state,
      listen: values.listen,
      vnc: { host: vnc.hostname, port: vnc.port },
      consent,
      ...(vncPassword !== undefined ? { vncPassword } : {}),
      ...(values["consent-command"] ? { consentCommand: values["consent-command"] } : {}),
      ...(maxSessions !== undefined ? { limits: { maxSessions } } : {}),
    });
    console.log(
      `direct agent for device ${direct.deviceId} listening on port ${direct.port} (TLS 1.3, device key SHA-256 ` +
        `${direct.spkiSha256}); SIGUSR1 ends the current sessions`,
    );
    process.on("SIGUSR1", () =>
      log.info("sessions ended by the device user", { sessions: direct.endSession() }),
    );
    waitForSignal(() => direct.stop());
    return;
  }
  const agent = await startAgent({
    stateDir: values.state,
    ...(maxSessions !== undefined ? { maxSessions } : {}),
    vnc: { host: vnc.hostname, port: vnc.port },
    consent,
    ...(vncPassword !== undefined ? { vncPassword } : {}),
    ...(values["consent-command"] ? { consentCommand: values["consent-command"] } : {}),
  });
  console.log(`agent for device ${agent.deviceId} running; SIGUSR1 ends the current sessions`);
  process.on("SIGUSR1", () => {
    const ended = agent.endSession();
    log.info("sessions ended by the device user", { sessions: ended });
  });
  waitForSignal(() => agent.stop());
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case "serve":
      return serve(rest);
    case "demo":
      return demo(rest);
    case "replay":
      return replayCommand(rest);
    case "connect":
      return connectCommand(rest);
    case "admin":
      return adminCommand(rest, fail);
    case "agent":
      return agentCommand(rest);
    case "--version":
    case "-v":
      console.log(packageJson.version);
      return;
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(USAGE);
      return;
    default: {
      const pending = PENDING[cmd];
      if (pending) {
        process.stderr.write(`shadowrelay ${cmd}: not available in this version: ${pending}.\n`);
        process.exit(3);
      }
      fail(`unknown command '${cmd}'\n\n${USAGE}`);
    }
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`shadowrelay: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
