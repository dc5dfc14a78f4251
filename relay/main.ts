#!/usr/bin/env bun
// `shadowrelay`: the command line (DESIGN.md "Contract"). Parses arguments and hands off to the module that
// does the work; nothing here speaks a protocol.

import { readFileSync, writeFileSync } from "node:fs";
import { type ParseArgsConfig, parseArgs } from "node:util";
import packageJson from "../package.json" with { type: "json" };
import { TsKernels } from "./codec/ts-kernels.ts";
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
  shadowrelay agent …     device side (gateway and direct modes)        — arrives with issue #4
  shadowrelay connect …   native-viewer proxy                           — arrives with issue #4
  shadowrelay admin …     the API from a shell                          — arrives with issue #4
  shadowrelay replay --server S2C[.gz] [--client C2S[.gz]] --out FILE.png|FILE.rgba [--at-update N]

Run 'shadowrelay <command> --help' for a command's options.`;

const PENDING: Record<string, string> = {
  agent: "the device agent arrives with issue #4 (the relay: control plane, gateway and direct modes)",
  connect: "the native-viewer proxy arrives with issue #4 (the relay)",
  admin: "the admin command arrives with issue #4 (the relay's control plane and API)",
};

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
  lines.push(
    "  login:      users, the admin login and the web console arrive with issues #4 and #6",
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

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case "serve":
      return serve(rest);
    case "demo":
      return demo(rest);
    case "replay":
      return replayCommand(rest);
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
