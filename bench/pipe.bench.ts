// Pipe sessions against websockify (issue #4 "Benchmark"): the same Xvnc, the same load, three ways through.
//   baseline   load ─wss─► websockify (Debian's, --cert/--key: TLS like the relay) ─tcp─► Xvnc
//   reference  load ─ws──► websockify without TLS (how the issue's own websockify figures were taken)
//   relay      load ─wss─► `bun relay/main.ts serve` ◄─wss─ agent ─tcp─► Xvnc  (gateway mode, pipe sessions)
// The load (bench/lib/rfb-load.ts, its own process) opens 1, 10 and 50 viewers, each asking for the whole
// 1280×720 noise screen in Raw, non-incremental, one request outstanding. For each target and viewer count:
// a warm-up, then a timed window in which the delivered bytes and the measured process's CPU (utime +
// stime from /proc, every process of its tree: websockify forks one child per connection) are read at both
// ends, and the memory at the end (RSS, as the issue measured it, and PSS, which splits websockify's
// copy-on-write pages between its forks). The agent and Xvnc are measured too but not booked to the relay.
// All processes share the machine's cores; the figures to compare are MB per CPU-second, not MB/s alone.
// Run: npx bun bench/run.ts pipe   (needs scripts/install-peers.sh: Xvnc, ImageMagick, websockify)
// Internal: `bun bench/pipe.bench.ts agent STATE_DIR VNC_PORT MAX_SESSIONS` is the agent's process.

import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startAgent } from "../relay/agent/agent.ts";
import {
  killAll,
  makeTempDir,
  freePort,
  PAINT_PEERS,
  paint,
  requirePeer,
  runOk,
  spawnTracked,
  startXvnc,
  type TrackedProcess,
  XVNC_PEERS,
} from "../test/peers/rig.ts";
import { checkRawFrameCounter, type LoadConfig, type LoadEvent } from "./lib/rfb-load.ts";

/** Every size, duration and timeout of this bench (environment overrides for quick runs in brackets). */
export const PIPE_BENCH_DEFAULTS = Object.freeze({
  /** Xvnc's screen: a full Raw frame is width·height·4 bytes (3.7 MB). @default 1280 */
  width: 1280,
  /** @default 720 */
  height: 720,
  /** Concurrent viewers, one row each [PIPE_BENCH_VIEWERS=1,10]. @default [1, 10, 50] */
  viewers: [1, 10, 50] as readonly number[],
  /** Milliseconds of load before the window opens. @default 2000 */
  warmupMs: 2000,
  /** Milliseconds of the timed window [PIPE_BENCH_MEASURE_MS]. @default 8000 */
  measureMs: 8000,
  /** Milliseconds for the relay, the agent or websockify to come up. @default 30000 */
  startTimeoutMs: 30_000,
  /** Milliseconds for every viewer to have its first whole frame. @default 60000 */
  readyTimeoutMs: 60_000,
  /** Milliseconds for one target to drop every session after the load stops. @default 15000 */
  drainTimeoutMs: 15_000,
  /**
   * Sessions the bench's agent bridges at once. The agent's own default is 8 (AGENT_DEFAULTS.maxSessions)
   * and `agent` has no flag for it, so the agent runs here through startAgent. @default 64
   */
  agentMaxSessions: 64,
});

/** The timed window, PIPE_BENCH_MEASURE_MS or the default. */
function measureMs(): number {
  return Number(process.env.PIPE_BENCH_MEASURE_MS ?? PIPE_BENCH_DEFAULTS.measureMs);
}

const sum = (xs: readonly number[]) => xs.reduce((a, x) => a + x, 0);

const ROOT = join(import.meta.dir, "..");
const MAIN = join(ROOT, "relay", "main.ts");
const LOAD = join(import.meta.dir, "lib", "rfb-load.ts");
const MB = 1e6;
const MIB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------- /proc

// /proc/<pid>/stat counts CPU time in USER_HZ ticks, which Linux fixes at 100 for user space (getconf CLK_TCK).
const CLK_TCK = 100;

interface ProcStat {
  ppid: number;
  /** utime + stime, seconds. */
  cpu: number;
  /** cutime + cstime (reaped children), seconds. */
  childCpu: number;
}

function procStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // Fields after "pid (comm)": comm may hold spaces, so split after the last ')'. Field 3 is rest[0].
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const n = (i: number) => Number(rest[i]);
  return { ppid: n(1), cpu: (n(11) + n(12)) / CLK_TCK, childCpu: (n(13) + n(14)) / CLK_TCK };
}

/** The pid and all its live descendants. */
function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const s = procStat(Number(name));
    if (s === null) continue;
    const list = children.get(s.ppid) ?? [];
    list.push(Number(name));
    children.set(s.ppid, list);
  }
  const out: number[] = [];
  const walk = (pid: number): void => {
    out.push(pid);
    for (const c of children.get(pid) ?? []) walk(c);
  };
  walk(root);
  return out;
}

/** CPU seconds of a process tree so far: every live member's own, plus what the root reaped. */
function treeCpu(root: number): number {
  let total = procStat(root)?.childCpu ?? 0;
  for (const pid of processTree(root)) total += procStat(pid)?.cpu ?? 0;
  return total;
}

function statusKib(file: string, key: string): number {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(readFileSync(file, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** RSS and PSS of a process tree, bytes (summed over its members, as `ps` users add them up). */
function treeMemory(root: number): { rss: number; pss: number; processes: number } {
  const pids = processTree(root);
  let rss = 0;
  let pss = 0;
  for (const pid of pids) {
    rss += statusKib(`/proc/${pid}/status`, "VmRSS") * 1024;
    pss += statusKib(`/proc/${pid}/smaps_rollup`, "Pss") * 1024;
  }
  return { rss, pss, processes: pids.length };
}

// ---------------------------------------------------------------------------------------------- helpers

async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => T | undefined | Promise<T | undefined>,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`pipe bench: waited ${timeoutMs} ms for ${what}`);
    await Bun.sleep(50);
  }
}

/** Waits for a line matching `re` on a tracked process's stdout; fails early if it exits. */
function waitForOutput(p: TrackedProcess, re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  return until(`${p.command.split(" ").slice(0, 3).join(" ")} to print ${re}`, timeoutMs, () => {
    const m = re.exec(new TextDecoder().decode(p.stdout()));
    if (m) return m;
    if (!p.alive()) throw new Error(`${p.command} exited: ${p.stderr().slice(-2000)}`);
    return undefined;
  });
}

/** A line-oriented child process: the load client. */
class LoadProcess {
  readonly pid: number;
  readonly #proc: Bun.Subprocess<"pipe", "pipe", "inherit">;
  readonly #lines: LoadEvent[] = [];
  #waiters: (() => void)[] = [];
  #ended = false;

  constructor(configFile: string) {
    this.#proc = Bun.spawn([process.execPath, LOAD, configFile], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "inherit",
    });
    this.pid = this.#proc.pid;
    void this.#read();
  }

  async #read(): Promise<void> {
    let pending = "";
    const decoder = new TextDecoder();
    for await (const chunk of this.#proc.stdout) {
      pending += decoder.decode(chunk, { stream: true });
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
        const line = pending.slice(0, nl).trim();
        pending = pending.slice(nl + 1);
        if (line !== "") this.#lines.push(JSON.parse(line) as LoadEvent);
      }
      for (const w of this.#waiters.splice(0)) w();
    }
    this.#ended = true;
    for (const w of this.#waiters.splice(0)) w();
  }

  /** The next event of `kind`; an "error" event or the process ending first is an error. */
  async next<K extends LoadEvent["event"]>(
    kind: K,
    timeoutMs: number,
  ): Promise<Extract<LoadEvent, { event: K }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.#lines.findIndex((e) => e.event === kind || e.event === "error");
      if (i >= 0) {
        const [e] = this.#lines.splice(i, 1);
        if (e?.event === "error") throw new Error(`load client: ${e.message}`);
        return e as Extract<LoadEvent, { event: K }>;
      }
      if (this.#ended) throw new Error(`load client exited (${await this.#proc.exited}) before "${kind}"`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`load client: no "${kind}" within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  send(command: string): void {
    this.#proc.stdin.write(`${command}\n`);
    this.#proc.stdin.flush();
  }

  /** Asks it to close its viewers and waits for it to exit; SIGKILL after a grace period. */
  async stop(): Promise<void> {
    try {
      this.send("stop");
      this.#proc.stdin.end();
    } catch {
      // already gone
    }
    const timer = setTimeout(() => this.#proc.kill("SIGKILL"), 5000);
    await this.#proc.exited;
    clearTimeout(timer);
  }

  kill(): void {
    this.#proc.kill("SIGKILL");
  }
}

// ---------------------------------------------------------------------------------------------- targets

interface Target {
  /** "websockify ws://" is the no-TLS reference; ratios are against "websockify" (TLS). */
  name: "websockify" | "websockify ws://" | "relay";
  /** The process whose CPU and memory are the target's (its tree). */
  pid: number;
  /** Processes measured beside it, not booked to it. */
  others: { name: string; pid: number }[];
  /** One URL per viewer; for the relay, each a new session with its own ticket. */
  urls(n: number): Promise<string[]>;
  /** Resolves once the target carries no session any more. */
  drained(): Promise<void>;
}

interface Row {
  target: Target["name"];
  viewers: number;
  seconds: number;
  mbPerS: number;
  framesPerViewerPerS: number;
  /** Fewest and most whole frames one viewer received in the window (fairness between viewers). */
  minFrames: number;
  maxFrames: number;
  cpu: number;
  rss: number;
  pss: number;
  processes: number;
  /** CPU seconds of the processes measured beside the target (agent, Xvnc, load). */
  otherCpu: Record<string, number>;
  mb: number;
}

async function measure(target: Target, viewers: number, caPem: string, tmp: string): Promise<Row> {
  const config: LoadConfig = { urls: await target.urls(viewers), caPem, protocol: "binary" };
  const file = join(tmp, `load-${target.name.replace(/\W+/g, "-")}-${viewers}.json`);
  writeFileSync(file, JSON.stringify(config));
  const load = new LoadProcess(file);
  try {
    const ready = await load.next("ready", PIPE_BENCH_DEFAULTS.readyTimeoutMs);
    const d = PIPE_BENCH_DEFAULTS;
    if (ready.width !== d.width || ready.height !== d.height || ready.bytesPerPixel !== 4) {
      throw new Error(
        `${target.name}: viewers got ${ready.width}×${ready.height}×${ready.bytesPerPixel} B/px`,
      );
    }
    await Bun.sleep(PIPE_BENCH_DEFAULTS.warmupMs);
    const others = [...target.others, { name: "load", pid: load.pid }];
    load.send("sample");
    const a = await load.next("sample", 5000);
    const cpuA = treeCpu(target.pid);
    const otherA = others.map((o) => treeCpu(o.pid));
    await Bun.sleep(measureMs());
    load.send("sample");
    const b = await load.next("sample", 5000);
    const cpuB = treeCpu(target.pid);
    const otherB = others.map((o) => treeCpu(o.pid));
    const mem = treeMemory(target.pid);
    const seconds = (b.t - a.t) / 1000;
    const mb = (b.bytes - a.bytes) / MB;
    const windowFrames = b.frames.map((f, i) => f - (a.frames[i] ?? 0));
    return {
      target: target.name,
      viewers,
      seconds,
      mb,
      mbPerS: mb / seconds,
      framesPerViewerPerS: (sum(b.frames) - sum(a.frames)) / viewers / seconds,
      minFrames: Math.min(...windowFrames),
      maxFrames: Math.max(...windowFrames),
      cpu: cpuB - cpuA,
      rss: mem.rss,
      pss: mem.pss,
      processes: mem.processes,
      otherCpu: Object.fromEntries(others.map((o, i) => [o.name, otherB[i]! - otherA[i]!])),
    };
  } catch (e) {
    load.kill();
    throw e;
  } finally {
    await load.stop();
    await target.drained();
  }
}

/** The agent's process (internal role): startAgent with room for every session of the bench. */
async function agentRole(stateDir: string, vncPort: number, maxSessions: number): Promise<void> {
  const agent = await startAgent({
    stateDir,
    vnc: { host: "127.0.0.1", port: vncPort },
    consent: "none",
    maxSessions,
    onEvent: (e) => {
      if (e.type === "welcome") console.log(`agent online as ${e.deviceId}`);
    },
  });
  const stop = (): void => {
    agent.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

interface Websockify {
  process: TrackedProcess;
  url: string;
}

/** Debian's websockify in front of Xvnc; with TLS when given a certificate (then wss:// only). */
async function startWebsockify(vncPort: number, tls?: { cert: string; key: string }): Promise<Websockify> {
  const port = freePort();
  const p = spawnTracked("websockify", [
    ...(tls ? ["--cert", tls.cert, "--key", tls.key, "--ssl-only"] : []),
    `127.0.0.1:${port}`,
    `127.0.0.1:${vncPort}`,
  ]);
  await until("websockify to listen", PIPE_BENCH_DEFAULTS.startTimeoutMs, async () => {
    if (!p.alive()) throw new Error(`websockify exited: ${p.stderr()}`);
    try {
      (await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } })).end();
      return true;
    } catch {
      return undefined;
    }
  });
  return { process: p, url: `${tls ? "wss" : "ws"}://127.0.0.1:${port}/` };
}

function websockifyTarget(name: Target["name"], w: Websockify, xvncPid: number): Target {
  const pid = w.process.pid;
  return {
    name,
    pid,
    others: [{ name: "Xvnc", pid: xvncPid }],
    urls: async (n) => Array.from({ length: n }, () => w.url),
    // Each connection is a fork; the target is drained when only the listener is left.
    drained: () =>
      until("websockify to end its forks", PIPE_BENCH_DEFAULTS.drainTimeoutMs, () =>
        processTree(pid).length === 1 ? true : undefined,
      ).then(() => {}),
  };
}

async function api(
  base: string,
  caPem: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<unknown> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    tls: { ca: caPem },
  });
  const json = (await res.json()) as unknown;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

// ---------------------------------------------------------------------------------------------- report

const fmt = (v: number, digits = 0) => v.toFixed(digits);
const pct = (cpu: number, s: number) => `${fmt((100 * cpu) / s)}%`;

function table(head: string[], rows: string[][], right: boolean[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(" | ")} |`;
  const rule = `| ${widths.map((w, i) => (right[i] ? `${"-".repeat(w - 1)}:` : "-".repeat(w))).join(" | ")} |`;
  return [line(head), rule, ...rows.map(line)].join("\n");
}

function report(rows: Row[]): void {
  const main = rows.map((r) => {
    const agent = r.otherCpu.agent ?? 0;
    return [
      r.target,
      String(r.viewers),
      fmt(r.mbPerS),
      fmt(r.framesPerViewerPerS, 1),
      `${r.minFrames}–${r.maxFrames}`,
      pct(r.cpu, r.seconds),
      fmt(r.mb / r.cpu),
      r.target === "relay" ? fmt(r.mb / (r.cpu + agent)) : "—",
      fmt(r.rss / MIB),
      fmt(r.pss / MIB),
      String(r.processes),
      r.target === "relay" ? pct(agent, r.seconds) : "—",
      pct(r.otherCpu.Xvnc ?? 0, r.seconds),
      pct(r.otherCpu.load ?? 0, r.seconds),
    ];
  });
  console.log(
    table(
      [
        "target",
        "viewers",
        "MB/s",
        "fps/viewer",
        "frames/viewer min–max",
        "CPU",
        "MB/CPU-s",
        "MB/CPU-s +agent",
        "RSS MiB",
        "PSS MiB",
        "procs",
        "agent CPU",
        "Xvnc CPU",
        "load CPU",
      ],
      main,
      [false, true, true, true, true, true, true, true, true, true, true, true, true, true],
    ),
  );
  const ratios: string[][] = [];
  const eff = (x: Row) => x.mb / x.cpu;
  for (const n of new Set(rows.map((r) => r.viewers))) {
    const at = (name: Target["name"]) => rows.find((x) => x.viewers === n && x.target === name);
    const w = at("websockify");
    const r = at("relay");
    const plain = at("websockify ws://");
    if (!w || !r) continue;
    const withAgent = r.mb / (r.cpu + (r.otherCpu.agent ?? 0));
    ratios.push([
      String(n),
      `${fmt(r.mbPerS / w.mbPerS, 2)}×`,
      `${fmt(eff(r) / eff(w), 2)}×`,
      `${fmt(withAgent / eff(w), 2)}×`,
      `${fmt(r.rss / w.rss, 3)}×`,
      `${fmt(r.pss / w.pss, 3)}×`,
      plain ? `${fmt(eff(r) / eff(plain), 2)}×` : "—",
      plain ? `${fmt(r.rss / plain.rss, 3)}×` : "—",
    ]);
  }
  console.log("\nrelay / websockify (targets: MB per CPU-second ≥ 2×, memory at 50 viewers ≤ 0.1×)\n");
  console.log(
    table(
      [
        "viewers",
        "MB/s",
        "MB/CPU-s",
        "MB/CPU-s incl. agent",
        "RSS",
        "PSS",
        "MB/CPU-s vs ws://",
        "RSS vs ws://",
      ],
      ratios,
      [true, true, true, true, true, true, true, true],
    ),
  );
}

// ---------------------------------------------------------------------------------------------- main

async function main(): Promise<void> {
  if (!requirePeer(...XVNC_PEERS, ...PAINT_PEERS, "websockify")) return;
  checkRawFrameCounter();
  const d = PIPE_BENCH_DEFAULTS;
  const viewers = process.env.PIPE_BENCH_VIEWERS
    ? process.env.PIPE_BENCH_VIEWERS.split(",").map(Number)
    : d.viewers;
  const tmp = makeTempDir("shadowrelay-pipe-bench-");

  const xvnc = await startXvnc({ width: d.width, height: d.height });
  await paint(xvnc, { pattern: "noise" });

  // The relay as `shadowrelay serve` would run it; its first-start admin password is read from its output.
  const relayPort = freePort();
  const dataDir = join(tmp, "relay-data");
  const relay = spawnTracked(
    process.execPath,
    [MAIN, "serve", "--listen", `127.0.0.1:${relayPort}`, "--data", dataDir],
    {
      env: { ...process.env, SHADOWRELAY_LOG: "warn" },
    },
  );
  const password = (await waitForOutput(relay, /password (\S+)/, d.startTimeoutMs))[1]!;
  const fingerprint = (await waitForOutput(relay, /SHA-256 ([0-9a-f]{64})/, d.startTimeoutMs))[1]!;
  const base = `https://127.0.0.1:${relayPort}`;
  const caPem = readFileSync(join(dataDir, "tls", "cert.pem"), "utf8");
  const token = (
    (await api(base, caPem, "", "POST", "/api/login", { name: "admin", password })) as { token: string }
  ).token;
  const call = (method: string, path: string, body?: unknown) => api(base, caPem, token, method, path, body);

  // Enrolled with the real CLI; run through startAgent (see agentMaxSessions).
  const enrollment = (await call("POST", "/api/enrollments", { name: "bench-xvnc" })) as { token: string };
  const stateDir = join(tmp, "agent-state");
  await runOk(
    process.execPath,
    [
      MAIN,
      "agent",
      "--relay",
      base,
      "--enroll",
      enrollment.token,
      "--state",
      stateDir,
      "--relay-fingerprint",
      fingerprint,
    ],
    { timeoutMs: d.startTimeoutMs },
  );
  const agent = spawnTracked(
    process.execPath,
    [import.meta.path, "agent", stateDir, String(xvnc.port), String(d.agentMaxSessions)],
    { env: { ...process.env, SHADOWRELAY_LOG: "warn" } },
  );
  const deviceId = (await waitForOutput(agent, /agent online as (\S+)/, d.startTimeoutMs))[1]!;

  // websockify with the relay's own certificate and key: the same TLS work on both paths. A second one
  // without TLS is the reference the issue's own figures were taken with.
  const wss = await startWebsockify(xvnc.port, {
    cert: join(dataDir, "tls", "cert.pem"),
    key: join(dataDir, "tls", "key.pem"),
  });
  const ws = await startWebsockify(xvnc.port);

  const idle = { relay: treeMemory(relay.pid), websockify: treeMemory(wss.process.pid) };
  const targets: Target[] = [
    websockifyTarget("websockify", wss, xvnc.pid),
    websockifyTarget("websockify ws://", ws, xvnc.pid),
    {
      name: "relay",
      pid: relay.pid,
      others: [
        { name: "agent", pid: agent.pid },
        { name: "Xvnc", pid: xvnc.pid },
      ],
      urls: async (n) => {
        const out: string[] = [];
        for (let i = 0; i < n; i++) {
          const s = (await call("POST", `/api/devices/${deviceId}/sessions`, { audience: "native" })) as {
            wsUrl: string;
          };
          out.push(s.wsUrl);
        }
        return out;
      },
      drained: () =>
        until("the relay to end its sessions", d.drainTimeoutMs, async () =>
          ((await call("GET", "/api/sessions?active=true")) as unknown[]).length === 0 ? true : undefined,
        ).then(() => {}),
    },
  ];

  const rows: Row[] = [];
  for (const n of viewers) {
    for (const target of targets) {
      const row = await measure(target, n, caPem, tmp);
      rows.push(row);
      console.error(
        `  ${target.name} × ${n}: ${fmt(row.mbPerS)} MB/s, CPU ${pct(row.cpu, row.seconds)}, RSS ${fmt(row.rss / MIB)} MiB`,
      );
    }
  }
  console.log(
    `Xvnc ${d.width}×${d.height} depth 24 (Raw frame ${fmt((d.width * d.height * 4) / MB, 2)} MB), noise; ` +
      `TLS (the relay's self-signed ECDSA P-256 certificate) on the relay and on websockify, not on ` +
      `"websockify ws://"; warm-up ${d.warmupMs} ms, window ` +
      `${measureMs()} ms. MB = 10^6 B. CPU = utime+stime of the target's ` +
      `process tree over the window / wall time (100% = one core). Idle before load: relay RSS ` +
      `${fmt(idle.relay.rss / MIB)} MiB, websockify RSS ${fmt(idle.websockify.rss / MIB)} MiB.\n`,
  );
  report(rows);
}

if (process.argv[2] === "agent") {
  const [, , , stateDir, port, max] = process.argv;
  await agentRole(stateDir!, Number(port), Number(max));
} else {
  try {
    await main();
  } finally {
    await killAll();
  }
}
